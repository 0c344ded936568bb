"""OpenLineage ingest over HTTP, as producers send it: `meshpilot serve lineage` started as its own
process on loopback (waited for by its /health readiness), events sent by the official openlineage-python
client's HttpTransport, one event per request, every one durable (fsync'ed) before its 2xx.

Measures events/s from one client and from 4 concurrent clients (processes, one client each), then that
every acknowledged event was stored (the log's lines are counted). Each event is a realistic RunEvent:
2 inputs, 1 output with a schema and column lineage of 8 fields.
Prints one JSON object. Usage: uv run python benchmarks/lineage_http_ingest.py [--events 2000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import free_port, wait_healthy  # noqa: E402


def _event(i: int):
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import column_lineage_dataset, schema_dataset

    fields = {f"c{k}": column_lineage_dataset.Fields(inputFields=[column_lineage_dataset.InputField(
        namespace="pg", name=f"shop.t{i % 50}", field=f"c{k}")]) for k in range(8)}
    schema = schema_dataset.SchemaDatasetFacet(fields=[schema_dataset.SchemaDatasetFacetFields(name=f"c{k}", type="INTEGER")
                                                      for k in range(8)])
    return RunEvent(eventType=RunState.COMPLETE, eventTime=datetime.now(tz=UTC).isoformat(),
                    run=Run(runId=str(uuid.uuid4())), job=Job(namespace="etl", name=f"job{i % 200}"),
                    producer="https://example.com/bench",
                    inputs=[InputDataset("pg", f"shop.t{i % 50}"), InputDataset("pg", f"shop.t{(i + 1) % 50}")],
                    outputs=[OutputDataset("duckdb", f"mart.m{i % 200}", facets={
                        "columnLineage": column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields),
                        "schema": schema})])


def _client(url: str):
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    return OpenLineageClient(transport=HttpTransport(HttpConfig(url=url, retry={"total": 0})))


def _send_part(url: str, first: int, count: int, ready: Any, cpu: Any) -> None:
    client = _client(url)
    events = [_event(i) for i in range(first, first + count)]  # built before the clock starts
    ready.wait()
    started = time.process_time()
    for event in events:
        client.emit(event)
    with cpu.get_lock():
        cpu.value += time.process_time() - started


def _send(url: str, count: int, clients: int) -> tuple[float, float]:
    """Seconds for `clients` concurrent client processes (each its own interpreter, as producers are)
    to send `count` events between them, timed from when all are ready; and the CPU seconds the clients
    spent sending them (on a small machine clients and server share the cores)."""
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(clients + 1)
    cpu = context.Value("d", 0.0)
    share = count // clients
    senders = [context.Process(target=_send_part, args=(url, i * share, share, ready, cpu)) for i in range(clients)]
    for sender in senders:
        sender.start()
    ready.wait(timeout=120)
    started = time.perf_counter()
    for sender in senders:
        sender.join()
    elapsed = time.perf_counter() - started
    if any(s.exitcode != 0 for s in senders):
        raise SystemExit("a client process failed")
    return elapsed, cpu.value


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its children (the server's worker processes),
    from Linux's /proc."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000, help="events per measurement")
    parser.add_argument("--workers", type=int, default=4, help="serve lineage --workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workspace = Path(scratch) / "ws"
        meshpilot = [str(Path(sys.executable).parent / "meshpilot")]
        subprocess.run([*meshpilot, "init", "--workspace", str(workspace)], check=True, capture_output=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([*meshpilot, "serve", "lineage", "--workspace", str(workspace), "--port", str(port),
                                   "--workers", str(args.workers)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            try:
                wait_healthy(f"{url}/health", server)
            except RuntimeError as exc:
                raise SystemExit(f"serve lineage did not start: {exc}") from None
            _send(url, 100 * args.workers, args.workers)  # warm-up: every worker's imports, first validation
            cpu = _cpu_seconds(server.pid)
            one, client_cpu = _send(url, args.events, 1)
            cpu_one = _cpu_seconds(server.pid) - cpu
            four, _ = _send(url, args.events, 4)
        finally:
            server.terminate()
            server.wait(timeout=30)
        stored = sum(len(p.read_text().splitlines()) for p in (workspace / "lineage").glob("http-*.jsonl"))
    print(json.dumps({
        "events_per_measurement": args.events, "one_client_events_per_s": round(args.events / one),
        "four_clients_events_per_s": round(args.events / four), "events_stored": stored,
        "events_acknowledged": 100 * args.workers + 2 * args.events, "server_workers": args.workers, "server_cpu_ms_per_event": round(cpu_one / args.events * 1000, 2),
        "client_cpu_ms_per_event": round(client_cpu / args.events * 1000, 2),
        # Clients and server share the cores: at most this many events/s fit in the machine's CPU.
        "cpu_bound_events_per_s": round((os.cpu_count() or 1) * args.events / (cpu_one + client_cpu)),
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
