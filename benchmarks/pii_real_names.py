"""PERSON detection on real, human-annotated text: ../shared/data/ner_real_names (wikigold: Wikipedia; SEC
filings: contracts; BTC: tweets, informal and lowercase). Token-level precision, recall and F1 per corpus
and pooled, on the frozen split of sentences (src/meshpilot/evals/ner.py; `test` by default). The SEC
filings' role words annotated PER ("the Lender") are not scored: they are no one's name. `plain_spacy_f1` is
the same spaCy pipeline's PERSON entities taken as they are (what plain Presidio reports), for comparison.
Prints one JSON object. Usage: uv run python benchmarks/pii_real_names.py [--split test|dev] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from meshpilot.evals.ner import CORPORA, ner_dir, score_persons, sentences, spread
from meshpilot.guardrails import pii


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", choices=["test", "dev"], default="test")
    parser.add_argument("--limit", type=int, default=0, help="at most this many sentences per corpus (evenly spread)")
    args = parser.parse_args()
    folder = ner_dir()
    if folder is None:
        sys.exit("ner_real_names not found: set MESHPILOT_SHARED_DATA to the shared data folder")
    import spacy

    pii.analyzer()
    nlp = spacy.load(pii._spacy_model_path())
    detect = lambda text: [(f.start, f.end) for f in pii.analyze(text, entities=["PERSON"])]  # noqa: E731
    plain = lambda text: [(e.start_char, e.end_char) for e in nlp(text).ents if e.label_ == "PERSON"]  # noqa: E731
    result: dict = {"benchmark": "pii_real_names", "split": args.split}
    pooled = []
    started = time.perf_counter()
    for corpus in CORPORA:
        chosen = [s for s in sentences(folder, corpus) if s.split == args.split]
        chosen = spread(chosen, args.limit) if args.limit else chosen
        pooled += chosen
        result[corpus] = score_persons(chosen, detect) | {"sentences": len(chosen)}
        started_plain = time.perf_counter()
        result[corpus]["plain_spacy_f1"] = score_persons(chosen, plain)["f1"]
        started += time.perf_counter() - started_plain  # only the detector's own time counts
    result["ms_per_sentence"] = round((time.perf_counter() - started) * 1000 / len(pooled), 2)
    result["pooled"] = score_persons(pooled, detect) | {"sentences": len(pooled)}
    result["target_met"] = result["pooled"]["precision"] >= 0.80 and result["pooled"]["recall"] >= 0.80
    print(json.dumps(result))


if __name__ == "__main__":
    main()
