"""Offline model routing: the share of requests routed to the right tool calls with the right arguments.

Two suites of requests about the demo mesh, each with the expected tool calls (name and the arguments
that matter):
- routing_phrasings.jsonl: 228 phrasings in several styles (terse, chatty, non-native, misspelt, with and
  without product names), written before the rules were changed. Its `test` split (72) was written after
  the rest had been used for development and is reported apart: target >= 0.90 there. (A first test half
  scored 0.875 before it was looked at; it has been development data since, in `dev`.)
- routing.jsonl: the 91 requests written together with the rules (a regression suite, not a measure).
Prints one JSON object; builds the demo mesh in a temporary folder.
Usage: uv run python benchmarks/offline_routing.py [--show-errors]
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

SUITES = Path(__file__).parents[1] / "src" / "meshpilot" / "evals" / "suites"


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
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args()
    phrasings = _read(SUITES / "routing_phrasings.jsonl")
    suites = {"test": [c for c in phrasings if c["split"] == "test"], "dev": [c for c in phrasings if c["split"] == "dev"],
              "regression": _read(SUITES / "routing.jsonl")}
    result: dict = {"benchmark": "offline_routing"}
    with tempfile.TemporaryDirectory() as tmp:
        router = Router(Catalog.open(build_demo(Path(tmp) / "demo")))
        latencies: list[float] = []
        for name, cases in suites.items():
            accuracy, errors, times = score(router, cases)
            latencies += times
            result[f"{name}_requests"], result[f"{name}_accuracy"] = len(cases), round(accuracy, 3)
            if args.show_errors:
                result[f"{name}_errors"] = errors
    latencies.sort()
    result.update({"target_met": result["test_accuracy"] >= 0.90, "route_ms_p50": round(latencies[len(latencies) // 2], 2),
                   "route_ms_p95": round(latencies[int(0.95 * (len(latencies) - 1))], 2)})
    print(json.dumps(result))


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

if __name__ == "__main__":
    main()
