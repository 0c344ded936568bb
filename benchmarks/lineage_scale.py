"""Lineage at scale: N column edges over D datasets (default 1,000,000 over 100,000).

Synthetic jobs each read 1-3 datasets and write one, with column lineage (DIRECT and INDIRECT edges);
about ten column edges per event. Measures, through the real code paths:
- ingest: events/s validated (OpenLineage JSON schema + our checks) and appended to the workspace log,
  in batches of 1,000 as the HTTP batch endpoint takes them;
- index: seconds to build the workspace index (dataset and column edges) from the stored events;
- incremental ingest: three batches of ~1,000 more events appended to the log, each followed by the
  open that brings the index up to date (seconds, and how many full rebuilds happened: 0 expected);
- lineage graph: seconds to build the in-memory graph of the updated index (the first lineage question
  after an update pays it, and saves it beside the index) and to read it back (every later process);
- impact: p50/p95 ms of a one-column impact (change: drop) as the CLI asks it (the first 50 items
  listed, every item counted): opening the workspace's index (checked for changes), resolving the name, the walks, classifying and counting every reached
  node, naming and explaining the listed ones, for 200 random columns; how many items they counted;
  and the same with every item listed (`--limit 0`), for 30 of them;
- upstream: p50/p95 ms of a one-column upstream, 50 items listed.
Prints one JSON object. Usage: uv run python benchmarks/lineage_scale.py --edges 1000000
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from meshpilot.mesh import store as store_module
from meshpilot.mesh.files import LocatedDocument
from meshpilot.mesh.store import MeshStore
from meshpilot.mesh.workspace import Workspace, validate_event
from meshpilot.server.lineage_http import LineageLog
from meshpilot.tools import lineage_reach
from meshpilot.tools.lineage import impact, upstream
from meshpilot.tools.lineage_graph import LineageGraph
from meshpilot.tools.lineage_reach import LineageArrays, saved_path

COLUMNS = 12
PRODUCER = "https://github.com/meshpilot/meshpilot/benchmarks"


def events(edges: int, datasets: int, rng: random.Random):
    made = 0
    while made < edges:
        target = rng.randrange(1, datasets)
        # A DAG with long chains: inputs come from the few hundred datasets just before the target.
        sources = sorted({max(0, target - rng.randint(1, 300)) for _ in range(rng.randint(1, 3))})
        fields = {}
        for out in range(COLUMNS):
            inputs = [{"namespace": "warehouse", "name": f"ds{s}", "field": f"c{rng.randrange(COLUMNS)}",
                       "transformations": [{"type": "DIRECT", "subtype": rng.choice(["IDENTITY", "TRANSFORMATION",
                                                                                     "AGGREGATION"])}]}
                      for s in sources if rng.random() < 0.35]
            if inputs:
                fields[f"c{out}"] = {"inputFields": inputs}
        indirect = [{"namespace": "warehouse", "name": f"ds{sources[0]}", "field": "c0",
                     "transformations": [{"type": "INDIRECT", "subtype": "JOIN"}]}]
        made += sum(len(f["inputFields"]) for f in fields.values()) + 1
        yield {
            "eventType": "COMPLETE", "eventTime": "2026-11-01T00:00:00Z", "producer": PRODUCER,
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": str(uuid.UUID(int=rng.getrandbits(128), version=4))},
            "job": {"namespace": "bench", "name": f"job{target}"},
            "inputs": [{"namespace": "warehouse", "name": f"ds{s}"} for s in sources],
            "outputs": [{"namespace": "warehouse", "name": f"ds{target}", "facets": {"columnLineage": {
                "_producer": PRODUCER,
                "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
                "fields": fields, "dataset": indirect}}}],
        }


def _p95(values: list[float]) -> float:
    return round(values[int(0.95 * (len(values) - 1))], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(3)
    with tempfile.TemporaryDirectory() as scratch:
        workspace = Workspace.create(Path(scratch) / "ws", name="lineage-bench")
        log = LineageLog(workspace)
        batch, count, started = [], 0, time.perf_counter()
        for event in events(args.edges, args.datasets, rng):
            _, problems = validate_event(LocatedDocument("event", event, {}))
            assert not problems, problems
            batch.append(event)
            if len(batch) == 1000:
                log.append(batch)
                count += len(batch)
                batch = []
        log.append(batch)
        count += len(batch)
        ingest_s = time.perf_counter() - started
        started = time.perf_counter()
        with MeshStore.open(workspace) as store:
            index_s = time.perf_counter() - started
            stored_edges = store.counts()["column_edges"]
        # Incremental ingest: a batch of new events appended to the log (as the HTTP endpoint does), then
        # the next open brings the index up to date without rebuilding it.
        builds = []
        full_build = store_module.build_index
        store_module.build_index = lambda *a, **k: (builds.append(1), full_build(*a, **k))[1]
        try:
            update_s = []
            for batch_number in range(3):
                more = list(events(1000 * COLUMNS, args.datasets, random.Random(100 + batch_number)))
                log.append(more)
                batch_events = len(more)
                del more
                started = time.perf_counter()
                with MeshStore.open(workspace) as store:
                    update_s.append(time.perf_counter() - started)
                    graph, graph_index = LineageGraph.from_store(store), store.path
                    grown = store.counts()["lineage_events"]
                    # Datasets outside any product are named as events name them: <namespace>/<name>#<field>.
                    # (A random sample, read by the index: holding every column's name in this process
                    # would make each of Python's full garbage collections, and so the latencies, longer than
                    # in a process that only asks questions.)
                    starts = [f"{ns}/{name}#{field}" for ns, name, field in store.con.execute(
                        f"""SELECT * FROM (SELECT DISTINCT source_namespace, source_name, source_field FROM column_edges)
                           USING SAMPLE reservoir({int(args.queries)} ROWS) REPEATABLE (7) ORDER BY ALL""").fetchall()]
        finally:
            store_module.build_index = full_build
        started = time.perf_counter()
        graph.arrays()
        arrays_build_s = time.perf_counter() - started
        lineage_reach.saved()
        started = time.perf_counter()
        LineageArrays.read(saved_path(graph_index))
        arrays_read_s = time.perf_counter() - started

        def timed(call, targets) -> tuple[list[float], list[int]]:
            latencies, counted = [], []
            for target in targets:
                t = time.perf_counter()
                result = call(target)
                latencies.append((time.perf_counter() - t) * 1000)
                counted.append(sum(result.counts.values()))
            return sorted(latencies), counted

        # As every caller asks (CLI, agent tool, MCP): from the workspace, whose index is checked for changes.
        latencies, reached = timed(lambda t: impact(t, change="drop", workspace=workspace, limit=50), starts)
        everything, _ = timed(lambda t: impact(t, change="drop", workspace=workspace, limit=None), starts[:30])
        sources, _ = timed(lambda t: upstream(t, workspace=workspace, limit=50), starts[:50])
    print(json.dumps({
        "edges_requested": args.edges, "column_edges_stored": stored_edges, "datasets": args.datasets,
        "events": count, "ingest_events_per_s": round(count / ingest_s), "ingest_s": round(ingest_s, 1),
        "index_build_s": round(index_s, 1), "graph_arrays_build_s": round(arrays_build_s, 2),
        "graph_arrays_read_s": round(arrays_read_s, 2),
        "impact_p50_ms": round(statistics.median(latencies), 2), "impact_p95_ms": _p95(latencies),
        "impact_items_counted_median": statistics.median(reached), "impact_items_counted_p95": _p95(sorted(reached)),
        "impact_items_counted_max": max(reached),
        "impact_all_items_listed_p50_ms": round(statistics.median(everything), 2),
        "impact_all_items_listed_p95_ms": _p95(everything),
        "upstream_p50_ms": round(statistics.median(sources), 2), "upstream_p95_ms": _p95(sources),
        "incremental_batch_events": batch_events, "incremental_update_s_median": round(statistics.median(update_s), 2),
        "full_rebuilds_after_incremental_batches": len(builds), "events_after_batches": grown,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()
