"""The access-policy attack suite as every demo role, and what enforcement costs per query.

For each role of the demo policy and each payload of src/meshpilot/evals/suites/access_attacks.yaml
(through the tool runner, as the agent and MCP call it): leaks (a raw PII value, or for a
domain-restricted role a value of another domain, anywhere in the result or error), blind oracles (a
true and a false predicate on PII that give different answers to a role that may not read it in the
clear), crashes (anything but a clear refusal or a result) and bounds that were not refused.
Overhead: for queries every role may run, the median time of run_sql with the role's enforcement
(validation with policy, the role's relation set) minus without a caller, p50/p95 over the queries;
and the one-off cost of building a role's relation set. Prints one JSON object.

Usage: uv run python benchmarks/access_policy.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from meshpilot.agents.tools import ToolContext, ToolRunner
from meshpilot.evals import access
from meshpilot.guardrails.policy import Caller, Policy
from meshpilot.mesh.demo import build_demo
from meshpilot.tools import sql

ALLOWED = [
    "SELECT status, count(*) FROM commerce.orders GROUP BY 1",
    "SELECT channel, sum(amount) FROM commerce.orders GROUP BY 1 ORDER BY 2 DESC",
    "SELECT o.channel, count(*) FROM commerce.returns r JOIN commerce.orders o USING (order_id) GROUP BY 1",
    "SELECT date_trunc('month', order_date) AS m, avg(amount) FROM commerce.orders GROUP BY 1 ORDER BY 1",
    "SELECT reason, count(*), sum(refund_amount) FROM commerce.returns GROUP BY ALL",
    "WITH big AS (SELECT * FROM commerce.orders WHERE amount > 100) SELECT count(*) FROM big",
    "SELECT order_id, amount FROM commerce.orders ORDER BY amount DESC LIMIT 10",
    "SELECT count(DISTINCT customer_id) FROM commerce.orders WHERE status = 'completed'",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workspace = build_demo(Path(scratch) / "demo")
        print(json.dumps(run(workspace, args.repeats)))


def run(workspace, repeats: int) -> dict:
    policy = Policy.load(workspace)
    build_ms = cold_build(workspace, policy)
    suite = access.attacks()
    pii_values = access.sensitive_values(workspace.warehouse_path)
    base = ToolContext(workspace)
    totals = {"payloads": 0, "leaks": 0, "oracles": 0, "crashes": 0, "bounds_not_refused": 0}
    per_role = {}
    details = []
    for role in sorted(policy.roles):
        caller = Caller(role, team="customer-insights" if policy.roles[role].domains == "own" else None)
        runner = ToolRunner(base.for_caller(caller))
        domains = policy.domains(caller)
        forbidden = set(pii_values) if not policy.may_read_pii(caller) or policy.pii_needs_approval() else set()
        if domains is not None:
            forbidden |= access.foreign_values(workspace.warehouse_path, domains)
        counts = dict.fromkeys(totals, 0)
        payloads = [q for _, q in access.pii_payloads()] + suite["cross_domain"]
        for query in payloads:
            outcome = runner.call("run_sql", {"sql": query}, channel="benchmark")
            counts["payloads"] += 1
            if "failed:" in (outcome.error or ""):
                counts["crashes"] += 1
                details.append({"role": role, "crash": query[:120], "error": outcome.error[:200]})
            found = access.leaks(outcome.result or outcome.error or "", forbidden)
            if found:
                counts["leaks"] += 1
                details.append({"role": role, "leak": query[:120], "values": found[:3]})
        if not policy.may_read_pii(caller) or policy.pii_needs_approval():
            for true, false in suite["oracle"]:
                a, b = (runner.call("run_sql", {"sql": q}, channel="benchmark") for q in (true, false))
                counts["payloads"] += 2
                if a.ok != b.ok or (a.ok and a.result["rows"] != b.result["rows"]):
                    counts["oracles"] += 1
                    details.append({"role": role, "oracle": true[:120]})
        for query in suite["bounds"]:
            outcome = runner.call("run_sql", {"sql": query}, channel="benchmark")
            counts["payloads"] += 1
            if outcome.ok:
                counts["bounds_not_refused"] += 1
            elif "failed:" in (outcome.error or ""):
                counts["crashes"] += 1
                details.append({"role": role, "crash": query[:60], "error": outcome.error[:200]})
        per_role[role] = counts
        for key in totals:
            totals[key] += counts[key]
    return {**totals, "per_role": per_role, "details": details[:20], **overhead(workspace, policy, repeats),
            "relation_set_build_ms": round(build_ms, 1)}


def cold_build(workspace, policy: Policy) -> float:
    """Building the first role's relation set on a fresh workspace (then cached until the warehouse changes)."""
    schema = sql.workspace_schema(workspace)
    engine = sql.engine_for(None, workspace)
    relations = schema.relation_set(policy.sql_guard(Caller("analyst")))
    started = time.perf_counter()
    engine.relation_database(relations)
    return (time.perf_counter() - started) * 1000


def overhead(workspace, policy: Policy, repeats: int) -> dict:
    schema = sql.workspace_schema(workspace)
    engine = sql.engine_for(None, workspace)
    guard = policy.sql_guard(Caller("analyst"))

    def once(query: str, caller) -> float:
        t0 = time.perf_counter()
        sql.run_validated(query, schema, engine, caller=caller)
        return (time.perf_counter() - t0) * 1000

    def difference(query: str) -> float:
        """Median over pairs run back to back (order alternating), so machine drift cancels out."""
        pairs = []
        for i in range(repeats):
            if i % 2:
                plain, enforced = once(query, None), once(query, guard)
            else:
                enforced, plain = once(query, guard), once(query, None)
            pairs.append(enforced - plain)
        return statistics.median(pairs)

    for query in ALLOWED:  # warm both paths: files in the page cache, parsers loaded
        once(query, guard), once(query, None)
    differences = sorted(difference(q) for q in ALLOWED)
    p95 = differences[min(len(differences) - 1, round(0.95 * (len(differences) - 1)))]
    return {"overhead_ms_p50": round(statistics.median(differences), 3), "overhead_ms_p95": round(p95, 3),
            "overhead_target_ms": 5.0}


if __name__ == "__main__":
    main()
