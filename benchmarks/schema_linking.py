"""Schema linking on Spider: does `link_schema` find the tables a question needs, among 876 tables?

All 166 schemas of Spider's tables.json go into one catalog (one data product per database), so every
question has 165 other databases as distractors, many with the same table names (Customers, Orders...).
For each question the gold tables are those its gold SQL reads (parsed with sqlglot). Figures are on one
half of the databases, frozen before tuning (see benchmarks/spider.py): `--split test` (the default)
reports the held-out half, `--split dev` the half tuned on. Two wordings of the same questions:
- spider: as Spider's authors wrote them (they often repeat column names);
- spider_syn: Spider-Syn's, with schema words replaced by synonyms ("heads of the departments" ->
  "leaders of the divisions"), the closest we have to users who do not know the column names.
Prints one JSON object: per wording, questions, recall_at_5 and recall_at_10 (a question counts only if
all its gold tables are in the top k), db_at_1 (the top table is from the right database), p50_ms and
p95_ms per question; build_s, config.

Usage: uv run python benchmarks/schema_linking.py [--split test|dev|all] [--embeddings none]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from spider import SPIDER, product_id, products_from_spider, questions  # noqa: E402

from meshpilot.evals.spider import linked  # noqa: E402
from meshpilot.tools import embeddings  # noqa: E402
from meshpilot.tools.catalog import Catalog  # noqa: E402


def evaluate(catalog: Catalog, cases: list[dict]) -> dict[str, float]:
    recall5 = recall10 = db1 = counted = 0
    latencies = []
    for q in cases:
        scored = linked(catalog, q)
        if scored is None:
            continue
        counted += 1
        wanted, names, elapsed_ms = scored
        latencies.append(elapsed_ms)
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
    parser.add_argument("--spider", type=Path, default=SPIDER, help="folder with Spider's tables.json")
    parser.add_argument("--split", choices=["test", "dev", "all"], default="test")
    parser.add_argument("--embeddings", default="none", help="none, hashing, litellm:<model>, sentence-transformers")
    args = parser.parse_args()
    started = time.perf_counter()
    products = products_from_spider(args.spider / "tables.json")
    catalog = Catalog.from_products(products, embedder=embeddings.parse(args.embeddings))
    build_s = time.perf_counter() - started
    figures = {wording: evaluate(catalog, questions(args.split, wording))
               for wording in ("original", "synonyms")}
    print(json.dumps({
        "benchmark": "schema_linking", "split": args.split,
        "spider": figures["original"], "spider_syn": figures["synonyms"],
        "build_s": round(build_s, 2),
        "tables": sum(len(p.output_ports) for p in products),
        "config": {"retrieval": "bm25-structured" + ("" if args.embeddings == "none" else f"+dense:{args.embeddings}"),
                   "embeddings": args.embeddings},
    }))


if __name__ == "__main__":
    main()
