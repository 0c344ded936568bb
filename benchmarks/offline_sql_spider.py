"""How often the offline SQL writer is wrong when it answers, on Spider's single-table questions.

Spider's dev questions (../shared/data/spider_dev) were written by others, for other schemas, and the writer
was not tuned on them. Each question whose gold query reads one table, with no join or subquery, is given to
`OfflineSqlWriter` with its database's tables as candidates (schema linking is measured apart, by
benchmarks/schema_linking.py). The data is not shipped, so the writer has no column values to match: a
question that filters on a value should be refused, and answering it without the filter is wrong.

An answer is right when its query has the gold's table, select list, filter, grouping, order and limit (each
compared as sqlglot writes it, names lower-cased, aliases dropped; an order the gold has not, without a limit,
is ignored); anything else it answers is wrong.
Databases are split in two by a hash of their name, frozen before any tuning: `--split test` (the default)
reports the held-out half. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import sqlglot
from sqlglot import exp

sys.path.insert(0, str(Path(__file__).parent))

from spider import SPIDER, split_of  # noqa: E402

from meshpilot.agents.sql_rules import Draft, OfflineSqlWriter  # noqa: E402
from meshpilot.mesh.model import Column, Dataset  # noqa: E402

TYPES = {"text": "VARCHAR", "number": "DOUBLE", "time": "DATE", "boolean": "BOOLEAN", "others": "VARCHAR"}


def datasets(schema: dict) -> list[Dataset]:
    tables = []
    for index, table in enumerate(schema["table_names_original"]):
        columns = [Column(name=name, type=TYPES.get(kind, "VARCHAR"), primary_key=position in schema["primary_keys"])
                   for position, ((owner, name), kind) in enumerate(zip(schema["column_names_original"],
                                                                        schema["column_types"], strict=True))
                   if owner == index]
        names = [c.name.lower() for c in columns]
        if len(set(names)) == len(names):
            tables.append(Dataset(name=table.lower(), qualified_name=f"{schema['db_id']}.{table}", columns=columns))
    return tables


def signature(sql: str) -> tuple | None:
    """What an answer must share with the gold: table, select list, filter, grouping, order and limit."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.ParseError:
        return None
    if not isinstance(tree, exp.Select) or tree.find(exp.Join) or len(list(tree.find_all(exp.Select))) > 1:
        return None
    tables = {t.name.lower() for t in tree.find_all(exp.Table)}
    if len(tables) != 1:
        return None
    for node in tree.find_all(exp.Column):
        node.set("table", None)
    for node in tree.find_all(exp.Identifier):
        node.set("this", node.name.lower())
        node.set("quoted", False)

    def text(part: exp.Expression | None) -> str | None:
        return part.sql(dialect="duckdb").lower() if part is not None else None

    select = sorted(text(e.unalias()) for e in tree.expressions)
    return (tables.pop(), tuple(select), text(tree.args.get("where")), text(tree.args.get("group")),
            text(tree.args.get("order")), text(tree.args.get("limit")), bool(tree.args.get("distinct")))


def same(got: tuple | None, gold: tuple) -> bool:
    """Equal signatures; an order the gold does not ask for is ignored when there is no limit (the rows are
    the same ones: the writer orders grouped counts by their group for reading)."""
    if got is None:
        return False
    if gold[4] is None and got[5] is None and gold[5] is None:
        got = got[:4] + (None,) + got[5:]
    return got == gold


def evaluate(split: str) -> dict:
    schemas = {s["db_id"]: s for s in json.loads((SPIDER / "tables.json").read_text())}
    writer = OfflineSqlWriter(lambda dataset, column: None)
    questions = answered = right = 0
    wrong: list[dict] = []
    for item in json.loads((SPIDER / "dev.json").read_text()):
        if split != "all" and split_of(item["db_id"]) != split:
            continue
        gold = signature(item["query"])
        if gold is None:
            continue
        questions += 1
        draft = writer.write(item["question"], datasets(schemas[item["db_id"]]))
        if not isinstance(draft, Draft):
            continue
        answered += 1
        if same(signature(draft.sql.replace(f"{item['db_id']}.", "")), gold):
            right += 1
        else:
            wrong.append({"question": item["question"], "gold": item["query"], "got": draft.sql})
    return {"benchmark": "offline_sql_spider", "split": split, "single_table_questions": questions,
            "answered": answered, "answered_rate": round(answered / questions, 3) if questions else 0.0,
            "right": right, "wrong_of_answered": round(len(wrong) / answered, 3) if answered else 0.0,
            "wrong_examples": wrong[:8]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=["test", "dev", "all"], default="test")
    args = parser.parse_args()
    if not (SPIDER / "dev.json").exists():
        sys.exit(f"Spider is not at {SPIDER}: set MESHPILOT_SHARED_DATA to the shared data folder.")
    print(json.dumps(evaluate(args.split), indent=2))


if __name__ == "__main__":
    main()
