"""Time to build the demo mesh (target: under 10 s) and to open its index the first time.

Prints one JSON object: the build and first-index times of each run, and their median.
Usage: uv run python benchmarks/demo_build.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from meshpilot.mesh.demo import build_demo
from meshpilot.mesh.store import MeshStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    builds, indexes = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            workspace = build_demo(Path(scratch) / "demo")
            builds.append(time.perf_counter() - started)
            started = time.perf_counter()
            with MeshStore.open(workspace) as store:
                counts = store.counts()
            indexes.append(time.perf_counter() - started)
    print(json.dumps({
        "benchmark": "demo_build",
        "runs": args.runs,
        "build_s": [round(b, 3) for b in builds],
        "build_s_median": round(statistics.median(builds), 3),
        "first_index_s": [round(i, 3) for i in indexes],
        "first_index_s_median": round(statistics.median(indexes), 3),
        "target_build_s": 10,
        "counts": counts,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
    }))


if __name__ == "__main__":
    main()
