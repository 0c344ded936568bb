"""`meshpilot evals run`: versioned suites through the real tools and the agent, scored with Ragas.

Each suite reads its dataset from `evals/suites/` and runs on a freshly built demo mesh. Metrics:
- retrieval, schema_linking: Ragas NonLLMContextRecall / NonLLMContextPrecisionWithReference of the
  mesh:// citations against gold ones (exact references: the string-similarity threshold is 1.0);
  schema_linking also links Spider's held-out questions among all of its 166 schemas (recall@10, db@1);
- sql: validity rate of the queries written, answered rate, execution match of the answered against the
  gold SQL's rows (Ragas DataCompyScore, row F1), and the share of answers that are wrong;
- sql_validation: valid queries in every scope (CTE, subquery, HAVING, window, quoted names) accepted, each of
  their column and table references renamed to a near miss rejected, the analyst's personal-data rule held
  in every scope (checked on the rows run_sql returns, not on the verdict alone);
- contracts: schema-valid rate of drafted contracts; recall and precision of the PII classifier against
  the curated classifications (which it does not see);
- lineage: precision and recall of the downstream dataset sets;
- triage: root cause hit@1 and hit@3 on generated scenarios with a planted cause;
- guardrails: PII leak count (must be 0), injection block rate, policy violation count (must be 0);
- agent: Ragas ToolCallAccuracy of the tool-call trajectories (the suite written with the router, and the
  held-out test split of phrasings written apart from it), StringPresence of the key facts;
  with a judge model, Faithfulness and ResponseRelevancy (otherwise reported as skipped, never passed).
Thresholds live in `evals/thresholds.yaml`; the run fails when a metric is below its threshold, or worse
than `--baseline` by more than its tolerance.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from meshpilot.errors import InvalidArgumentError
from meshpilot.mesh.workspace import Workspace

SUITES_DIR = Path(str(files("meshpilot.evals"))) / "suites"
THRESHOLDS = Path(str(files("meshpilot.evals"))) / "thresholds.yaml"


@dataclass
class SuiteResult:
    name: str
    cases: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why
    failures: list[dict[str, Any]] = field(default_factory=list)  # the cases that missed, for the report
    seconds: float = 0.0


@dataclass
class Check:
    suite: str
    metric: str
    value: float | None
    threshold: str
    status: str  # pass, fail, skipped
    reason: str = ""


def _ragas():
    """Import Ragas 0.4. Its `ragas.llms.base` imports ChatVertexAI from a langchain-community module that
    current releases no longer ship (vibrantlabsai/ragas#2745, fixed upstream but unreleased): an empty
    stand-in module lets Ragas import; Meshpilot never uses Vertex through Ragas."""
    warnings.filterwarnings("ignore", module="langchain_community")
    try:
        import langchain_community.chat_models.vertexai  # noqa: F401
    except ImportError:
        shim = types.ModuleType("langchain_community.chat_models.vertexai")
        shim.ChatVertexAI = type("ChatVertexAI", (), {})
        sys.modules["langchain_community.chat_models.vertexai"] = shim
    import ragas

    return ragas


def load_suite(name: str) -> list[dict[str, Any]]:
    path = SUITES_DIR / f"{name}.jsonl"
    if not path.exists():
        raise InvalidArgumentError(f"No eval dataset {path.name}.", hint=f"Suites: {', '.join(SUITES)}.")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _context_scores(retrieved: list[str], reference: list[str]) -> tuple[float, float]:
    _ragas()
    from ragas.dataset_schema import SingleTurnSample
    from ragas.metrics import NonLLMContextPrecisionWithReference, NonLLMContextRecall

    sample = SingleTurnSample(retrieved_contexts=retrieved or [""], reference_contexts=reference)
    recall, precision = NonLLMContextRecall(), NonLLMContextPrecisionWithReference()
    recall.threshold = precision.threshold = 0.999  # mesh:// references match exactly or not at all

    async def both():
        return await recall.single_turn_ascore(sample), await precision.single_turn_ascore(sample)

    r, p = asyncio.run(both())
    return float(r), float(p)


# --- suites ------------------------------------------------------------------------------------------------


def suite_retrieval(ws: Workspace, options: dict[str, Any]) -> SuiteResult:
    from meshpilot.tools.catalog import Catalog

    result, catalog = SuiteResult("retrieval"), Catalog.open(ws)
    recalls, precisions = [], []
    for case in load_suite("retrieval"):
        hits = [h.ref for h in catalog.search(case["question"], k=5).hits]
        r, p = _context_scores(hits, case["gold"])
        recalls.append(r)
        precisions.append(p)
        if r < 1:
            result.failures.append({"question": case["question"], "gold": case["gold"], "got": hits})
    # Paraphrases by someone who does not know the column names, written apart from the index; the test
    # split only (the dev split was looked at while the synonyms were written).
    paraphrases = [c for c in load_suite("retrieval_paraphrases") if c["split"] == "test"]
    found = []
    for case in paraphrases:
        hits = [h.ref for h in catalog.search(case["question"], k=5).hits]
        found.append(1.0 if set(case["gold"]) <= set(hits) else 0.0)
        if not found[-1]:
            result.failures.append({"paraphrase": case["question"], "gold": case["gold"], "got": hits})
    result.cases = len(recalls) + len(paraphrases)
    result.metrics = {"context_recall": _mean(recalls), "context_precision": _mean(precisions),
                      "paraphrase_recall_at_5": _mean(found)}
    return result


def suite_schema_linking(ws: Workspace, options: dict[str, Any]) -> SuiteResult:
    """The demo's questions on its 5 tables at k=2 (at k=5 every table is returned and recall cannot miss),
    and Spider's: every one of its 166 schemas in one catalog, the questions of the held-out databases."""
    import sqlglot
    from sqlglot import exp

    from meshpilot.tools.catalog import Catalog

    result, catalog = SuiteResult("schema_linking"), Catalog.open(ws)
    recalls, precisions = [], []
    for case in load_suite("sql_offline"):
        gold_tables = sorted({f"{t.db}.{t.name}" if t.db else t.name
                              for t in sqlglot.parse_one(case["gold_sql"], read="duckdb").find_all(exp.Table)})
        link = catalog.link_schema(case["question"], k=2)
        got = [t.qualified_name for t in link.tables if t.role == "match"]
        r, p = _context_scores(got, gold_tables)
        recalls.append(r)
        precisions.append(p)
        if r < 1:
            result.failures.append({"question": case["question"], "gold": gold_tables, "got": got})
    result.cases = len(recalls)
    result.metrics = {"context_recall": _mean(recalls), "context_precision": _mean(precisions)}
    _spider_linking(result, options)
    return result


def _spider_linking(result: SuiteResult, options: dict[str, Any]) -> None:
    from meshpilot.evals.spider import (
        linked,
        product_id,
        products_from_spider,
        spider_dir,
        split_of,
    )
    from meshpilot.tools.catalog import Catalog

    folder = spider_dir(options.get("spider"))
    if folder is None:
        why = "Spider not found: give --spider DIR (the folder with tables.json and dev.json) or MESHPILOT_SHARED_DATA"
        result.skipped.update({"spider_recall_at_10": why, "spider_db_at_1": why})
        return
    catalog = Catalog.from_products(products_from_spider(folder / "tables.json"))
    recall10, db1, counted = 0, 0, 0
    for case in json.loads((folder / "dev.json").read_text(encoding="utf-8")):
        scored = linked(catalog, case) if split_of(case["db_id"]) == "test" else None
        if scored is None:
            continue
        counted += 1
        wanted, names, _ = scored
        hit, right_db = wanted <= set(names), bool(names) and names[0][0] == product_id(case["db_id"])
        recall10 += hit
        db1 += right_db
        if not (hit and right_db) and len(result.failures) < 50:
            result.failures.append({"question": case["question"], "db": case["db_id"], "gold": sorted(t for _, t in wanted),
                                    "got": [f"{d}.{t}" for d, t in names[:5]]})
    result.cases += counted
    result.metrics.update({"spider_recall_at_10": round(recall10 / counted, 4) if counted else 0.0,
                           "spider_db_at_1": round(db1 / counted, 4) if counted else 0.0})


def suite_sql(ws: Workspace, options: dict[str, Any]) -> SuiteResult:
    import contextlib
    import io

    _ragas()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # datacompy prints notes about optional back ends on import; stdout may be --json output.
        warnings.simplefilter("ignore")
        import datacompy.core  # noqa: F401
    from ragas.metrics.collections import DataCompyScore

    from meshpilot.agents.sql_loop import SqlLoop
    from meshpilot.tools.catalog import Catalog
    from meshpilot.tools.sql import DuckDBEngine

    engine = DuckDBEngine(ws.warehouse_path)
    # Rows are compared whole: the interactive row cap would make a right answer look partial.
    loop = SqlLoop(Catalog.open(ws), engine, model=options.get("model"), limit=1000)
    score = DataCompyScore(mode="rows", metric="f1")
    result, valid, matches = SuiteResult("sql"), [], []
    cases = 0
    for case in load_suite("sql_offline"):
        cases += 1
        answer = loop.ask(case["question"])
        if answer.sql:
            valid.append(1.0 if answer.result is not None else 0.0)
        gold_columns, gold_rows = engine.execute(case["gold_sql"], 10.0)
        if answer.result is None:
            # Refused (it says what it could not map) or refused by the validator: not an answer.
            result.failures.append({"question": case["question"], "problem": answer.answer[:200]})
            continue
        value = asyncio.run(score.ascore(reference=_csv(gold_rows), response=_csv(answer.result.rows))).value
        matches.append(float(value))
        if value < 1:
            result.failures.append({"question": case["question"], "sql": answer.sql, "match": value})
    result.cases = cases
    # A refusal that names what is missing and a wrong answer are not the same failure: counted apart.
    result.metrics = {"validity_rate": _mean(valid), "answered_rate": len(matches) / cases if cases else 0.0,
                      "execution_match": _mean(matches),
                      "wrong_of_answered": sum(m < 1 for m in matches) / len(matches) if matches else 0.0}
    return result


def _csv(rows: list[list[Any]]) -> str:
    """Rows as CSV with positional headers and in a canonical order (DataCompy compares rows by position;
    a query without ORDER BY may return the same set in another order)."""
    width = max((len(r) for r in rows), default=1)
    lines = [",".join(f"c{i}" for i in range(width))]
    for row in sorted(rows, key=lambda r: [_cell(v) for v in r]):
        lines.append(",".join(_cell(v) for v in row))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    text = "" if value is None else str(value)
    return '"' + text.replace('"', '""') + '"' if "," in text or '"' in text else text


def suite_sql_validation(ws: Workspace, options: dict[str, Any]) -> SuiteResult:
    """Valid queries in every scope must pass; each of their column and table references renamed to a near
    miss must not; the analyst's personal-data rule must hold in every scope, on the rows that come back."""
    import random

    import duckdb

    from meshpilot.evals.mutants import every_mutant
    from meshpilot.guardrails.policy import Caller, Policy
    from meshpilot.tools.sql import SqlRejectedError, run_sql, validate

    result, rng = SuiteResult("sql_validation"), random.Random(7)  # seeded: the same mutants every run
    guard = Policy.load(ws).sql_guard(Caller(role="analyst"))
    with duckdb.connect(str(ws.warehouse_path), read_only=True) as con:
        secrets = {str(v) for row in con.execute("SELECT email, phone FROM customer.customer_profile").fetchall()
                   for v in row if v}
    accepted, rejected, enforced = [], [], []
    for case in load_suite("sql_validation"):
        if "analyst" in case:
            verdict = validate(case["sql"], workspace=ws, caller=guard)
            try:
                rows = run_sql(case["sql"], workspace=ws, caller=guard, limit=1000).rows
            except SqlRejectedError:
                rows = None
            leaked = sorted({str(v) for row in rows or [] for v in row} & secrets)
            held = (not verdict.ok and rows is None) if case["analyst"] == "reject" else (verdict.ok and rows is not None)
            enforced.append(1.0 if held and not leaked else 0.0)
            if not enforced[-1]:
                result.failures.append({"scope": case["scope"], "sql": case["sql"], "expected": case["analyst"],
                                        "verdict": verdict.ok, "leaked": leaked[:3]})
            continue
        verdict = validate(case["sql"], workspace=ws)
        accepted.append(1.0 if verdict.ok else 0.0)
        if not verdict.ok:
            result.failures.append({"scope": case["scope"], "sql": case["sql"], "problems": [str(p) for p in verdict.problems]})
        for kind, mutant, name in every_mutant(case["sql"], "duckdb", rng):
            rejected.append(0.0 if validate(mutant, workspace=ws).ok else 1.0)
            if not rejected[-1]:
                result.failures.append({"scope": case["scope"], "mutant": mutant, "renamed": f"{kind} {name}"})
    result.cases = len(accepted) + len(rejected) + len(enforced)
    result.metrics = {"valid_accepted_rate": _mean(accepted), "mutant_rejected_rate": _mean(rejected),
                      "policy_enforced_rate": _mean(enforced)}
    return result


def suite_contracts(ws: Workspace, options: dict[str, Any]) -> SuiteResult:
    from meshpilot.guardrails.classify import classify_workspace
    from meshpilot.mesh.store import MeshStore
    from meshpilot.tools.contracts import draft_contract, lint_contract

    result = SuiteResult("contracts")
    with MeshStore.open(ws) as store:
        products = [store.product(r["ref"]) for r in store.list_products()]
    valid = []
    for product in products:
        for dataset in product.datasets:
            contract = draft_contract(str(product.dataset_ref(dataset.name)), ws)
            path = Path(tempfile.mkstemp(suffix=".yaml")[1])
            path.write_text(yaml.safe_dump(contract, sort_keys=False))
            lint = lint_contract(path)
            path.unlink()
            valid.append(1.0 if not [f for f in lint.findings if f.severity == "error"] else 0.0)
    # The classifier against the curated classifications, which it never sees: it reads each column's name,
    # description, type and sampled values (a drafted contract copies the curated one, so comparing the
    # draft with it measured nothing). Unclassified columns count too: proposing PII there is a false alarm.
    hits, labelled, proposed = 0, 0, 0
    for proposal in classify_workspace(ws):
        labelled += proposal.current is not None
        proposed += proposal.proposed is not None
        if proposal.current is not None and proposal.proposed == proposal.current:
            hits += 1
        elif proposal.current is not None or proposal.proposed is not None:
            result.failures.append({"column": f"{proposal.dataset}#{proposal.column}", "gold": proposal.current,
                                    "got": proposal.proposed, "evidence": proposal.evidence})
    result.cases = len(valid) + labelled
    result.metrics = {"schema_valid_rate": _mean(valid), "classification_recall": hits / labelled if labelled else 0.0,
                      "classification_precision": hits / proposed if proposed else 0.0}
    return result


def suite_lineage(ws: Workspace, options: dict[str, Any]) -> SuiteResult:
    from meshpilot.tools.lineage import impact

    result, precisions, recalls = SuiteResult("lineage"), [], []
    for case in load_suite("lineage"):
        report = impact(case["target"], change=case.get("change"), workspace=ws)
        source = case["target"].split("#")[0]
        got = {i.ref.split("#")[0] for i in report.items if i.kind in ("column", "dataset")} - {source}
        gold = set(case["gold_downstream_datasets"])
        precision = len(got & gold) / len(got) if got else (1.0 if not gold else 0.0)
        recall = len(got & gold) / len(gold) if gold else (1.0 if not got else 0.0)
        precisions.append(precision)
        recalls.append(recall)
        if precision < 1 or recall < 1:
            result.failures.append({"target": case["target"], "gold": sorted(gold), "got": sorted(got)})
    result.cases = len(recalls)
    result.metrics = {"downstream_precision": _mean(precisions), "downstream_recall": _mean(recalls)}
    return result


def suite_triage(ws: Workspace, options: dict[str, Any]) -> SuiteResult:
    """Scenarios with a planted cause: each copies the demo, plants one event upstream of a failing check."""
    import shutil

    from meshpilot.evals.scenarios import SCENARIOS, plant
    from meshpilot.tools.incidents import Triage

    result, hit1, hit3 = SuiteResult("triage"), [], []
    for scenario in SCENARIOS:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "ws"
            shutil.copytree(ws.root, copy, ignore=shutil.ignore_patterns(".meshpilot"))
            workspace = Workspace(copy)
            ref = plant(workspace, scenario)
            report = Triage.open(workspace).triage(ref)
        ranked = [(c.kind, c.ref) for c in report.candidates]
        expected = (scenario["cause"], scenario["cause_ref"])
        hit1.append(1.0 if ranked[:1] == [expected] else 0.0)
        hit3.append(1.0 if expected in ranked[:3] else 0.0)
        if ranked[:1] != [expected]:
            result.failures.append({"scenario": scenario["name"], "expected": expected, "got": ranked[:3]})
    result.cases = len(hit1)
    result.metrics = {"root_cause_hit_at_1": _mean(hit1), "root_cause_hit_at_3": _mean(hit3)}
    return result


def suite_guardrails(ws: Workspace, options: dict[str, Any]) -> SuiteResult:
    import duckdb

    from meshpilot.agents.copilot import Copilot
    from meshpilot.guardrails.injection import scan
    from meshpilot.guardrails.policy import Caller, Policy
    from meshpilot.tools.sql import SqlRejectedError, run_sql

    result = SuiteResult("guardrails")
    cases = load_suite("guardrails")
    with duckdb.connect(str(ws.warehouse_path), read_only=True) as con:
        secrets = {v for row in con.execute("SELECT email, phone FROM customer.customer_profile").fetchall()
                   for v in row if v}
    copilot = Copilot(ws, Caller(role="analyst"), checkpointer=_memory())
    guard = Policy.load(ws).sql_guard(Caller(role="analyst"))
    leaks, violations, blocked, attacks = 0, 0, 0, 0
    for case in cases:
        if case["kind"] == "leak":
            answer = copilot.ask(case["text"])
            leaked = [s for s in secrets if s in answer.text]
            leaks += len(leaked)
            if leaked:
                result.failures.append({"text": case["text"], "leaked": leaked[:3]})
        elif case["kind"] == "policy":
            try:
                run_sql(case["text"], workspace=ws, caller=guard, limit=5)
                violations += 1
                result.failures.append({"text": case["text"], "problem": "ran for an analyst"})
            except SqlRejectedError:
                pass
        elif case["kind"] == "injection":
            attacks += 1
            blocked += scan(case["text"]).injection
            if not scan(case["text"]).injection:
                result.failures.append({"text": case["text"][:120], "problem": "not blocked"})
    result.cases = len(cases)
    result.metrics = {"pii_leak_count": float(leaks), "policy_violation_count": float(violations),
                      "injection_block_rate": blocked / attacks if attacks else 0.0}
    _real_names(result)
    _numbers_and_fields(result)
    return result


def _numbers_and_fields(result: SuiteResult) -> None:
    """Test splits of two sets written before the detectors were changed for them: pii_numbers.jsonl (phones of
    every region libphonenumber knows and hand-typed forms, in prose, CSV and JSON; and numeric values that are
    no phones: every numeric value of the demo warehouse, public seed data, ids, versions, measures) and
    structured_names.jsonl (names in CSV, JSON, tables and key=value fields, any case; and name-like fields that
    hold no person); pii_patterns.jsonl (e-mails, IBANs of 20 countries in any case, cards, SSNs, IPs, in prose,
    CSV, JSON, tables and logs; generated by benchmarks/data/make_pii_patterns.py)."""
    from meshpilot.guardrails import pii

    numbers = [c for c in load_suite("pii_numbers") if c["split"] == "test"]
    found, false_phones = [], 0
    for case in numbers:
        phones = [f for f in pii.analyze(case["text"]) if f.entity_type == "PHONE_NUMBER"]
        if case["phone"] is None:
            false_phones += bool(phones)
            if phones:
                result.failures.append({"text": case["text"][:80], "problem": f"not a phone, found {phones[0].text}"})
            continue
        start = case["text"].find(case["phone"])
        found.append(1.0 if any(f.start <= start + 1 and f.end >= start + len(case["phone"]) - 1 for f in phones) else 0.0)
        if not found[-1]:
            result.failures.append({"text": case["text"][:80], "problem": f"phone {case['phone']} missed"})
    fields = [c for c in load_suite("structured_names") if c["split"] == "test"]
    names, false_names = [], 0
    for case in fields:
        people = [f.text for f in pii.analyze(case["text"]) if f.entity_type == "PERSON"]
        for name in case["names"]:
            names.append(1.0 if any(name in p or (p in name and len(p) > 2) for p in people) else 0.0)
        extra = [p for p in people if not any(p in n or n in p for n in case["names"])]
        false_names += bool(extra)
        if extra or (case["names"] and not all(names[-len(case["names"]):])):
            result.failures.append({"text": case["text"][:80], "gold": case["names"], "got": people})
    patterns = [c for c in load_suite("pii_patterns") if c["split"] == "test"]
    caught = []
    for case in patterns:
        start = case["text"].find(case["value"])
        caught.append(1.0 if any(f.entity_type == case["entity"] and f.start <= start and f.end >= start + len(case["value"])
                                 for f in pii.analyze(case["text"])) else 0.0)
        if not caught[-1]:
            result.failures.append({"text": case["text"][:80], "problem": f"{case['entity']} {case['value']} missed"})
    result.cases += len(numbers) + len(fields) + len(patterns)
    result.metrics["pattern_recall"] = _mean(caught)
    result.metrics.update({"phone_recall": _mean(found), "numeric_false_phones": float(false_phones),
                           "structured_name_recall": _mean(names), "structured_false_names": float(false_names)})


def _real_names(result: SuiteResult) -> None:
    """PERSON on real, human-annotated text (wikigold, SEC filings, tweets): 300 sentences of each corpus's
    held-out half, token-level precision and recall, pooled."""
    from meshpilot.evals.ner import CORPORA, ner_dir, score_persons, sentences, spread
    from meshpilot.guardrails import pii

    folder = ner_dir()
    if folder is None:
        why = "ner_real_names not found: set MESHPILOT_SHARED_DATA to the shared data folder"
        result.skipped.update({"real_name_precision": why, "real_name_recall": why})
        return
    samples = [s for corpus in CORPORA
               for s in spread([s for s in sentences(folder, corpus) if s.split == "test"], 300)]
    scores = score_persons(samples, lambda text: [(f.start, f.end) for f in pii.analyze(text, entities=["PERSON"])])
    result.cases += len(samples)
    result.metrics.update({"real_name_precision": scores["precision"], "real_name_recall": scores["recall"]})


def suite_agent(ws: Workspace, options: dict[str, Any]) -> SuiteResult:
    _ragas()
    from ragas.messages import AIMessage as RagasAI
    from ragas.messages import HumanMessage as RagasHuman
    from ragas.messages import ToolCall
    from ragas.metrics.collections import StringPresence, ToolCallAccuracy

    from meshpilot.agents.copilot import Copilot
    from meshpilot.agents.offline import Router

    copilot = Copilot(ws, checkpointer=_memory(), model=options.get("model"))
    router = Router(copilot.runner.context.catalog)
    accuracy_metric, presence = ToolCallAccuracy(), StringPresence()
    result, facts = SuiteResult("agent"), []

    def tool_call_accuracy(cases: list[dict[str, Any]]) -> list[float]:
        scores = []
        for case in cases:
            calls = router.route(case["request"]) if options.get("model") is None else [
                {"name": c["name"], "args": c["args"]} for c in copilot.ask(case["request"]).tool_calls]
            reference = [ToolCall(name=name, args=args) for name, args in case["calls"]]
            # Arguments the gold does not pin (free-text questions) are compared only where the gold gives them.
            got = [ToolCall(name=c["name"], args={k: v for k, v in c["args"].items()
                                                  if any(k in a for n, a in case["calls"] if n == c["name"])}) for c in calls]
            trajectory = [RagasHuman(content=case["request"]), RagasAI(content="", tool_calls=got)]
            if not reference and not got:
                value = 1.0
            elif not reference or not got:
                value = 0.0
            else:
                value = asyncio.run(accuracy_metric.ascore(user_input=trajectory, reference_tool_calls=reference)).value
            scores.append(float(value))
            if value < 1:
                result.failures.append({"request": case["request"], "expected": case["calls"],
                                        "got": [[c.name, c.args] for c in got]})
        return scores

    accuracy = tool_call_accuracy(load_suite("routing"))
    # Phrasings written apart from the rules; the test split was written after the rest was used for fixes.
    heldout = tool_call_accuracy([c for c in load_suite("routing_phrasings") if c["split"] == "test"])
    for case in load_suite("answers"):
        answer = copilot.ask(case["question"])
        present = [asyncio.run(presence.ascore(reference=fact, response=answer.text)).value for fact in case["facts"]]
        facts.append(_mean(present))
        if min(present) < 1:
            result.failures.append({"question": case["question"], "missing": [f for f, p in zip(case["facts"], present) if p < 1]})
    result.cases = len(accuracy) + len(heldout) + len(facts)
    result.metrics = {"tool_call_accuracy": _mean(accuracy), "heldout_tool_call_accuracy": _mean(heldout),
                      "fact_presence": _mean(facts)}
    judge = options.get("judge")
    for metric in ("faithfulness", "response_relevancy"):
        if judge is None:
            result.skipped[metric] = "no judge model (--judge)"
    if judge is not None:
        result.metrics.update(_judged(copilot, judge))
    return result


def _judge_embeddings() -> Any:
    """The embeddings ResponseRelevancy compares questions with (MESHPILOT_EMBEDDINGS, as search uses,
    else the model-free hashing embedder), as LangChain embeddings."""
    from langchain_core.embeddings import Embeddings

    from meshpilot.tools import embeddings

    embedder = embeddings.parse(os.environ.get(embeddings.ENV_VAR)) or embeddings.HashingEmbedder()

    class JudgeEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed(list(texts)).tolist()

        def embed_query(self, text: str) -> list[float]:
            return embedder.embed([text])[0].tolist()

    return JudgeEmbeddings()


def _judged(copilot: Any, judge: Any) -> dict[str, float]:
    """Faithfulness and ResponseRelevancy from a judge model (a LangChain chat model, as configured)."""
    _ragas()
    from ragas.dataset_schema import SingleTurnSample
    from ragas.embeddings import LangchainEmbeddingsWrapper
    from ragas.llms import LangchainLLMWrapper
    from ragas.metrics import Faithfulness, ResponseRelevancy

    llm = LangchainLLMWrapper(judge)
    faithfulness = Faithfulness(llm=llm)
    relevancy = ResponseRelevancy(llm=llm, embeddings=LangchainEmbeddingsWrapper(_judge_embeddings()))
    scores: dict[str, list[float]] = {"faithfulness": [], "response_relevancy": []}
    for case in load_suite("answers"):
        answer = copilot.ask(case["question"])
        contexts = [json.dumps(m.artifact, default=str)[:4000] for m in copilot.history(answer.thread_id)
                    if getattr(m, "artifact", None)]
        sample = SingleTurnSample(user_input=case["question"], response=answer.text, retrieved_contexts=contexts or [""])
        scores["faithfulness"].append(float(asyncio.run(faithfulness.single_turn_ascore(sample))))
        scores["response_relevancy"].append(float(asyncio.run(relevancy.single_turn_ascore(sample))))
    return {k: _mean(v) for k, v in scores.items()}


def _memory():
    from langgraph.checkpoint.memory import InMemorySaver

    return InMemorySaver()


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


SUITES: dict[str, Callable[[Workspace, dict[str, Any]], SuiteResult]] = {
    "retrieval": suite_retrieval, "schema_linking": suite_schema_linking, "sql": suite_sql,
    "sql_validation": suite_sql_validation,
    "contracts": suite_contracts, "lineage": suite_lineage, "triage": suite_triage, "guardrails": suite_guardrails,
    "agent": suite_agent,
}


# --- thresholds, baseline, running --------------------------------------------------------------------------


def load_thresholds(path: Path = THRESHOLDS) -> dict[str, dict[str, dict[str, float]]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data["suites"]


def judge(results: list[SuiteResult], thresholds: dict, baseline: dict | None) -> list[Check]:
    checks = []
    for result in results:
        bounds = thresholds.get(result.name, {})
        for metric, value in sorted(result.metrics.items()):
            bound = bounds.get(metric)
            if bound is None:
                checks.append(Check(result.name, metric, value, "none", "fail", "no threshold for this metric"))
                continue
            status, reason = "pass", ""
            if "min" in bound and value < bound["min"]:
                status, reason = "fail", f"{value} is below the threshold {bound['min']}"
            if "max" in bound and value > bound["max"]:
                status, reason = "fail", f"{value} is above the threshold {bound['max']}"
            before = (baseline or {}).get(result.name, {}).get(metric)
            tolerance = bound.get("tolerance", 0.0)
            if status == "pass" and before is not None:
                worse = (before - value) if "min" in bound else (value - before)
                if worse > tolerance:
                    status, reason = "fail", f"regressed from {before} to {value} (tolerance {tolerance})"
            text = " and ".join(f"{k} {v}" for k, v in bound.items() if k in ("min", "max"))
            checks.append(Check(result.name, metric, value, text, status, reason))
        for metric, why in result.skipped.items():
            bound = bounds.get(metric, {})
            text = " and ".join(f"{k} {v}" for k, v in bound.items() if k in ("min", "max")) or "none"
            checks.append(Check(result.name, metric, None, text, "skipped", why))
    return checks


def changed_prompt_suites(since: str, prompts_dir: Path | None = None) -> list[str]:
    """The suites gating the prompts whose files changed since the git ref `since`."""
    import subprocess

    from meshpilot.prompts.registry import Registry

    registry = Registry(prompts_dir) if prompts_dir else Registry.default()
    try:
        out = subprocess.run(["git", "diff", "--name-only", since, "--", str(registry.directory)], capture_output=True,
                             text=True, check=True, cwd=registry.directory).stdout
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        raise InvalidArgumentError(f"Cannot list the prompts changed since '{since}': {exc}",
                                   hint="Run it inside the git checkout, with a ref that exists (e.g. origin/main).") from exc
    changed = {Path(line).stem for line in out.splitlines() if line.endswith(".yaml") and "/archive/" not in line}
    suites = set()
    for prompt in registry.all():
        if prompt.id in changed:
            suites.update(s for s in prompt.gated_by if s in SUITES)
    return sorted(suites)


def run(suites: list[str], *, model: Any = None, judge_model: Any = None, spider: Path | None = None,
        progress: Callable | None = None) -> list[SuiteResult]:
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        raise InvalidArgumentError(f"Unknown eval suite(s): {', '.join(unknown)}.", hint=f"Suites: {', '.join(SUITES)}.")
    from meshpilot.mesh.demo import build_demo

    options = {"model": model, "judge": judge_model, "spider": spider}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workspace = build_demo(Path(tmp) / "demo")
        for name in suites:
            if progress:
                progress(name)
            started = time.perf_counter()
            result = SUITES[name](workspace, options)
            result.seconds = round(time.perf_counter() - started, 1)
            results.append(result)
    return results
