"""MCP server start-up: time from launching `meshpilot serve mcp` (stdio) to a successful tools/list,
with the official MCP client. Target: p50 <= 1.5 s. Prints one JSON object; builds the demo mesh in a
temporary folder (its index is built once before timing, as a running workspace has it).
Usage: uv run python benchmarks/mcp_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from meshpilot.mesh.demo import build_demo
from meshpilot.tools.catalog import Catalog


async def once(command: str, workspace: Path) -> tuple[float, int]:
    params = StdioServerParameters(command=command, args=["serve", "mcp", "--workspace", str(workspace)])
    started = time.perf_counter()
    async with Client(params) as client:
        tools = await client.list_tools()
        return time.perf_counter() - started, len(tools.tools)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    command = str(Path(sys.executable).parent / "meshpilot")
    with tempfile.TemporaryDirectory() as tmp:
        workspace = build_demo(Path(tmp) / "demo")
        Catalog.open(workspace)  # the index, as any used workspace has it
        anyio.run(once, command, workspace.root)  # warm the OS file cache
        timings, tools = [], 0
        for _ in range(args.runs):
            elapsed, tools = anyio.run(once, command, workspace.root)
            timings.append(elapsed)
    timings.sort()
    p50 = statistics.median(timings)
    print(json.dumps({"benchmark": "mcp_startup", "runs": args.runs, "tools": tools,
                      "p50_s": round(p50, 3), "p95_s": round(timings[int(0.95 * (len(timings) - 1))], 3),
                      "min_s": round(timings[0], 3), "target_met": p50 <= 1.5}))


if __name__ == "__main__":
    main()
