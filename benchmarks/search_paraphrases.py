"""Catalog search on paraphrases: questions about the demo mesh by someone who does not know its column
names ("when was the shopper born" for customer_profile.date_of_birth), written apart from the index code
(src/meshpilot/evals/suites/retrieval_paraphrases.jsonl; split by a hash of the question, frozen before the
synonyms were written; the dev split was looked at, the test split only measured). A question counts when
its gold reference is among the top 5 hits. Target: recall@5 >= 0.85 on the test split.
Prints one JSON object. Usage: uv run python benchmarks/search_paraphrases.py [--show-misses]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from meshpilot.mesh.demo import build_demo
from meshpilot.tools.catalog import Catalog

SUITE = Path(__file__).parents[1] / "src" / "meshpilot" / "evals" / "suites" / "retrieval_paraphrases.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    cases = [json.loads(line) for line in SUITE.read_text().splitlines() if line.strip()]
    result: dict = {"benchmark": "search_paraphrases"}
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog.open(build_demo(Path(tmp) / "demo"))
        for split in ("test", "dev"):
            chosen = [c for c in cases if c["split"] == split]
            misses = []
            for case in chosen:
                hits = [h.ref for h in catalog.search(case["question"], k=5).hits]
                if not set(case["gold"]) <= set(hits):
                    misses.append({"question": case["question"], "gold": case["gold"], "got": hits})
            result[f"{split}_questions"] = len(chosen)
            result[f"{split}_recall_at_5"] = round(1 - len(misses) / len(chosen), 3)
            if args.show_misses:
                result[f"{split}_misses"] = misses
    result["target_met"] = result["test_recall_at_5"] >= 0.85
    print(json.dumps(result))


if __name__ == "__main__":
    main()
