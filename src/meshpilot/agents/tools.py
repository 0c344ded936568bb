"""The copilot's tools: one definition per tool over `tools/`, shared by the agent and the MCP server.

Each tool has pydantic arguments (its JSON schema), a governed description (prompts/tools/tool.<name>.yaml),
MCP-style hints, and a function of (context, arguments) returning a JSON-able dict with `citations`.
Access control is not here: the policy is enforced inside the tool functions (search hides domains, the SQL
guard refuses columns) and by the caller of `call` (tools per role, approvals, audit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from meshpilot.errors import InvalidArgumentError
from meshpilot.guardrails.policy import Caller, Policy
from meshpilot.mesh.model import MeshRef
from meshpilot.mesh.workspace import Workspace
from meshpilot.prompts import registry


@dataclass
class ToolContext:
    workspace: Workspace
    caller: Caller | None = None
    model: Any | None = None  # the chat model for tools that write (ask_sql, contract descriptions)
    approved: bool = False  # a human approved reading PII in the clear (run_sql_on_pii) for this call

    @cached_property
    def policy(self) -> Policy | None:
        return Policy.load(self.workspace)

    @cached_property
    def catalog(self):
        from meshpilot.tools.catalog import Catalog

        return Catalog.open(self.workspace)

    @cached_property
    def guard(self):
        if self.policy is None or self.caller is None:
            return None
        return self.policy.sql_guard(self.caller, approved=self.approved)

    @cached_property
    def engine(self):
        from meshpilot.tools.sql import engine_for

        return engine_for(None, self.workspace)

    @cached_property
    def triage(self):
        from meshpilot.tools.incidents import Triage

        return Triage.open(self.workspace)

    @cached_property
    def sql_schema(self):
        from meshpilot.tools.sql import workspace_schema

        return workspace_schema(self.workspace)

    def forget_triage(self) -> None:
        """Drop the loaded triage facts (after an incident update), so the next triage reads them again."""
        self.__dict__.pop("triage", None)

    def for_caller(self, caller: Caller | None, approved: bool = False) -> ToolContext:
        """A context for another caller that shares this one's caller-independent state (policy, catalog,
        SQL schema), so a server opens the catalog once, not once per role."""
        other = ToolContext(self.workspace, caller, self.model, approved)
        for name in ("policy", "catalog", "sql_schema", "triage", "engine"):
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    def product_ref(self, text: str) -> str:
        """A product reference from a mesh:// ref, a product id or a name."""
        from meshpilot.mesh.store import MeshStore

        with MeshStore.open(self.workspace) as store:
            return str(store.resolve_product(text))

    def visible(self, ref: str) -> None:
        """Refuse a product or dataset outside the caller's domains and products."""
        if self.guard is not None:
            self.guard.require_visible(ref)


# --- arguments ---------------------------------------------------------------------------------------------


class Args(BaseModel):
    """A tool's arguments: an argument the tool does not take is refused, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class SearchArgs(Args):
    query: str = Field(description="What to look for, in plain words.")
    kind: Literal["product", "dataset", "column"] | None = Field(None, description="Only this kind of hit.")
    domain: str | None = Field(None, description="Only this domain.")
    k: int = Field(5, ge=1, le=50, description="How many hits.")


class ProductArgs(Args):
    product: str = Field(description="A product: mesh://<domain>/<product>, its id or its name.")


class QuestionArgs(Args):
    question: str = Field(description="A question about the data, in plain words.")


class SqlArgs(Args):
    sql: str = Field(description="One SQL query (DuckDB dialect unless told otherwise).")
    dialect: str = Field("duckdb", description="The SQL dialect the query is written in.")


class RunSqlArgs(SqlArgs):
    limit: int = Field(100, ge=1, le=10_000, description="At most this many rows.")


# Lineage items a tool returns to the model: worst and nearest first, every item counted. A join key's
# impact at a million edges reaches a hundred thousand; the model reads the counts and the first ones.
TOOL_ITEMS = 40


class TargetArgs(Args):
    target: str = Field(description="A dataset or column: mesh://<domain>/<product>/<dataset>[#column], a "
                                    "dataset as lineage events name it (<namespace>/<name>[#column]), or a "
                                    "qualified table name.")
    change: Literal["drop", "rename", "type", "semantics"] | None = Field(
        None, description="The proposed change, to classify each downstream item (impact only).")


class DatasetArgs(Args):
    dataset: str = Field(description="A dataset: mesh://<domain>/<product>/<dataset>, or a product (its first dataset).")


class DiffArgs(Args):
    product: str = Field(description="The product whose published contract is compared.")
    proposed: str = Field(description="Path of the proposed contract file (ODCS YAML), relative to the workspace.")


class IncidentArgs(Args):
    product: str | None = Field(None, description="Only incidents of this product.")
    status: Literal["open", "resolved", "all"] = Field("all", description="Which incidents: open means not resolved "
                                                                          "(open, investigating or mitigated).")


# --- the tool functions ---------------------------------------------------------------------------------------


def _search(ctx: ToolContext, a: SearchArgs) -> dict[str, Any]:
    result = ctx.catalog.search(a.query, domain=a.domain, kind=a.kind, k=a.k,
                                visible_domains=ctx.guard.domains if ctx.guard else None,
                                visible_products=ctx.guard.products if ctx.guard else None)
    return {"hits": [h.model_dump(exclude={"matched"}) for h in result.hits], "citations": result.citations}


def _product(ctx: ToolContext, a: ProductArgs) -> dict[str, Any]:
    from meshpilot.tools.catalog import get_product

    ref = ctx.product_ref(a.product)
    ctx.visible(ref)
    details = get_product(ref, workspace=ctx.workspace)
    details["citations"] = [ref] + [d.get("dataset_ref") for d in details.get("upstream", []) if d.get("dataset_ref")]
    return details


def _link(ctx: ToolContext, a: QuestionArgs) -> dict[str, Any]:
    link = ctx.catalog.link_schema(a.question)
    tables = [t for t in link.tables if not ctx.guard or ctx.guard.check_table(t) is None]
    return {"tables": [t.model_dump() for t in tables], "joins": [j.model_dump() for j in link.joins],
            "citations": [t.ref for t in tables if t.ref]}


def _validate(ctx: ToolContext, a: SqlArgs) -> dict[str, Any]:
    from meshpilot.tools.sql import bounds, validate_sql

    result = validate_sql(a.sql, ctx.sql_schema, a.dialect, ctx.guard, **bounds(ctx.workspace))
    return result.model_dump() | {"citations": result.tables + result.columns}


def _run(ctx: ToolContext, a: RunSqlArgs) -> dict[str, Any]:
    from meshpilot.tools.sql import bounds, run_validated

    result = run_validated(a.sql, ctx.sql_schema, ctx.engine, a.dialect, a.limit, caller=ctx.guard,
                           **bounds(ctx.workspace))
    return result.model_dump()


def _ask(ctx: ToolContext, a: QuestionArgs) -> dict[str, Any]:
    from meshpilot.agents.sql_loop import SqlLoop

    loop = SqlLoop(ctx.catalog, ctx.engine, model=ctx.model, caller=ctx.guard)
    return loop.ask(a.question).model_dump()


def _impact(ctx: ToolContext, a: TargetArgs) -> dict[str, Any]:
    from meshpilot.tools.lineage import impact

    result = impact(a.target, change=a.change, workspace=ctx.workspace, limit=TOOL_ITEMS)
    ctx.visible(result.source)
    return result.model_dump()


def _upstream(ctx: ToolContext, a: TargetArgs) -> dict[str, Any]:
    from meshpilot.tools.lineage import upstream

    result = upstream(a.target, workspace=ctx.workspace, limit=TOOL_ITEMS)
    ctx.visible(result.source)
    return result.model_dump()


def _draft(ctx: ToolContext, a: DatasetArgs) -> dict[str, Any]:
    import yaml

    from meshpilot.tools.contracts import draft_contract

    target = a.dataset if a.dataset.startswith("mesh://") else ctx.product_ref(a.dataset)
    ctx.visible(target)
    contract = draft_contract(target, ctx.workspace, model=ctx.model)
    return {"contract_yaml": yaml.safe_dump(contract, sort_keys=False), "citations": [target]}


def _contract_path(ctx: ToolContext, product: str) -> tuple[str, Path]:
    from meshpilot.mesh.store import MeshStore

    ref = ctx.product_ref(product)
    ctx.visible(ref)
    with MeshStore.open(ctx.workspace) as store:
        contract = store.product(ref).contract
    if not contract:
        raise InvalidArgumentError(f"{ref} has no published contract.",
                                   hint="Draft one with contract_draft, review it, and publish it.")
    return ref, ctx.workspace.root / contract


def _lint(ctx: ToolContext, a: ProductArgs) -> dict[str, Any]:
    from meshpilot.tools.contracts import lint_contract

    ref, path = _contract_path(ctx, a.product)
    return lint_contract(path).model_dump() | {"citations": [ref]}


def _diff(ctx: ToolContext, a: DiffArgs) -> dict[str, Any]:
    from meshpilot.tools.contracts import diff_contract

    ref, path = _contract_path(ctx, a.product)
    proposed = (ctx.workspace.root / a.proposed).resolve()
    if not proposed.is_relative_to(ctx.workspace.root.resolve()):
        raise InvalidArgumentError(f"The proposed contract {a.proposed} is outside the workspace.",
                                   hint="Put it inside the workspace and give its relative path.")
    return diff_contract(path, proposed, workspace=ctx.workspace).model_dump() | {"citations": [ref]}


def _publish(ctx: ToolContext, a: DiffArgs) -> dict[str, Any]:
    """Replace a product's contract with a proposed file: linted first (errors refuse it), diffed for the
    record, written atomically after the whole workspace validates with it."""
    from meshpilot.tools.contracts import diff_contract, lint_contract

    ref, path = _contract_path(ctx, a.product)
    proposed = (ctx.workspace.root / a.proposed).resolve()
    if not proposed.is_relative_to(ctx.workspace.root.resolve()) or not proposed.is_file():
        raise InvalidArgumentError(f"The proposed contract {a.proposed} is not a file inside the workspace.")
    lint = lint_contract(proposed)
    errors = [f for f in lint.findings if f.severity == "error"]
    if errors:
        raise InvalidArgumentError(f"The proposed contract {a.proposed} does not pass lint; nothing was published.",
                                   problems=[f"{f.path}: {f.message}" for f in errors])
    diff = diff_contract(path, proposed, workspace=ctx.workspace)
    relative = path.relative_to(ctx.workspace.root).as_posix()
    changed = ctx.workspace.apply({relative: proposed.read_text(encoding="utf-8")})
    return {"published": relative, "changed": bool(changed), "breaking": diff.breaking, "counts": diff.counts,
            "citations": [ref]}


def _test(ctx: ToolContext, a: ProductArgs) -> dict[str, Any]:
    from meshpilot.tools.contracts import test_contract

    ref, path = _contract_path(ctx, a.product)
    return test_contract(path, ctx.workspace).model_dump() | {"citations": [ref]}


class TriageArgs(Args):
    ref: str = Field(description="What to triage: an incident id (INC-0003), a check id, a dataset "
                                 "(mesh:// or qualified name) or the text of an alert.")


class UpdateIncidentArgs(Args):
    incident: str = Field(description="The incident id, e.g. INC-0003.")
    status: Literal["open", "investigating", "mitigated", "resolved"] | None = Field(None, description="New status.")
    assignee: str | None = Field(None, description="Who takes it.")
    note: str | None = Field(None, description="A note for the timeline.")


def _triage(ctx: ToolContext, a: TriageArgs) -> dict[str, Any]:
    from meshpilot.tools.incidents import summarize

    report = ctx.triage.triage(a.ref)
    ctx.visible(report.dataset)
    result = report.model_dump(mode="json")
    if ctx.model is not None:  # the deterministic report stands on its own; a model only summarises it
        result["summary"] = summarize(report, ctx.model)
    return result


def _update_incident(ctx: ToolContext, a: UpdateIncidentArgs) -> dict[str, Any]:
    from meshpilot.tools.incidents import update_incident

    actor = f"{ctx.caller.role}" + (f"@{ctx.caller.team}" if ctx.caller and ctx.caller.team else "") if ctx.caller else "meshpilot"
    incident = update_incident(ctx.workspace, a.incident, actor, a.status, a.assignee, a.note, visible=ctx.visible)
    ctx.forget_triage()
    return {"incident": incident.model_dump(mode="json", exclude_defaults=True),
            "citations": list(incident.products)}


def _incidents(ctx: ToolContext, a: IncidentArgs) -> dict[str, Any]:
    from meshpilot.mesh.store import MeshStore

    ref = ctx.product_ref(a.product) if a.product else None
    if ref:
        ctx.visible(ref)
    with MeshStore.open(ctx.workspace) as store:
        rows = store._rows("SELECT id, title, status, severity, opened_at, resolved_at, products FROM incidents "
                           "ORDER BY opened_at DESC", [])
    domains = ctx.guard.domains if ctx.guard else None
    incidents = [r for r in rows if (ref is None or ref in (r["products"] or []))
                 and (a.status == "all" or (r["status"] == "resolved") == (a.status == "resolved"))
                 and (domains is None or any(MeshRef.parse(p).domain in domains for p in r["products"] or []))]
    return {"incidents": incidents, "citations": sorted({p for r in incidents for p in r["products"] or []})}


def _pii_touched(result: dict[str, Any]) -> list[str]:
    """The PII columns a result read, in the clear or masked, for the audit record."""
    return sorted({*(result.get("masked") or []), *(result.get("pii_columns") or [])})


@dataclass(frozen=True)
class ToolSpec:
    name: str
    args: type[BaseModel]
    run: Callable[[ToolContext, Any], dict[str, Any]]
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True
    needs_model: bool = False
    returns_data: bool = False  # rows of data (not catalog metadata): personal data in it is the data's PII

    @property
    def description(self) -> str:
        return registry.load(f"tool.{self.name}").template.strip()

    @property
    def prompt_ref(self) -> str:
        return registry.load(f"tool.{self.name}").ref

    def as_langchain(self):
        from langchain_core.tools import StructuredTool

        def unavailable(**kwargs: Any) -> str:  # the graph runs tools itself, with policy and audit
            raise RuntimeError("copilot tools run through the graph's tool node")

        return StructuredTool(name=self.name, description=self.description, args_schema=self.args, func=unavailable)


TOOLS: dict[str, ToolSpec] = {t.name: t for t in [
    ToolSpec("search_catalog", SearchArgs, _search),
    ToolSpec("get_product", ProductArgs, _product),
    ToolSpec("link_schema", QuestionArgs, _link),
    ToolSpec("validate_sql", SqlArgs, _validate),
    ToolSpec("run_sql", RunSqlArgs, _run, returns_data=True),
    ToolSpec("ask_sql", QuestionArgs, _ask, needs_model=True, returns_data=True),
    ToolSpec("lineage_impact", TargetArgs, _impact),
    ToolSpec("lineage_upstream", TargetArgs, _upstream),
    ToolSpec("contract_draft", DatasetArgs, _draft, needs_model=True, returns_data=True),
    ToolSpec("contract_lint", ProductArgs, _lint),
    ToolSpec("contract_diff", DiffArgs, _diff),
    ToolSpec("contract_test", ProductArgs, _test, returns_data=True),
    ToolSpec("publish_contract", DiffArgs, _publish, read_only=False, idempotent=True),
    # Incident notes and timelines are free text written during an incident: customer data ends up there.
    ToolSpec("list_incidents", IncidentArgs, _incidents, returns_data=True),
    ToolSpec("triage_incident", TriageArgs, _triage, returns_data=True),
    ToolSpec("update_incident", UpdateIncidentArgs, _update_incident, read_only=False, idempotent=False,
             returns_data=True),
]}


def pii_columns_touched(ctx: ToolContext, sql: str, dialect: str = "duckdb") -> list[str]:
    """The PII columns a query would read in the clear once approved (for approvals), or [] when it does not
    validate. Whatever the validator misses, the engine still shows masked until the call is approved."""
    from meshpilot.tools.sql import validate_sql

    if ctx.guard is None:
        return []
    result = validate_sql(sql, ctx.sql_schema, dialect, ctx.guard)
    return result.pending_approval if result.ok else []


# --- calling a tool: the pipeline the agent and the MCP server share ------------------------------------------


@dataclass
class Outcome:
    """What one tool call came to: a result, or an error the caller (or model) can read."""

    name: str
    result: dict[str, Any] | None = None
    error: str | None = None
    verdict: str = "allowed"  # allowed, approved, refused, denied

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def citations(self) -> list[str]:
        return [c for c in (self.result or {}).get("citations", []) if isinstance(c, str)]


class ToolRunner:
    """Runs tools for one caller: the role's tools, argument validation, the tool, and the audit record.
    Approval decisions are the front end's (the agent interrupts, the MCP server refuses); pass them in."""

    def __init__(self, context: ToolContext):
        self.context = context
        policy, caller = context.policy, context.caller
        self.tools = {t.name: t for t in TOOLS.values() if policy is None or caller is None or policy.may_call(caller, t.name)}

    @property
    def caller_dict(self) -> dict[str, Any]:
        caller = self.context.caller
        return {"role": caller.role if caller else None, "team": caller.team if caller else None}

    def approval(self, name: str, args: dict[str, Any]) -> tuple[str, str] | None:
        """(action, reason) when the policy wants a human to approve this call first."""
        policy = self.context.policy
        if policy is None or not policy.approval:
            return None
        if name in policy.approval:
            return name, f"{name} is an action the policy reserves for approval"
        if name == "run_sql" and policy.pii_needs_approval():
            touched = pii_columns_touched(self.context, str(args.get("sql", "")), args.get("dialect", "duckdb"))
            if touched:
                return "run_sql_on_pii", "the query reads personal data: " + ", ".join(touched)
        return None

    def call(self, name: str, args: dict[str, Any], *, channel: str, conversation: str | None = None,
             decision: dict[str, Any] | None = None) -> Outcome:
        import time

        from pydantic import ValidationError

        from meshpilot.errors import MeshpilotError
        from meshpilot.guardrails import audit

        record = audit.AuditRecord(name, self.caller_dict, args, channel=channel, conversation=conversation)
        started = time.perf_counter()

        def finish(outcome: Outcome) -> Outcome:
            record.verdict = outcome.verdict
            record.outcome = "ok" if outcome.ok else ("refused" if outcome.verdict in ("refused", "denied") else "error")
            record.error = outcome.error
            record.duration_ms = round((time.perf_counter() - started) * 1000, 2)
            audit.append(self.context.workspace.root, record)
            return outcome

        spec = TOOLS.get(name)
        if spec is None:
            return finish(Outcome(name, error=f"There is no tool '{name}'. Tools: {', '.join(self.tools)}."))
        if name not in self.tools:
            record.reason = f"role may not use {name}"
            return finish(Outcome(name, error=f"Role '{self.context.caller.role}' may not use {name}.", verdict="refused"))
        if decision is not None:
            record.reason = f"{decision['action']} " + ("approved" if decision["approved"] else "denied") + (
                f" by {decision['by']}" if decision.get("by") else "")
            if not decision["approved"]:
                return finish(Outcome(name, error=f"The user denied {decision['action']}; do not retry it.",
                                      verdict="denied"))
        try:
            parsed = spec.args.model_validate(args)
        except ValidationError as exc:
            known = ", ".join(spec.args.model_fields)
            problems = "; ".join(
                f"'{'.'.join(map(str, e['loc']))}' is not an argument of {name} (it takes: {known})"
                if e["type"] == "extra_forbidden" else f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                for e in exc.errors())
            return finish(Outcome(name, error=f"Invalid arguments for {name}: {problems}."))
        record.prompts = [spec.prompt_ref]
        verdict = "approved" if decision else "allowed"
        context = self.context
        if decision is not None and decision.get("action") == "run_sql_on_pii":
            context = context.for_caller(context.caller, approved=True)
        try:
            result = spec.run(context, parsed)
            record.pii = _pii_touched(result)
            return finish(Outcome(name, result=result, verdict=verdict))
        except MeshpilotError as exc:
            refused = [str(p) for p in exc.problems if "may not" in str(p)] or (
                [exc.message] if "may not" in exc.message else [])
            if refused:
                record.reason = "; ".join(refused)
            detail = exc.message + ("\n" + "\n".join(map(str, exc.problems)) if exc.problems else "") + (
                f"\n{exc.hint}" if exc.hint else "")
            return finish(Outcome(name, error=detail, verdict="refused" if refused else verdict))
        except Exception as exc:  # a bug in one tool must not take the conversation or the server down
            return finish(Outcome(name, error=f"{name} failed: {type(exc).__name__}: {exc}", verdict=verdict))
