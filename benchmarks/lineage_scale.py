"""Lineage at scale: N column edges over D datasets (default 1,000,000 over 100,000).

Synthetic jobs each read 1-3 datasets and write one, with column lineage (DIRECT and INDIRECT edges);
about ten column edges per event. Measures, through the real code paths:
- ingest: events/s validated (OpenLineage JSON schema + our checks) and appended to the workspace log,
  in batches of 1,000 as the HTTP batch endpoint takes them;
- index: seconds to build the workspace index (dataset and column edges) from the stored events;
- incremental ingest: three batches of ~1,000 more events appended to the log, each followed by the
  open that brings the index up to date (seconds, and how many full rebuilds happened: 0 expected);
- impact: p50/p95 ms of a one-column impact (change: drop): the downstream walk (column edges, job hops
  and whole-dataset hops read from the index a level at a time) plus the classification and explaining
  path of every reached node, for 200 random columns; and how many nodes the walks reached.
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
from meshpilot.tools.lineage import Explained
from meshpilot.tools.lineage_graph import LineageGraph

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
            started = time.perf_counter()
            graph = LineageGraph.from_store(store)
            graph_s = time.perf_counter() - started
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
                started = time.perf_counter()
                with MeshStore.open(workspace) as store:
                    update_s.append(time.perf_counter() - started)
                    graph = LineageGraph.from_store(store)
                    grown = store.counts()["lineage_events"]
                    # Datasets outside any product have no mesh:// name: impact starts from their column keys.
                    keys = [graph.column(*row) for row in store.con.execute(
                        "SELECT DISTINCT source_namespace, source_name, source_field FROM column_edges").fetchall()]
        finally:
            store_module.build_index = full_build
        latencies, reached = [], []
        for _ in range(args.queries):
            start = rng.choice(keys)
            t = time.perf_counter()
            seen = graph.walk([start], downstream=True, depth=None)
            # the classification impact() makes for each reached node (a drop), with its explaining path
            explained = Explained(seen, graph, change="drop")
            _ = [(explained.status(node), explained.path(node)) for node in seen if node != start]
            latencies.append((time.perf_counter() - t) * 1000)
            reached.append(len(seen) - 1)
        latencies.sort()
    print(json.dumps({
        "edges_requested": args.edges, "column_edges_stored": stored_edges, "datasets": args.datasets,
        "events": count, "ingest_events_per_s": round(count / ingest_s), "ingest_s": round(ingest_s, 1),
        "index_build_s": round(index_s, 1), "graph_load_s": round(graph_s, 1),
        "impact_p50_ms": round(statistics.median(latencies), 2),
        "impact_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
        "impact_nodes_reached_median": statistics.median(reached),
        "impact_nodes_reached_p95": sorted(reached)[int(0.95 * (len(reached) - 1))],
        "incremental_batch_events": len(more), "incremental_update_s_median": round(statistics.median(update_s), 2),
        "full_rebuilds_after_incremental_batches": len(builds), "events_after_batches": grown,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()
