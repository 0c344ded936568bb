"""Spider, shared by the benchmarks: its schemas as data products, its questions, and the frozen split.

The split was frozen before any tuning of schema linking or of the offline SQL writer: a database is in the
test half when the SHA-256 of its name is odd. Tune on `dev`, report `test`.

Questions: Spider's own dev questions (../shared/data/spider_dev/dev.json, 20 databases) and its training
questions (140 other databases), the latter as Spider-Syn ships them (benchmarks/data/spider_syn, MIT),
each with its original wording and a synonym-substituted one whose words no longer repeat the schema's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import sqlglot
from sqlglot import exp

from meshpilot.mesh.model import (
    NAME_PATTERN,
    Column,
    DataProduct,
    Dataset,
    OutputPort,
    slugify,
)

SPIDER = Path(os.environ.get("MESHPILOT_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data")) / "spider_dev"
SPIDER_SYN = Path(__file__).parent / "data" / "spider_syn"


def split_of(db: str) -> str:
    return "test" if int(hashlib.sha256(db.encode()).hexdigest(), 16) % 2 else "dev"


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


def questions(split: str, wording: str = "original") -> list[dict]:
    """[{db_id, question, query}] of one split ('dev', 'test' or 'all'); wording 'original' or 'synonyms'
    (Spider-Syn's substitutions, for the same questions)."""
    key = "SpiderQuestion" if wording == "original" else "SpiderSynQuestion"
    rows = []
    for name in ("dev.json", "train_spider.json"):
        for item in json.loads((SPIDER_SYN / name).read_text()):
            if split in ("all", split_of(item["db_id"])):
                rows.append({"db_id": item["db_id"], "question": item[key], "query": item["query"]})
    return rows
