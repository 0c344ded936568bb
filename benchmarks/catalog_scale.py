"""A catalog at real sizes, as users run it. Workspaces are built through the real importer (`meshpilot
import openmetadata`) from OpenMetadata exports (benchmarks/openmetadata_exports.py): a synthetic one of
N tables (15-25 columns each, schemas of ten, pipelines reading the few hundred tables before them, 2%
failing tests), and all 876 Spider tables (../shared/data/spider_dev/tables.json).

For each size, as separate cold processes of the `meshpilot` command: `init` + `import` (three times,
into a fresh workspace), the first command after it, the first `search` (which builds the search index),
then three runs each of `search`, `link-schema`, `sql validate`, `datasets show`, `lineage impact`,
`incidents triage` and `serve mcp` to a tools/list answered through the official MCP client; then the
public tool functions with a fresh catalog per call (as the agent and MCP call them), and the next
commands after one product file changed. Prints one JSON object with medians and maxima, the peak
RSS of each kind of process, and the growth exponent between the smallest and the largest size.

Usage: uv run python benchmarks/catalog_scale.py [--sizes 1000,10000] [--spider ../shared/data/spider_dev]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from openmetadata_exports import one_schema_export, spider_export, synthetic_export  # noqa: E402

RUNS = 3


def meshpilot() -> str:
    found = Path(sys.executable).parent / "meshpilot"
    return str(found) if found.exists() else shutil.which("meshpilot")


def cold(*args: str) -> tuple[float, str]:
    seconds, out, _ = cold_rss(*args)
    return seconds, out


def cold_rss(*args: str) -> tuple[float, str, int | None]:
    """Wall time, stdout and peak RSS (MB) of one `meshpilot` process. The peak is GNU time's: a child's
    own rusage starts from this (large) process's peak, which it inherits at the fork."""
    gnu_time = Path("/usr/bin/time").exists()
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        command = [meshpilot(), *args]
        if gnu_time:
            command = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *command]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"meshpilot {' '.join(args[:3])} failed: {done.stderr[-600:]}")
        peak = rss.read().strip().splitlines() if gnu_time else []
        return seconds, done.stdout, int(peak[-1]) // 1024 if peak and peak[-1].isdigit() else None


def cold_mcp(root: Path) -> float:
    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    async def once() -> float:
        params = StdioServerParameters(command=meshpilot(), args=["serve", "mcp", "--workspace", str(root)])
        started = time.perf_counter()
        async with Client(params) as client:
            tools = await client.list_tools()
            assert tools.tools
            return time.perf_counter() - started

    return anyio.run(once)


def runs(measure) -> dict:
    samples = sorted(measure() for _ in range(RUNS))
    return {"median_s": round(statistics.median(samples), 2), "max_s": round(samples[-1], 2)}


def cli_runs(args: list[str]) -> dict:
    timed = [cold_rss(*args) for _ in range(RUNS)]
    samples = sorted(t for t, _, _ in timed)
    return {"median_s": round(statistics.median(samples), 2), "max_s": round(samples[-1], 2),
            "peak_rss_mb": max((rss for _, _, rss in timed if rss is not None), default=None)}


def warm(fn, count: int = 20) -> dict:
    fn()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"median_ms": round(statistics.median(samples), 1), "p95_ms": round(samples[int(0.95 * (count - 1))], 1)}


def imported(root: Path, export: Path, runs: int = RUNS) -> dict:
    """`init` + `import` into a fresh workspace, `runs` times (the last one is kept), then the first
    command after it."""
    samples, peaks = [], []
    for _ in range(runs):
        shutil.rmtree(root, ignore_errors=True)
        started = time.perf_counter()
        cold("init", "--workspace", str(root))
        _, out, rss = cold_rss("import", "openmetadata", str(export), "--workspace", str(root), "--json")
        samples.append(time.perf_counter() - started)
        peaks.append(rss)
    index_s, _ = cold("products", "list", "--workspace", str(root), "--json")
    return {"import_s": round(statistics.median(samples), 2), "import_runs_s": [round(s, 2) for s in samples],
            "import_peak_rss_mb": max((p for p in peaks if p is not None), default=None), "first_command_s": round(index_s, 2),
            "imported": json.loads(out)["imported"]}


def measure(size: int, scratch: Path) -> dict:
    from meshpilot.mesh.model import slugify
    from meshpilot.mesh.store import MeshStore
    from meshpilot.mesh.workspace import Workspace
    from meshpilot.tools import lineage, sql
    from meshpilot.tools.catalog import get_dataset, link_schema, search_catalog

    export, root = scratch / f"om{size}", scratch / f"ws{size}"
    facts = synthetic_export(export, size)
    result = {"datasets": size, "columns": facts["columns"], **imported(root, export)}
    ws = ["--workspace", str(root)]
    workspace = Workspace.open(root)
    with MeshStore.open(workspace) as store:
        ref, product_file = store.con.execute(
            "SELECT d.ref, p.file FROM datasets d JOIN products p ON p.ref = d.product_ref WHERE d.qualified_name = ?",
            [facts["middle_fqn"]]).fetchone()
    column = facts["middle_column"]
    # By its table name, as people write it (OpenMetadata names have four parts: service.database.schema.table).
    query = f'SELECT {column}, count(*) FROM {facts["middle_fqn"].rsplit(".", 1)[-1]} GROUP BY 1'
    first_search_s, _, first_search_rss = cold_rss("search", "customer refund amount", *ws, "--json")
    result["first_search_s"] = round(first_search_s, 2)
    result["first_search_peak_rss_mb"] = first_search_rss
    commands = {
        "search": ["search", "customer refund amount", *ws, "--json"],
        "link_schema": ["link-schema", "revenue amount per customer region", *ws],
        "sql_validate": ["sql", "validate", query, *ws],
        "datasets_show": ["datasets", "show", ref, *ws, "--json"],
        "lineage_impact": ["lineage", "impact", f"{ref}#{column}", "--change", "drop", *ws, "--json"],
        # The check as the importer names it (column.test case, as a slug).
        "incidents_triage": ["incidents", "triage", slugify(f"id.{facts['failing_check']}"), *ws, "--json"],
    }
    result["cli"] = {name: cli_runs(args) for name, args in commands.items()}
    result["cli"]["serve_mcp_tools_list"] = runs(lambda: cold_mcp(root))
    result["warm_tools"] = {
        "search_catalog": warm(lambda: search_catalog("customer refund amount", workspace=workspace)),
        "link_schema": warm(lambda: link_schema("revenue amount per customer region", workspace=workspace)),
        "sql_validate": warm(lambda: sql.validate(query, workspace=workspace)),
        "get_dataset": warm(lambda: get_dataset(ref, workspace=workspace)),
        "lineage_impact": warm(lambda: lineage.impact(f"{ref}#{column}", change="drop", workspace=workspace), count=5),
    }
    changed = root / product_file
    edits = iter(range(2 * RUNS))

    def after_a_change(args: list[str]) -> float:
        # As a product team edits it: its description changes, so the product's rows and documents do.
        document = yaml.safe_load(changed.read_text())
        document["description"] = f"{document.get('description') or ''} Edited ({next(edits)})."
        changed.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
        return cold(*args)[0]

    # The next command re-indexes that product in the metadata index; a search also in the search index.
    result["one_product_changed"] = {
        "next_command": runs(lambda: after_a_change(commands["datasets_show"])),
        "next_search": runs(lambda: after_a_change(commands["search"])),
    }
    # The source re-exports the schema of that product with one table described anew.
    schema_fqn = facts["middle_fqn"].rsplit(".", 1)[0]
    exports = iter(range(RUNS))

    def import_one_schema() -> float:
        again = scratch / f"om{size}-one-schema"
        shutil.rmtree(again, ignore_errors=True)
        one_schema_export(export, again, schema_fqn, f"Described anew ({next(exports)}).")
        return cold("import", "openmetadata", str(again), *ws, "--json")[0]

    cold("products", "list", *ws, "--json")  # the index current, as after any command
    result["one_product_changed"]["import_of_its_schema"] = runs(import_one_schema)
    return result


def spider(folder: Path, scratch: Path) -> dict:
    export = scratch / "spider-export"
    facts = spider_export(export, folder / "tables.json")
    return {**facts, **imported(scratch / "spider", export)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--spider", type=Path, default=Path(os.environ.get("MESHPILOT_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data")) / "spider_dev")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        results = [measure(size, Path(scratch)) for size in sizes]
        spider_result = spider(args.spider, Path(scratch)) if (args.spider / "tables.json").exists() else None
    growth = {}
    if len(results) > 1:
        small, large = results[0], results[-1]
        ratio = math.log(large["datasets"] / small["datasets"])

        def exponent(a: float, b: float) -> float:
            return round(math.log(max(b, 1e-6) / max(a, 1e-6)) / ratio, 2)

        growth = {"import": exponent(small["import_s"], large["import_s"]),
                  "first_command": exponent(small["first_command_s"], large["first_command_s"]),
                  **{f"cli_{k}": exponent(small["cli"][k]["median_s"], large["cli"][k]["median_s"]) for k in small["cli"]},
                  **{f"tool_{k}": exponent(small["warm_tools"][k]["median_ms"], large["warm_tools"][k]["median_ms"])
                     for k in small["warm_tools"]}}
    print(json.dumps({"benchmark": "catalog_scale", "cpus": os.cpu_count(), "sizes": results, "spider": spider_result,
                      "growth_exponent": growth,
                      "peak_rss_mb_children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}))


if __name__ == "__main__":
    main()
