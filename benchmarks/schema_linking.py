"""Schema linking on a Spider-format text-to-SQL set: does `link_schema` find the tables a question needs?

All schemas of `tables.json` go into one catalog (one data product per database); for each question of
`dev.json`, the gold tables are those its gold SQL reads (parsed with sqlglot). Prints one JSON object:
questions, recall_at_5 and recall_at_10 (a question counts only if all its gold tables are in the top k),
db_at_1 (the top table is from the right database), p50_ms and p95_ms per question, build_s, config.

Usage: uv run python benchmarks/schema_linking.py --spider ../shared/data/spider_dev [--embeddings none]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import sqlglot
from sqlglot import exp

from meshpilot.mesh.model import NAME_PATTERN, Column, DataProduct, Dataset, OutputPort, slugify
from meshpilot.tools import embeddings
from meshpilot.tools.catalog import Catalog


def product_id(db_id: str) -> str:
    """The product id of a database: its own name when it is a valid id (case kept), else a slug."""
    return db_id if re.fullmatch(NAME_PATTERN, db_id) else slugify(db_id)


def products_from_spider(tables_json: Path) -> list[DataProduct]:
    products = []
    for schema in json.loads(tables_json.read_text()):
        db = schema["db_id"]
        pk = set(schema["primary_keys"])
        fks = {a: b for a, b in schema["foreign_keys"]}
        columns = list(zip(schema["column_names_original"], schema["column_names"], schema["column_types"], strict=True))
        datasets = []
        for t, (table, natural) in enumerate(zip(schema["table_names_original"], schema["table_names"], strict=True)):
            cols = []
            for i, ((owner, name), (_, nat), type_) in enumerate(columns):
                if owner != t:
                    continue
                ref = None
                if i in fks:
                    other_table, other_column = columns[fks[i]][0]
                    ref = f"{schema['table_names_original'][other_table]}.{other_column}"
                if any(c.name == name for c in cols):
                    continue
                cols.append(Column(name=name, type=type_.upper(), description=nat, primary_key=i in pk, references=ref))
            datasets.append(Dataset(name=table, qualified_name=f"{db}.{table}", description=natural, columns=cols))
        products.append(DataProduct(
            id=product_id(db), name=db.replace("_", " "), domain="spider",
            output_ports=[OutputPort(name=slugify(d.name), location=d.qualified_name, dataset=d) for d in datasets]))
    return products


def gold_tables(sql: str) -> set[str] | None:
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.ParseError:
        return None
    return {table.name.lower() for table in tree.find_all(exp.Table)}


def evaluate(catalog: Catalog, questions: list[dict]) -> dict[str, float]:
    recall5 = recall10 = db1 = counted = 0
    latencies = []
    for q in questions:
        gold = gold_tables(q["query"])
        if not gold:
            continue
        counted += 1
        started = time.perf_counter()
        link = catalog.link_schema(q["question"], k=10)
        latencies.append((time.perf_counter() - started) * 1000)
        names = [(t.ref.split("/")[3], t.qualified_name.split(".", 1)[1].lower()) for t in link.tables
                 if t.role == "match"]
        wanted = {(product_id(q["db_id"]), table) for table in gold}
        recall5 += wanted <= set(names[:5])
        recall10 += wanted <= set(names[:10])
        db1 += bool(names) and names[0][0] == product_id(q["db_id"])
    latencies.sort()
    return {
        "questions": counted,
        "recall_at_5": round(recall5 / counted, 3),
        "recall_at_10": round(recall10 / counted, 3),
        "db_at_1": round(db1 / counted, 3),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spider", type=Path, required=True, help="folder with dev.json and tables.json")
    parser.add_argument("--embeddings", default="none", help="none, hashing, litellm:<model>, sentence-transformers")
    args = parser.parse_args()
    started = time.perf_counter()
    products = products_from_spider(args.spider / "tables.json")
    catalog = Catalog.from_products(products, embedder=embeddings.parse(args.embeddings))
    build_s = time.perf_counter() - started
    figures = evaluate(catalog, json.loads((args.spider / "dev.json").read_text()))
    print(json.dumps({
        **figures,
        "build_s": round(build_s, 2),
        "tables": sum(len(p.output_ports) for p in products),
        "config": {"retrieval": "bm25-structured" + ("" if args.embeddings == "none" else f"+dense:{args.embeddings}"),
                   "embeddings": args.embeddings},
    }))


if __name__ == "__main__":
    main()
