"""The offline model: a LangChain chat model of our own, used when no model is configured.

It routes a request to tool calls by rules (intent patterns) and retrieval (names resolved against the
catalog: product names and ids, dataset and column names, then catalog search), and composes the final
answer from the tool results, with their citations. Same graph and tools as a real model: it receives
the bound tools through `bind_tools` and answers with `tool_calls`, then reads the ToolMessages back.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr
from rapidfuzz import fuzz

from meshpilot.mesh.model import MeshRef

HELP = """I am Meshpilot, your data-mesh copilot. With no language model configured I work offline and can:
- find data: "where do we keep customer e-mail addresses?"
- describe a product and its owners: "who owns customer lifetime value?"
- trace lineage: "what feeds the campaign performance product?", "what breaks if I drop orders.amount?"
- answer questions with SQL: "how many orders were placed per channel?"
- work with contracts: "draft a contract for returns", "lint the orders contract", "test the customer profile contract"
- list and triage incidents: "open incidents on customer lifetime value", "triage INC-0003"

Set MESHPILOT_MODEL (see docs/models.md) for free-form conversation with any LiteLLM model."""

_SQL_TEXT = re.compile(r"^\s*(?:```sql\s*)?(select|with)\b", re.IGNORECASE)
# Asking about a query rather than for its rows: "is this sql ok", "would this query pass", "lint this".
_VALIDATE_CUE = re.compile(r"\bvalid|\bcheck\b|\blint\b|\breview\b|\bis (?:this|it|the) (?:sql |query )?(?:ok|okay|right|"
                           r"correct|fine|allowed)\b|\bwould (?:this|it) (?:query |sql )?(?:pass|work|be (?:ok|allowed))\b",
                           re.I)
# Intent cues. Each is a family of ways to say a thing (verbs, their forms, common misspellings are handled by
# fuzzy name matching, not here), not a suite's sentences. `product` cues are strong (the product itself is
# asked about); the weak ones ("what is", "tell me about") give way to a data question.
_INTENTS: list[tuple[str, re.Pattern[str]]] = [
    ("help", re.compile(r"^\s*(?:help|\?|hi|hello|hey|thanks?|thank you|thx|cheers|ok(?:ay)?|good (?:morning|afternoon|"
                        r"evening|night)|bye)(?: there| you| so much| a lot)?\s*[!.?]*\s*$|\bwhat can you (?:do|help)|"
                        r"\bhow (?:do i|can i) use (?:you|meshpilot)|\bwhat are your (?:tools|capabilities)|"
                        r"^\s*who are you\b|^\s*what are you\b", re.I)),
    ("incidents", re.compile(r"\bincidents?\b|\bINC-\d+|\boutages?\b|\btriage\b|\bwhat(?:'s| is) (?:wrong|broken|going on) with|"
                             r"\broot cause\b|\bwhy (?:is|are|does|did|do)\b.*\b(?:fail\w*|late|broken|missing|wrong|stale|"
                             r"delayed|empty|off)\b|\bany (?:problems|issues) (?:with|on)\b|\bpostmortems?\b|\bon fire\b|"
                             r"\blooks? (?:broken|wrong|off|stale)\b|\binvestigate\b|\bwhat happened\b", re.I)),
    ("contract", re.compile(r"\bcontracts?\b|\bodcs\b", re.I)),
    ("impact", re.compile(r"\bimpact|\bbreaks?\b|\bbroken\b|\baffect(?:ed|s)?\b|\bdownstream\b|\bblast radius\b|"
                          r"\bhurt\b|\b(?:what|who|which \w+)\s+(?:depends?|relies?) on\b|"
                          r"\bdependen(?:ts|cies) of\b|\bwho(?:'s| is)? (?:uses|using|consumes|consuming|reads|reading)\b|"
                          r"\bconsumers? of\b|\bused by\b|\b(?:which|what) [\w ]{0,30}\b(?:use|uses|read|reads|consume)\b|"
                          r"\bif (?:i|we|you|they|someone) (?:drop|rename|change|remove|delete|retype)\b|"
                          r"\bif\b.{0,60}\b(?:were|was|is|are|gets?|got) (?:dropped|renamed|removed|deleted|retyped)\b|"
                          r"\b(?:safe|ok|okay) to (?:drop|rename|change|remove|delete)\b|\bwho needs to know\b|"
                          r"\bwhat happens\b.*\bif\b|\b(?:renam|dropp|delet|remov)ing\b", re.I)),
    ("upstream", re.compile(r"\bfeeds?\b|\bfed\b|\bupstream\b|\bcomes? from\b|\bsources? (?:of|for)\b|\bsourced from\b|"
                            r"\bthe sources?\b|\bderived\b|\blineage of\b|\borigin\b|\bbuilt from\b|\binputs? (?:to|of)\b|"
                            r"\bwhere (?:does|do|did|comes?|is)\b.*\bfrom\b|\bwhat goes into\b|\bpopulates?\b|"
                            r"\bdoes\b[^?]*?\bdepend on\b|\btrace (?:back|\w+ back)\b|\b(?:computed|calculated) from\b|"
                            r"\bfrom which\b|\bget (?:its|their) data\b", re.I)),
    ("product", re.compile(r"\bwho owns?\b|\bowner|\bowned by\b|\bowning\b|\bwho is responsible\b|\bresponsible for\b|"
                           r"\baccountable\b|\blooks? after\b|\bcontacts?\b|\bcontact person\b|\bon[- ]?call\b|\bmaintain|"
                           r"\bdescribe\b|\bdetails\b|\boverview\b|\beverything about\b|\bslos?\b|\bslas?\b|\bfreshness\b|"
                           r"\bhow fresh\b|\b(?:what|which) columns\b|\bcolumns does\b|\bschema of\b|\bshow (?:me )?(?:the )?"
                           r"product\b|\boutput ports?\b|\bwhich domain\b|\bbelongs? to\b|\baligned\b|\bwhat does [\w ]+ mean\b|"
                           r"\bwho (?:do i|should i|can i) (?:ask|contact|talk|ping|reach)\b|\bwhich team\b|\bteam behind\b",
                           re.I)),
    ("product_weak", re.compile(r"\bwhat is\b|\bwhat's\b|\btell me about\b|\bwhat(?:'s| is) in\b", re.I)),
    ("sql", re.compile(r"\bhow (?:many|much)\b|\bcount\b|\bnumber of\b|\baverage\b|\bavg\b|\bmean\b|\btotal\b|\bsum\b|"
                       r"\btop \d+|\bmost\b|\bleast\b|\bhighest\b|\blowest\b|\bmax(?:imum)?\b|\bmin(?:imum)?\b|"
                       r"\b(?:biggest|largest|smallest|best|worst)\b|\bper (?:day|week|month|year|\w+)\b|"
                       r"\b(?:daily|weekly|monthly|yearly)\b|\bby (?:month|day|week|year|country|channel|status|segment|\w+ segment)\b|"
                       r"\b(?:in|over|during|for|within) the (?:last|past|previous) (?:\d+ )?(?:days?|weeks?|months?|quarters?|years?)\b|"
                       r"\b(?:since|before|after|in) (?:19|20)\d\d\b|\b(?:yesterday|today)\b|\b(?:this|last) (?:week|month|quarter|year)\b|"
                       r"\btrend\b|\brevenue\b|\bmedian\b|\bpercentage\b|\bshare of\b|\bbreakdown\b|"
                       r"\b(?:list|show|give|get|find)(?: me)? (?:all |the )*(?:\d+ )?(?!(?:tables|datasets|products|columns|fields|sources)\b)\w+s (?:from|in|with|who|that|where|"
                       r"above|below|over|under|without|since|before|after)\b|\b(?:list|show me) (?:all |the )*\d+\b|"
                       r"\bwhich \w+s (?:have|has|had|did|do) (?:no|not|never|more|less|fewer)\b|"
                       # non-native users ask in their language's words for "how many / how much"
                       r"\bwie viele?\b|\bcu[aá]nt[oa]s?\b|\bcombien\b|\bquant[io]\b", re.I)),
]
_CONTRACT_ACTIONS: list[tuple[str, re.Pattern[str]]] = [
    ("publish_contract", re.compile(r"\b(?:publish|release|promote|replace)\b", re.I)),
    ("contract_diff", re.compile(r"\b(?:diff|compare|breaking|changes? (?:in|between|from)|what changed)\b|\S+\.ya?ml\b", re.I)),
    ("contract_draft", re.compile(r"\b(?:draft|write|create|generate|propose|bootstrap)\b", re.I)),
    ("contract_test", re.compile(r"\b(?:tests?|meets?|satisf(?:y|ies)|compl(?:y|ies)|conforms?|pass(?:es|ing)?|honou?rs?|"
                                 r"violat\w*|verify the data|data match)\b", re.I)),
    ("contract_lint", re.compile(r"\b(?:lint|valid\w*|check|review|problems?|issues?|well[- ]formed|correct)\b", re.I)),
]
_CHANGE_WORDS = {r"drop(?:s|ped|ping)?": "drop", r"remov(?:e|es|ed|ing)": "drop", r"delet(?:e|es|ed|ing)": "drop",
                 r"goes away|go away": "drop", r"renam(?:e|es|ed|ing)": "rename", r"retyp(?:e|ed|ing)": "type",
                 r"type": "type", r"cast": "type", r"meaning|semantics?|definition|redefin\w*": "semantics"}
_FUZZY_NAME = 88  # rapidfuzz ratio: "customer profil" (97) and "campain performance" (97), not "customer" ~ "customers"
_OWNERSHIP = re.compile(r"\bown|\bresponsible|\baccountable|\blooks? after|\bcontact|\bmaintain|\bon[- ]?call|"
                        r"\bwho (?:do i|should i|can i)|\bteam\b", re.I)


@dataclass
class _Names:
    """What the catalog calls things, to find them in a request."""

    products: dict[str, str]  # lower-cased name or id (and with spaces for hyphens) -> product ref
    datasets: dict[str, str]  # qualified name / dataset name -> dataset ref
    columns: dict[str, list[str]]  # dataset ref -> its column names

    @classmethod
    def of(cls, catalog: Any) -> _Names:
        products, datasets, columns, acronyms = {}, {}, {}, {}
        for ref, product in catalog.products.items():
            for key in {product.name.lower(), product.id.lower(), product.id.replace("-", " ").lower()}:
                products[key] = ref
            initials = "".join(w[0] for w in re.findall(r"[a-z0-9]+", product.name.lower()))
            if len(initials) >= 3:  # "CLV" for customer lifetime value; two letters collide with words
                acronyms.setdefault(initials, set()).add(ref)
            for dataset in product.datasets:
                dref = str(product.dataset_ref(dataset.name))
                datasets[dataset.qualified_name.lower()] = dref
                datasets[dataset.name.lower()] = dref
                datasets[dataset.name.replace("_", " ").lower()] = dref
                columns[dref] = [c.name for c in dataset.columns]
        for initials, refs in acronyms.items():
            if len(refs) == 1 and initials not in products:  # an acronym two products share names neither
                products[initials] = refs.pop()
        return cls(products, datasets, columns)


class Router:
    """Request -> tool calls, with arguments resolved against the catalog."""

    def __init__(self, catalog: Any):
        self.catalog = catalog
        self.names = _Names.of(catalog)

    def route(self, text: str) -> list[dict[str, Any]]:
        """The tool calls for a request ([] means: answer with help)."""
        text = text.strip()
        if not text:
            return []
        if _SQL_TEXT.match(text) or re.search(r"```sql", text, re.I):
            sql = re.sub(r"^```sql\s*|```\s*$", "", text.strip(), flags=re.I).strip()
            return [self._call("validate_sql", sql=sql)] if _VALIDATE_CUE.search(text) and \
                not _SQL_TEXT.match(text) else [self._call("run_sql", sql=sql)]
        if sql := self._embedded_sql(text):
            tool = "validate_sql" if _VALIDATE_CUE.search(text) else "run_sql"
            return [self._call(tool, sql=sql)]
        intents = [name for name, pattern in _INTENTS if pattern.search(text)]
        if "help" in intents and len(text) < 60:
            return []
        calls: list[dict[str, Any]] = []
        product = self.find_product(text)
        if "contract" in intents:
            calls = [self._contract_call(text, product)]
            if product and _OWNERSHIP.search(text) and calls[0]["name"] != "get_product":
                calls.append(self._call("get_product", product=product))
            return calls
        if "incidents" in intents and re.search(r"\btriage\b|\bINC-\d+|\bwhat(?:'s| is) (?:wrong|broken|going on) with|"
                                                r"\bwhy (?:is|are|does|did|do)\b|\broot cause|\binvestigate\b|"
                                                r"\bwhat happened\b|\blooks? (?:broken|wrong|off|stale)\b", text, re.I):
            incident = re.search(r"\bINC-\d+\b", text, re.I)
            target = incident.group(0).upper() if incident else (self.find_target(text, product) if product else text)
            return [self._call("triage_incident", ref=target)]
        if "incidents" in intents:
            status = "open" if re.search(r"\b(?:open|active|current|ongoing|unresolved|on fire|burning)\b", text, re.I) else \
                "resolved" if re.search(r"\b(?:resolved|closed|past|previous)\b", text, re.I) else "all"
            calls.append(self._call("list_incidents", product=product, status=status))
        if "impact" in intents:
            change = next((v for k, v in _CHANGE_WORDS.items() if re.search(rf"\b{k}\b", text, re.I)), None)
            calls.append(self._call("lineage_impact", target=self.find_target(text, product), change=change))
        if "upstream" in intents:
            calls.append(self._call("lineage_upstream", target=self.find_target(text, product)))
        if "product" in intents and not product and not calls:
            # "who maintains the table with customers' emails?": the product that holds what is described.
            product = self._product_by_search(text)
        # Next to another question, the product itself is asked about only when ownership is.
        if "product" in intents and product and (not calls or _OWNERSHIP.search(text)):
            calls.insert(0, self._call("get_product", product=product))
        if calls:
            return calls
        if "sql" in intents:
            return [self._call("ask_sql", question=text)]
        if "product_weak" in intents and product:
            return [self._call("get_product", product=product)]
        if product and re.fullmatch(r"[\w\s-]+\??", text) and len(text.split()) <= 5:
            return [self._call("get_product", product=product)]
        return [self._call("search_catalog", query=text)]

    # --- argument resolution ---------------------------------------------------------------------------

    def find_product(self, text: str) -> str | None:
        lowered = " " + re.sub(r"[^\w\s/:.-]", " ", text.lower()) + " "
        for ref in re.findall(r"mesh://[\w.-]+/[\w.-]+", text):
            return str(MeshRef.parse(ref).product_ref())
        best = None
        for key, ref in self.names.products.items():
            if re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", lowered) and (best is None or len(key) > len(best[0])):
                best = (key, ref)
        if best:
            return best[1]
        for key, ref in sorted(self.names.datasets.items(), key=lambda kv: -len(kv[0])):
            if re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", lowered):
                return str(MeshRef.parse(ref).product_ref())
        return self._fuzzy_product(lowered)

    def _fuzzy_product(self, lowered: str) -> str | None:
        """A misspelt product name ("customer profil", "campain performance"): the closest name over windows of
        as many words, when it is close enough that a one- or two-letter slip explains the difference."""
        words = re.findall(r"[\w-]+", lowered)
        best: tuple[float, str] | None = None
        for key, ref in self.names.products.items():
            size = len(key.split())
            if len(key) < 6:  # short names are too easy to hit by accident
                continue
            for i in range(len(words) - size + 1):
                score = fuzz.ratio(key, " ".join(words[i:i + size]))
                if score >= _FUZZY_NAME and (best is None or score > best[0]):
                    best = (score, ref)
        return best[1] if best else None

    def _product_by_search(self, text: str) -> str | None:
        hits = self.catalog.search(text, k=1).hits if self._searchable(text) else []
        return str(MeshRef.parse(hits[0].ref).product_ref()) if hits else None

    def find_target(self, text: str, product: str | None) -> str:
        """A dataset or column reference for lineage: explicit refs, table.column, a column named near its product."""
        explicit = re.search(r"mesh://[\w.-]+/[\w.-]+/[\w.-]+(?:#\w+)?", text)
        if explicit:
            return explicit.group(0)
        lowered = text.lower()
        for key, dref in sorted(self.names.datasets.items(), key=lambda kv: -len(kv[0])):
            qualified = re.search(rf"(?<![\w-]){re.escape(key)}\.(\w+)", lowered)
            if qualified and qualified.group(1) in [c.lower() for c in self.names.columns[dref]]:
                return f"{dref}#{qualified.group(1)}"
        datasets = [d for d in self.names.columns if product and d.startswith(product + "/")]
        if not datasets:
            for key, dref in sorted(self.names.datasets.items(), key=lambda kv: -len(kv[0])):
                if re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", lowered):
                    datasets = [dref]
                    break
        for dref in datasets:
            for column in sorted(self.names.columns[dref], key=len, reverse=True):
                spoken = column.replace("_", " ").lower()
                if re.search(rf"\b(?:{re.escape(column.lower())}|{re.escape(spoken)})\b(?: column| field)?", lowered) and \
                        re.search(r"\bcolumn|\bfield|\battribute|" + re.escape(column.lower()), lowered):
                    return f"{dref}#{column}"
        if datasets:
            return datasets[0]
        hits = self.catalog.search(text, kind="column", k=1).hits if self._searchable(text) else []
        if hits:
            return hits[0].ref
        return text

    def _searchable(self, text: str) -> bool:
        return bool(self.catalog.index.tokenizer(text))

    def _contract_call(self, text: str, product: str | None) -> dict[str, Any]:
        action = next((name for name, pattern in _CONTRACT_ACTIONS if pattern.search(text)), None)
        if action == "contract_draft":
            return self._call("contract_draft", dataset=self.find_target(text, product) if product else text)
        if action in ("contract_diff", "publish_contract"):
            path = re.search(r"[\w./-]+\.ya?ml\b", text)
            return self._call(action, product=product, proposed=path.group(0) if path else None)
        if action in ("contract_test", "contract_lint"):
            return self._call(action, product=product)
        return self._call("get_product", product=product)

    @staticmethod
    def _embedded_sql(text: str) -> str | None:
        match = re.search(r"(?is)\b((?:select|with)\b.+?\bfrom\b.+?)(?:[?`]\s*$|$)", text)
        return match.group(1).strip().rstrip(";") if match and re.search(r"\bselect\b", match.group(1), re.I) else None

    @staticmethod
    def _call(name: str, **args: Any) -> dict[str, Any]:
        return {"name": name, "args": {k: v for k, v in args.items() if v is not None},
                "id": f"call_{uuid.uuid4().hex[:12]}", "type": "tool_call"}


class OfflineChatModel(BaseChatModel):
    """Rules and retrieval in the place of a language model (see the module docstring)."""

    workspace_root: str
    tool_names: list[str] = []
    _router: Router | None = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "meshpilot-offline"

    def bind_tools(self, tools: Any, **kwargs: Any) -> OfflineChatModel:
        bound = self.model_copy(update={"tool_names": [getattr(t, "name", None) or t["name"] for t in tools]})
        bound._router = self._router
        return bound

    @property
    def router(self) -> Router:
        if self._router is None:
            from meshpilot.mesh.workspace import Workspace
            from meshpilot.tools.catalog import Catalog

            self._router = Router(Catalog.open(Workspace.open(self.workspace_root)))
        return self._router

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.reply(messages))])

    def reply(self, messages: list[BaseMessage]) -> AIMessage:
        if messages and isinstance(messages[-1], ToolMessage):
            return AIMessage(content=compose(_this_turns_results(messages)))
        request = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        text = request.content if request is not None and isinstance(request.content, str) else ""
        calls = [c for c in self.router.route(text) if not self.tool_names or c["name"] in self.tool_names]
        if not calls:
            return AIMessage(content=HELP)
        missing = _missing_arguments(calls)
        if missing:
            return AIMessage(content=missing)
        return AIMessage(content="", tool_calls=calls)


def _this_turns_results(messages: list[BaseMessage]) -> list[tuple[str, dict[str, Any], ToolMessage]]:
    """(tool name, arguments, result) for the ToolMessages answering the last AI tool calls."""
    results: list[ToolMessage] = []
    for message in reversed(messages):
        if isinstance(message, ToolMessage):
            results.append(message)
            continue
        if isinstance(message, AIMessage) and message.tool_calls:
            by_id = {c["id"]: c for c in message.tool_calls}
            return [(by_id.get(r.tool_call_id, {}).get("name", r.name or "tool"),
                     by_id.get(r.tool_call_id, {}).get("args", {}), r) for r in reversed(results)]
        break
    return [(r.name or "tool", {}, r) for r in reversed(results)]


def _missing_arguments(calls: list[dict[str, Any]]) -> str | None:
    needs = {"get_product": "product", "contract_lint": "product", "contract_test": "product", "contract_diff": "product",
             "publish_contract": "product"}
    for call in calls:
        key = needs.get(call["name"])
        if key and not call["args"].get(key):
            return ("Which data product do you mean? Name it (e.g. 'customer lifetime value') or give its "
                    "mesh:// reference; `meshpilot products list` shows them all.")
        if call["name"] in ("contract_diff", "publish_contract") and not call["args"].get("proposed"):
            return "Which proposed contract file should I compare? Give its path inside the workspace (…/new.yaml)."
    return None


# --- composing answers from tool results --------------------------------------------------------------------


def _payload(message: ToolMessage) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON a tool returned (inside its data fence), or the error it reported."""
    text = message.content if isinstance(message.content, str) else json.dumps(message.content)
    if message.status == "error":
        return None, text
    body = re.search(r"\n(\{.*\})\n<<END ", text, re.S)
    try:
        return json.loads(body.group(1) if body else text), None
    except json.JSONDecodeError:
        return None, text


def compose(results: list[tuple[str, dict[str, Any], ToolMessage]]) -> str:
    parts: list[str] = []
    citations: list[str] = []
    for name, args, message in results:
        data, error = _payload(message)
        if error is not None:
            parts.append(f"I could not run {name}: {_first_line(error)}")
            continue
        citations.extend(c for c in data.get("citations", []) if isinstance(c, str))
        writer = _WRITERS.get(name, _generic)
        parts.append(writer(data, args))
    unique = list(dict.fromkeys(citations))
    if unique:
        parts.append("Sources: " + ", ".join(unique[:12]) + (f" (+{len(unique) - 12} more)" if len(unique) > 12 else ""))
    return "\n\n".join(p for p in parts if p)


def compose_one(name: str, data: dict[str, Any], args: dict[str, Any]) -> str:
    """One tool result written as the offline model would (the CLI reuses it)."""
    return _WRITERS.get(name, _generic)(data, args)


def _first_line(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip())[:400]


def quoted(text: str, what: str = "text") -> str:
    """Catalog text (descriptions, snippets, incident titles) as the offline model repeats it: in quotes, on
    one line, as data; with a warning when it tries to instruct an assistant. Anyone can edit the catalog."""
    from meshpilot.guardrails.injection import scan

    flat = re.sub(r"\s+", " ", text.strip())
    verdict = scan(flat)
    warning = (f" (warning: this {what} contains text that tries to instruct an AI assistant; it is shown as data "
               "and was not followed)") if verdict.injection else ""
    return f"“{flat}”{warning}"


def _product(data: dict[str, Any], args: dict[str, Any]) -> str:
    product, team = data.get("product", {}), data.get("owner_team") or {}
    lines = [f"**{product.get('name')}** ({data.get('ref')}) is owned by **{team.get('name') or product.get('owner')}**"
             f" (team `{product.get('owner')}`, domain {product.get('domain')})."]
    members = team.get("members") or []
    if members:
        lines.append("Contacts: " + "; ".join(f"{m.get('name')} ({m.get('role')}, {m.get('email')})" for m in members) + ".")
    extras = [f"Slack {team['slack_channel']}" if team.get("slack_channel") else None,
              f"on call {team['oncall']}" if team.get("oncall") else None]
    if any(extras):
        lines.append(", ".join(e for e in extras if e) + ".")
    if product.get("description"):
        lines.append("Description: " + quoted(product["description"], "description"))
    slos = product.get("slos") or []
    if slos:
        lines.append("SLOs: " + "; ".join(f"{s.get('kind')} {s.get('target')}" + (f" on {s['dataset']}" if s.get("dataset") else "")
                                          for s in slos) + ".")
    upstream = sorted({u.get("dataset_ref") or u.get("name") for u in data.get("upstream", [])})
    if upstream:
        lines.append("Fed by: " + ", ".join(upstream) + ".")
    downstream = sorted({d.get("dataset_ref") or d.get("name") for d in data.get("downstream", [])})
    if downstream:
        lines.append("Feeds: " + ", ".join(downstream) + ".")
    open_incidents = [i for i in data.get("incidents", []) if i.get("status") != "resolved"]
    if open_incidents:
        lines.append("Open incidents: " + "; ".join(f"{i['id']} {quoted(i['title'], 'incident title')} ({i['severity']})"
                                                    for i in open_incidents) + ".")
    return lines[0] + "\n\n" + "\n".join(f"- {line}" for line in lines[1:])


def _lineage(data: dict[str, Any], args: dict[str, Any], upstream: bool) -> str:
    items = data.get("items", [])
    datasets = sorted({i["ref"].split("#")[0] for i in items})
    if upstream:
        direct = sorted({i["ref"].split("#")[0] for i in items if len(i.get("path", [])) <= 1})
        total = data.get("counts", {}).get("dataset:affected", len(datasets))
        text = f"{data.get('source')} is fed by {total} upstream dataset(s)" + (":" if datasets else ".")
        further = [d for d in datasets if d not in direct]
        text += "".join(f"\n- directly: {d}" for d in direct) + "".join(f"\n- further upstream: {d}" for d in further)
        if data.get("more"):
            text += f"\n- +{data['more']} more item(s) not listed"
        return text
    counts = data.get("counts", {})
    reached = sum(n for key, n in counts.items() if key.startswith("dataset:") and not key.endswith(":unaffected"))
    broken = [i for i in items if i.get("status") in ("broken", "at_risk")]
    lines = [f"Changing {data.get('source')}" + (f" ({data['change']})" if data.get("change") else "") +
             f" reaches {reached} downstream dataset(s); " +
             ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + "."]
    shown = (broken or items)[:10]
    for item in shown:
        lines.append(f"- {item['status']}: {item['kind']} {item['ref']} ({item['reason']})")
    hidden = sum(n for key, n in counts.items() if not key.endswith(":unaffected")) - len(shown)
    if hidden > 0:
        lines.append(f"- +{hidden} more")
    return "\n".join(lines)


def _search(data: dict[str, Any], args: dict[str, Any]) -> str:
    hits = data.get("hits", [])
    if not hits:
        return f"Nothing in the catalog matches '{args.get('query')}'."
    lines = [f"Best matches for '{args.get('query')}':"]
    for hit in hits[:5]:
        extra = f" [{', '.join(hit['classification'])}]" if hit.get("classification") else ""
        lines.append(f"- {hit['kind']} {hit['ref']}{extra}: {quoted(hit.get('snippet') or '', 'snippet')} "
                     f"(owner {hit.get('owner')})")
    return "\n".join(lines)


def _table(columns: list[str], rows: list[list[Any]], limit: int = 10) -> str:
    if not columns:
        return ""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    body = "\n".join("| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows[:limit])
    more = f"\n({len(rows) - limit} more rows)" if len(rows) > limit else ""
    return f"{head}\n{body}{more}"


def _sql_answer(data: dict[str, Any], args: dict[str, Any]) -> str:
    text = data.get("answer") or ""
    if data.get("sql"):
        text += f"\n\n```sql\n{data['sql']}\n```"
    result = data.get("result") or {}
    if result.get("columns"):
        text += "\n\n" + _table(result["columns"], result.get("rows", []))
    return text.strip()


def _run(data: dict[str, Any], args: dict[str, Any]) -> str:
    return (f"```sql\n{data.get('sql')}\n```\n{data.get('row_count')} row(s)"
            f"{' (truncated)' if data.get('truncated') else ''}:\n\n" + _table(data.get("columns", []), data.get("rows", [])))


def _validation(data: dict[str, Any], args: dict[str, Any]) -> str:
    if data.get("ok"):
        return "The SQL is valid against the catalog and read-only. It reads: " + ", ".join(data.get("tables", [])) + "."
    return "The SQL has problems:\n" + "\n".join(f"- {p.get('message', p) if isinstance(p, dict) else p}"
                                                  for p in data.get("problems", []))


def _lint(data: dict[str, Any], args: dict[str, Any]) -> str:
    findings = data.get("findings", [])
    if not findings:
        return f"The contract {data.get('source')} passes lint (ODCS {data.get('api_version')})."
    return (f"The contract {data.get('source')} has {len(findings)} finding(s):\n" +
            "\n".join(f"- {f['severity']}: {f['path']}: {f['message']}" for f in findings[:15]))


def _diff(data: dict[str, Any], args: dict[str, Any]) -> str:
    lines = [("BREAKING: " if data.get("breaking") else "Not breaking: ") + ", ".join(
        f"{k}: {v}" for k, v in data.get("counts", {}).items())]
    for change in data.get("changes", [])[:15]:
        lines.append(f"- {change['severity']} {change['path']}: {change['message']}"
                     + (f" (breaks {', '.join(change['breaks'])})" if change.get("breaks") else ""))
    return "\n".join(lines)


def _test(data: dict[str, Any], args: dict[str, Any]) -> str:
    failed = [r for r in data.get("results", []) if not r.get("passed", r.get("ok", True))]
    summary = ", ".join(f"{k}: {v}" for k, v in data.get("counts", {}).items())
    if data.get("ok"):
        return f"The data meets its contract ({summary})."
    return f"The data does not meet its contract ({summary}):\n" + "\n".join(
        f"- {r.get('rule') or r.get('name')}: {r.get('message') or r.get('detail') or ''}" for r in failed[:10])


def _publish(data: dict[str, Any], args: dict[str, Any]) -> str:
    if not data.get("changed"):
        return f"{data.get('published')} already had that content; nothing changed."
    return (f"Published {args.get('proposed')} as {data.get('published')}"
            + (" (BREAKING: " if data.get("breaking") else " (") + ", ".join(f"{k}: {v}" for k, v in data.get("counts", {}).items()) + ").")


def _draft(data: dict[str, Any], args: dict[str, Any]) -> str:
    return f"Here is a draft contract for {args.get('dataset')} (review it before publishing):\n\n```yaml\n{data.get('contract_yaml')}```"


def _incidents(data: dict[str, Any], args: dict[str, Any]) -> str:
    incidents = data.get("incidents", [])
    if not incidents:
        return "No incidents match."
    return "Incidents:\n" + "\n".join(f"- {i['id']} [{i['status']}, {i['severity']}] {quoted(i['title'], 'incident title')} "
                                      f"(opened {i.get('opened_at')})" for i in incidents[:15])


def _triage(data: dict[str, Any], args: dict[str, Any]) -> str:
    check = data.get("check") or {}
    lines = [f"**{data['severity']}**: {data['subject']} on {data['dataset']}"
             + (f" (check {check.get('id')}, failing {data['failing_since']} time(s) since {data['first_failure']})"
                if check else "") + "."]
    lines.append("Root-cause candidates:")
    for i, c in enumerate(data.get("candidates", [])[:3], start=1):
        lines.append(f"{i}. {c['summary']} (score {c['score']}): " + "; ".join(c["evidence"][-2:]))
    blast = data.get("blast_radius", {})
    lines.append(f"Blast radius: {len(blast.get('products', []))} product(s) " + ", ".join(blast.get("products", []))
                 + (f"; consumers {', '.join(blast.get('consumers', []))}" if blast.get("consumers") else "") + ".")
    if data.get("owners"):
        lines.append("Owners: " + "; ".join(f"{o['name'] or o['team']} (on call {o.get('oncall') or '-'}, "
                                            f"{o.get('slack_channel') or '-'})" for o in data["owners"]) + ".")
    if data.get("similar_incidents"):
        lines.append("Similar: " + "; ".join(f"{i['id']} {i['title']}" for i in data["similar_incidents"]) + ".")
    lines.append("Next steps: " + " ".join(data.get("next_steps", [])))
    lines.append("Severity: " + "; ".join(data.get("severity_reasons", [])) + ".")
    return "\n\n".join(lines)


def _generic(data: dict[str, Any], args: dict[str, Any]) -> str:
    return "```json\n" + json.dumps({k: v for k, v in data.items() if k != "citations"}, default=str)[:2000] + "\n```"


_WRITERS = {
    "get_product": _product, "lineage_upstream": lambda d, a: _lineage(d, a, True),
    "lineage_impact": lambda d, a: _lineage(d, a, False), "search_catalog": _search, "ask_sql": _sql_answer,
    "run_sql": _run, "validate_sql": _validation, "contract_lint": _lint, "contract_diff": _diff,
    "contract_test": _test, "contract_draft": _draft, "list_incidents": _incidents, "publish_contract": _publish,
    "triage_incident": _triage,
}
