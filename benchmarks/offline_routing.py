"""Offline model routing: the share of requests routed to the right tool calls with the right arguments.

The suite (src/meshpilot/evals/suites/routing.jsonl) holds differently phrased requests about the demo
mesh, each with the expected tool calls (name and the arguments that matter). Target: >= 95%. Prints one
JSON object; builds the demo mesh in a temporary folder.
Usage: uv run python benchmarks/offline_routing.py [--suite FILE] [--show-errors]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from meshpilot.agents.offline import Router
from meshpilot.mesh.demo import build_demo
from meshpilot.tools.catalog import Catalog

SUITE = Path(__file__).parents[1] / "src" / "meshpilot" / "evals" / "suites" / "routing.jsonl"


def matches(expected: list, calls: list[dict]) -> bool:
    if sorted(name for name, _ in expected) != sorted(c["name"] for c in calls):
        return False
    for name, args in expected:
        if not any(c["name"] == name and all(c["args"].get(k) == v for k, v in args.items()) for c in calls):
            return False
    return True


def score(router: Router, cases: list[dict]) -> tuple[float, list[dict], list[float]]:
    errors, latencies = [], []
    for case in cases:
        t0 = time.perf_counter()
        calls = router.route(case["request"])
        latencies.append((time.perf_counter() - t0) * 1000)
        if not matches(case["calls"], calls):
            errors.append({"request": case["request"], "expected": case["calls"],
                           "got": [[c["name"], c["args"]] for c in calls]})
    return 1 - len(errors) / len(cases), errors, latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", default=str(SUITE))
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args()
    cases = [json.loads(line) for line in Path(args.suite).read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        workspace = build_demo(Path(tmp) / "demo")
        accuracy, errors, latencies = score(Router(Catalog.open(workspace)), cases)
    latencies.sort()
    result = {"benchmark": "offline_routing", "requests": len(cases), "accuracy": round(accuracy, 3),
              "target_met": accuracy >= 0.95, "route_ms_p50": round(latencies[len(latencies) // 2], 2),
              "route_ms_p95": round(latencies[int(0.95 * (len(latencies) - 1))], 2)}
    if args.show_errors:
        result["errors"] = errors
    print(json.dumps(result))


if __name__ == "__main__":
    main()
