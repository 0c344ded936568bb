"""Incident triage at scale: a synthetic mesh of D datasets (default 10,000) in 100 products, with deep
lineage (each dataset's job reads 1-3 of the few hundred datasets before it, with column lineage),
two days of runs (some failed, some late, some schema changes) and check results (2% failing).

Measures through the real code paths: the time to load the triage facts (index and graph, once per
server), and the p50/p95 of `triage()` on 200 failing checks. Target: p95 <= 1 s.
Prints one JSON object. Usage: uv run python benchmarks/triage.py [--datasets 10000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from meshpilot.mesh import files
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools.incidents import Triage

COLUMNS = 6
PRODUCTS = 100
NS = "duckdb://bench/warehouse"
PRODUCER = "https://github.com/meshpilot/meshpilot/benchmarks"
RUN_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def facet(name: str, **body) -> dict:
    return {"_producer": PRODUCER, "_schemaURL": f"https://openlineage.io/spec/facets/1-0-0/{name}.json", **body}


def build(root: Path, datasets: int, rng: random.Random) -> tuple[Workspace, list[str]]:
    workspace = Workspace.create(root, name="triage-bench")
    per_product = datasets // PRODUCTS
    changes = {"teams.yaml": files.dump_yaml({"teams": [
        {"id": f"team{t}", "name": f"Team {t}", "domain": f"d{t % 10}", "oncall": f"oncall{t}@bench.example",
         "slack_channel": f"#team{t}", "members": [{"name": f"Owner {t}", "email": f"owner{t}@bench.example",
                                                   "role": "product owner"}]} for t in range(PRODUCTS)]})}
    for p in range(PRODUCTS):
        ports = []
        for i in range(per_product):
            n = p * per_product + i
            ports.append({"name": f"ds{n}", "location": f"warehouse:bench.ds{n}", "dataset": {
                "name": f"ds{n}", "qualified_name": f"bench.ds{n}", "namespace": NS,
                "columns": [{"name": f"c{c}", "type": "VARCHAR"} for c in range(COLUMNS)],
                "checks": [{"id": f"ds{n}_c0_not_null", "kind": "not_null", "column": "c0", "severity": "error"}]}})
        changes[f"products/d{p % 10}.p{p}.yaml"] = files.dump_yaml({
            "id": f"p{p}", "name": f"Product {p}", "domain": f"d{p % 10}", "owner": f"team{p}",
            "consumers": [{"name": f"dashboard-{p}", "purpose": "reporting"}], "output_ports": ports,
            "slos": [{"kind": "freshness", "target": "PT24H"}]})
    events, results, failing = [], [], []
    for n in range(1, datasets):
        sources = sorted({max(0, n - rng.randint(1, 300)) for _ in range(rng.randint(1, 3))})
        fields = {f"c{c}": {"inputFields": [
            {"namespace": NS, "name": f"bench.ds{s}", "field": f"c{rng.randrange(COLUMNS) if c else 0}",
             "transformations": [{"type": "DIRECT", "subtype": "IDENTITY" if c == 0 else rng.choice(
                 ["IDENTITY", "TRANSFORMATION", "AGGREGATION"])}]} for s in sources[:1 if c == 0 else None]]}
            for c in range(COLUMNS)}
        for day in (1, 2):
            run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            hour = 2 if rng.random() > 0.01 else 9  # some runs are late
            state = "FAIL" if rng.random() < 0.005 else "COMPLETE"
            schema = [{"name": f"c{c}", "type": "VARCHAR" if not (day == 2 and c == 1 and rng.random() < 0.01) else "INT"}
                      for c in range(COLUMNS)]
            base = {"producer": PRODUCER, "schemaURL": RUN_SCHEMA, "job": {"namespace": "bench", "name": f"job{n}"},
                    "inputs": [{"namespace": NS, "name": f"bench.ds{s}"} for s in sources]}
            events.append({**base, "eventType": "START", "eventTime": f"2026-11-0{day}T0{hour}:00:00+00:00",
                           "run": {"runId": run_id}, "outputs": []})
            events.append({**base, "eventType": state, "eventTime": f"2026-11-0{day}T0{hour}:10:00+00:00",
                           "run": {"runId": run_id}, "outputs": [{"namespace": NS, "name": f"bench.ds{n}", "facets": {
                               "schema": facet("SchemaDatasetFacet", fields=schema),
                               "columnLineage": facet("ColumnLineageDatasetFacet", fields=fields)}}]})
        fails = rng.random() < 0.02
        if fails:
            failing.append(f"ds{n}_c0_not_null")
        for day in (1, 2):
            status = "fail" if fails and day == 2 else "pass"
            results.append({"check_id": f"ds{n}_c0_not_null", "dataset": f"mesh://d{(n // per_product) % 10}/p{n // per_product}/ds{n}",
                            "status": status, "run_at": f"2026-11-0{day}T05:00:00Z", "observed": 1 if status == "fail" else 0})
    changes["lineage/bench.jsonl"] = "".join(json.dumps(e) + "\n" for e in events)
    changes["quality/bench.jsonl"] = "".join(json.dumps(r) + "\n" for r in results)
    workspace.apply(changes)
    return workspace, failing


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        workspace, failing = build(Path(tmp) / "ws", args.datasets, rng)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        triage = Triage.open(workspace)
        load_s = time.perf_counter() - started
        latencies, candidates = [], []
        for check in rng.sample(failing, min(args.queries, len(failing))) * (1 + args.queries // max(1, len(failing))):
            t = time.perf_counter()
            report = triage.triage(check)
            latencies.append((time.perf_counter() - t) * 1000)
            candidates.append(len(report.candidates))
            if len(latencies) >= args.queries:
                break
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(json.dumps({"benchmark": "triage", "datasets": args.datasets, "failing_checks": len(failing),
                      "queries": len(latencies), "workspace_build_s": round(build_s, 1), "triage_load_s": round(load_s, 1),
                      "triage_p50_ms": round(statistics.median(latencies), 1), "triage_p95_ms": round(p95, 1),
                      "candidates_median": statistics.median(candidates), "target_met": p95 <= 1000}))


if __name__ == "__main__":
    main()
