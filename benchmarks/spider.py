"""Spider, shared by the benchmarks: its schemas as data products, its questions, and the frozen split.

The split was frozen before any tuning of schema linking or of the offline SQL writer: a database is in the
test half when the SHA-256 of its name is odd. Tune on `dev`, report `test`.

Questions: Spider's own dev questions (../shared/data/spider_dev/dev.json, 20 databases) and its training
questions (140 other databases), the latter as Spider-Syn ships them (benchmarks/data/spider_syn, MIT),
each with its original wording and a synonym-substituted one whose words no longer repeat the schema's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from meshpilot.evals.spider import (  # noqa: F401 (re-exported)
    gold_tables,
    product_id,
    products_from_spider,
    split_of,
)

SPIDER = Path(os.environ.get("MESHPILOT_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data")) / "spider_dev"
SPIDER_SYN = Path(__file__).parent / "data" / "spider_syn"


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
