"""Execution accuracy of the offline SQL writer on the demo mesh (evals/suites/sql_offline.jsonl).

A question counts when the generated query returns the same rows as the gold query (as multisets,
numbers rounded to 6 significant digits; column names ignored). Prints one JSON object.
Usage: uv run python benchmarks/sql_offline_accuracy.py [--verbose]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from importlib.resources import files
from pathlib import Path

from meshpilot.agents.sql_loop import SqlLoop
from meshpilot.mesh.demo import build_demo
from meshpilot.tools.catalog import Catalog
from meshpilot.tools.sql import DuckDBEngine


def normalised(rows: list[list]) -> list[tuple]:
    def cell(value):
        return float(f"{float(value):.6g}") if isinstance(value, int | float) or type(value).__name__ == "Decimal" else value

    return sorted((tuple(cell(v) for v in row) for row in rows), key=repr)


def evaluate(loop: SqlLoop, engine: DuckDBEngine, verbose: bool = False) -> dict:
    suite = files("meshpilot.evals").joinpath("suites/sql_offline.jsonl").read_text().splitlines()
    questions = [json.loads(line) for line in suite if line.strip()]
    correct, answered, misses = 0, 0, []
    for item in questions:
        answer = loop.ask(item["question"])
        _, gold = engine.execute(item["gold_sql"], timeout_s=10)
        answered += answer.result is not None
        ok = answer.result is not None and normalised(answer.result.rows) == normalised(gold)
        correct += ok
        if not ok:
            misses.append({"question": item["question"], "sql": answer.sql, "answer": answer.answer,
                           "wrong": answer.result is not None})
        if verbose:
            print(("ok  " if ok else "MISS") + f" {item['question']} -> {answer.sql}")
    # A refusal says what it needs; a wrong answer misleads: they are counted apart.
    return {"questions": len(questions), "correct": correct, "execution_accuracy": round(correct / len(questions), 3),
            "answered_rate": round(answered / len(questions), 3),
            "wrong_of_answered": round((answered - correct) / answered, 3) if answered else 0.0, "misses": misses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workspace = build_demo(Path(scratch) / "demo")
        engine = DuckDBEngine(workspace.warehouse_path)
        print(json.dumps(evaluate(SqlLoop(Catalog.open(workspace), engine, limit=1000), engine, args.verbose)))


if __name__ == "__main__":
    main()
