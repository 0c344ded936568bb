"""Spider's schemas as data products and the frozen split of its databases, for the schema-linking eval
suite and the benchmarks.

Spider (Yu et al., 2018; CC BY-SA 4.0) is not shipped with Meshpilot: it is read from the folder given by
`--spider`, MESHPILOT_SPIDER, MESHPILOT_SHARED_DATA/spider_dev, or ../shared/data/spider_dev. The split
was frozen before any tuning of schema linking: a database is in the test half when the SHA-256 of its name
is odd. Tune on `dev`, report `test`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import sqlglot
from sqlglot import exp

from meshpilot.errors import InvalidArgumentError
from meshpilot.evals.shared_data import shared_folder
from meshpilot.mesh.model import (
    NAME_PATTERN,
    Column,
    DataProduct,
    Dataset,
    OutputPort,
    slugify,
)


def spider_dir(given: str | Path | None = None) -> Path | None:
    """The Spider folder (with tables.json and dev.json), or None when there is none where one is looked for.
    A folder given explicitly must be one."""
    if given is not None:
        missing = [name for name in ("tables.json", "dev.json") if not (Path(given) / name).is_file()]
        if missing:
            raise InvalidArgumentError(f"{given} is not a Spider folder: it has no {' or '.join(missing)}.",
                                       hint="Give the folder of Spider's release that holds tables.json and dev.json.")
        return Path(given)
    return shared_folder("spider_dev", "tables.json", "dev.json", override="MESHPILOT_SPIDER")


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


def linked(catalog, case: dict, k: int = 10) -> tuple[set[tuple[str, str]], list[tuple[str, str]], float] | None:
    """For one Spider question ({db_id, question, query}): the (product id, table) pairs its gold SQL reads,
    those `link_schema` ranks (best first), and the milliseconds it took; None when the gold SQL does not
    parse."""
    gold = gold_tables(case["query"])
    if not gold:
        return None
    started = time.perf_counter()
    link = catalog.link_schema(case["question"], k=k)
    elapsed_ms = (time.perf_counter() - started) * 1000
    ranked = [(t.ref.split("/")[3], t.qualified_name.split(".", 1)[1].lower()) for t in link.tables if t.role == "match"]
    return {(product_id(case["db_id"]), table) for table in gold}, ranked, elapsed_ms
