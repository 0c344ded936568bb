"""MCP over streamable HTTP under load: N concurrent clients (the official MCP client, one session each)
calling search_catalog and validate_sql in turn for D seconds against `meshpilot serve mcp --http`.
Reports throughput, p50/p99 latency and errors. Target: 0 errors at 50 concurrent clients.
Prints one JSON object; builds the demo mesh and a token in a temporary folder.
Usage: uv run python benchmarks/mcp_load.py [--clients 50] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from meshpilot.guardrails.policy import create_token
from meshpilot.mesh.demo import build_demo
from meshpilot.tools.catalog import Catalog

QUERIES = ["customer email", "refund amount", "orders per channel", "campaign spend", "net revenue segment"]
SQL = ["SELECT channel, count(*) FROM commerce.orders GROUP BY 1",
       "SELECT r.reason, sum(r.refund_amount) FROM commerce.returns r JOIN commerce.orders o ON o.order_id = r.order_id GROUP BY 1",
       "SELECT clv_segment, avg(net_revenue) FROM customer.customer_lifetime_value GROUP BY 1"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def client_loop(url: str, token: str, until: float, latencies: list[float], errors: list[str], index: int) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    try:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            i = index
            while time.monotonic() < until:
                if i % 2:
                    name, arguments = "search_catalog", {"query": QUERIES[i % len(QUERIES)], "k": 5}
                else:
                    name, arguments = "validate_sql", {"sql": SQL[i % len(SQL)]}
                started = time.perf_counter()
                try:
                    result = await client.call_tool(name, arguments)
                    if result.is_error:
                        errors.append(f"{name}: {result.content[0].text[:120]}")
                except Exception as exc:  # a transport failure is an error, not a crash of the benchmark
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
                latencies.append((time.perf_counter() - started) * 1000)
                i += 1
    except Exception as exc:
        errors.append(f"session: {type(exc).__name__}: {exc}")


async def load(url: str, token: str, clients: int, seconds: float) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    started = time.monotonic()
    until = started + seconds
    async with anyio.create_task_group() as group:
        for index in range(clients):
            group.start_soon(client_loop, url, token, until, latencies, errors, index)
    return latencies, errors, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = build_demo(Path(tmp) / "demo")
        Catalog.open(workspace)
        token = create_token(workspace, "analyst", "load-test")
        port = free_port()
        server = subprocess.Popen([str(Path(sys.executable).parent / "meshpilot"), "serve", "mcp", "--http", "--port",
                                   str(port), "--workspace", str(workspace.root)], stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/mcp"
        try:
            for _ in range(150):
                try:
                    httpx.get(url, timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            latencies, errors, elapsed = anyio.run(load, url, token, args.clients, args.seconds)
        finally:
            server.terminate()
            server.wait(timeout=10)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) if latencies else 0.0

    print(json.dumps({"benchmark": "mcp_load", "clients": args.clients, "seconds": round(elapsed, 1),
                      "calls": len(latencies), "throughput_per_s": round(len(latencies) / elapsed, 1),
                      "p50_ms": pct(0.50), "p99_ms": pct(0.99), "errors": len(errors),
                      "error_samples": sorted(set(errors))[:5], "target_met": not errors}))


if __name__ == "__main__":
    main()
