"""SQL validation on a Spider-format set: gold queries must pass, near-miss mutants must not.

(a) every gold query, validated against its own database's schema in the sqlite dialect;
(b) mutants of each gold query: a referenced column renamed to a near miss, a table renamed to a near
miss, and a table swapped for one from another database; each must be rejected, and a near miss
should come with a suggestion naming the real object; (c) validation latency.
Prints one JSON object. Usage: uv run python benchmarks/sql_validation.py --spider ../shared/data/spider_dev
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import sqlglot
from sqlglot import exp

from meshpilot.evals.mutants import near_miss
from meshpilot.tools.sql import SqlSchema, Table, validate_sql


def schemas_from_spider(tables_json: Path) -> dict[str, SqlSchema]:
    schemas = {}
    for schema in json.loads(tables_json.read_text()):
        tables = []
        for t, name in enumerate(schema["table_names_original"]):
            columns = {c.lower(): c for owner, c in schema["column_names_original"] if owner == t}
            tables.append(Table(name=name, columns=columns))
        schemas[schema["db_id"]] = SqlSchema(tables)
    return schemas


def mutants(sql: str, db: str, schemas: dict[str, SqlSchema], rng: random.Random) -> list[tuple[str, str | None]]:
    """(mutated SQL, the name a good suggestion would give) for one gold query."""
    tree = sqlglot.parse_one(sql, read="sqlite")
    out = []
    columns = [c for c in tree.find_all(exp.Column) if c.name and not isinstance(c.this, exp.Star)
               and not c.this.quoted]
    if columns:
        target = rng.choice(columns)
        renamed = near_miss(target.name, rng)
        if renamed.lower() != target.name.lower():
            copy = tree.copy()
            for node in copy.find_all(exp.Column):
                if node.name == target.name and node.table == target.table:
                    node.set("this", exp.to_identifier(renamed))
                    break
            out.append((copy.sql(dialect="sqlite"), target.name))
    tables = list(tree.find_all(exp.Table))
    if tables:
        target = rng.choice(tables)
        renamed = near_miss(target.name, rng)
        if renamed.lower() != target.name.lower():
            copy = tree.copy()
            for node in copy.find_all(exp.Table):
                if node.name == target.name:
                    node.set("this", exp.to_identifier(renamed))
            out.append((copy.sql(dialect="sqlite"), target.name))
        own = {t.name.lower() for t in schemas[db].tables}
        foreign = [t.name for other, s in schemas.items() if other != db for t in s.tables if t.name.lower() not in own]
        copy = tree.copy()
        stranger = rng.choice(foreign)
        for node in copy.find_all(exp.Table):
            if node.name == target.name:
                node.set("this", exp.to_identifier(stranger))
        out.append((copy.sql(dialect="sqlite"), None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spider", type=Path, required=True)
    parser.add_argument("--show-failures", type=int, default=0, help="print this many rejected gold queries")
    args = parser.parse_args()
    schemas = schemas_from_spider(args.spider / "tables.json")
    questions = json.loads((args.spider / "dev.json").read_text())
    rng = random.Random(5)
    accepted, latencies, failures = 0, [], []
    mutants_total = mutants_rejected = with_suggestion = near_total = 0
    for q in questions:
        schema = schemas[q["db_id"]]
        started = time.perf_counter()
        result = validate_sql(q["query"], schema, dialect="sqlite")
        latencies.append((time.perf_counter() - started) * 1000)
        if result.ok:
            accepted += 1
        else:
            failures.append((q["query"], [str(p) for p in result.problems]))
        for sql, expected in mutants(q["query"], q["db_id"], schemas, rng):
            mutants_total += 1
            mutated = validate_sql(sql, schema, dialect="sqlite")
            if not mutated.ok:
                mutants_rejected += 1
            if expected is not None:
                near_total += 1
                if any(p.suggestion and p.suggestion.lower() == expected.lower() for p in mutated.problems):
                    with_suggestion += 1
    for sql, problems in failures[: args.show_failures]:
        print(sql, problems)
    latencies.sort()
    print(json.dumps({
        "gold_total": len(questions), "gold_accepted": accepted,
        "mutants_total": mutants_total, "mutants_rejected": mutants_rejected,
        "near_miss_mutants": near_total, "mutants_with_suggestion": with_suggestion,
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
    }))


if __name__ == "__main__":
    main()
