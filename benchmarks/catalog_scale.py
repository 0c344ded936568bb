"""A catalog at real sizes, as users run it: cold processes of the `meshpilot` command on workspaces of N
datasets (about 20 columns each, products of 10 datasets, written as product files like an import does).

For each size: the first command (which builds the metadata index and the search index), then three
cold runs each of `search`, `link-schema`, `sql validate`, `datasets show` and `products list` with the
indexes built (wall time of the whole process), the warm public tool functions with a fresh catalog per
call (as the agent and MCP call them), and the rebuild after one product file changes. Prints one JSON
object with medians and the growth exponent between the smallest and largest size.

Usage: uv run python benchmarks/catalog_scale.py [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from search_scale import synthetic_products  # noqa: E402

from meshpilot.mesh import files  # noqa: E402
from meshpilot.mesh.workspace import Workspace  # noqa: E402

RUNS = 3


def meshpilot() -> str:
    found = Path(sys.executable).parent / "meshpilot"
    return str(found) if found.exists() else shutil.which("meshpilot")


def write_workspace(root: Path, size: int) -> tuple[Workspace, list]:
    workspace = Workspace.create(root, name=f"scale-{size}")
    products = synthetic_products(size)
    teams = {"teams": [{"id": f"team-{i}", "name": f"Team {i}"} for i in range(50)]}
    changes = {"teams.yaml": files.dump_yaml(teams)}
    changes |= {f"products/{p.domain}.{p.id}.yaml": files.dump_yaml(p.model_dump(mode="json", exclude_none=True,
                                                                                   exclude_defaults=True))
                for p in products}
    workspace.apply(changes)
    return workspace, products


def cold(*args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([meshpilot(), *args], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"meshpilot {' '.join(args[:2])} failed: {done.stderr[-400:]}")
    return time.perf_counter() - started


def warm(fn, runs: int = 10) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def measure(size: int, scratch: Path) -> dict:
    from meshpilot.tools import sql
    from meshpilot.tools.catalog import link_schema, search_catalog

    root = scratch / f"ws{size}"
    started = time.perf_counter()
    workspace, products = write_workspace(root, size)
    write_s = time.perf_counter() - started
    ws = ["--workspace", str(root)]
    first_s = cold("products", "list", *ws, "--json")
    first_search_s = cold("search", "customer refund amount", *ws, "--json")
    dataset = products[len(products) // 2].datasets[0]
    ref = str(products[len(products) // 2].dataset_ref(dataset.name))
    query = f"SELECT {dataset.columns[0].name}, count(*) FROM {dataset.qualified_name} GROUP BY 1"
    commands = {
        "search": ["search", "customer refund amount", *ws, "--json"],
        "link_schema": ["link-schema", "revenue amount per customer region", *ws],
        "sql_validate": ["sql", "validate", query, *ws],
        "datasets_show": ["datasets", "show", ref, *ws, "--json"],
        "products_list": ["products", "list", *ws, "--json"],
    }
    cli = {}
    for name, args in commands.items():
        samples = sorted(cold(*args) for _ in range(RUNS))
        cli[name] = {"median_s": round(statistics.median(samples), 2), "max_s": round(samples[-1], 2)}
    tools = {
        "search_catalog_ms": round(warm(lambda: search_catalog("customer refund amount", workspace=workspace)), 1),
        "link_schema_ms": round(warm(lambda: link_schema("revenue amount per customer region", workspace=workspace)), 1),
        "sql_validate_ms": round(warm(lambda: sql.validate(query, workspace=workspace)), 1),
    }
    changed = root / f"products/{products[0].domain}.{products[0].id}.yaml"
    changed.write_text(changed.read_text().replace("Data about", "Data (changed) about", 1))
    after_change_s = cold("search", "customer refund amount", *ws, "--json")
    return {"datasets": size, "columns": sum(len(d.columns) for p in products for d in p.datasets),
            "write_files_s": round(write_s, 1), "first_command_s": round(first_s, 2),
            "first_search_s": round(first_search_s, 2), "cli": cli, "warm_tools": tools,
            "one_product_changed_s": round(after_change_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        results = [measure(size, Path(scratch)) for size in sizes]
    growth = {}
    if len(results) > 1:
        small, large = results[0], results[-1]
        ratio = math.log(large["datasets"] / small["datasets"])

        def exponent(a: float, b: float) -> float:
            return round(math.log(max(b, 1e-6) / max(a, 1e-6)) / ratio, 2)

        growth = {"first_command": exponent(small["first_command_s"], large["first_command_s"]),
                  **{f"cli_{k}": exponent(small["cli"][k]["median_s"], large["cli"][k]["median_s"]) for k in small["cli"]},
                  **{k: exponent(small["warm_tools"][k], large["warm_tools"][k]) for k in small["warm_tools"]}}
    print(json.dumps({"sizes": results, "growth_exponent": growth}))


if __name__ == "__main__":
    main()
