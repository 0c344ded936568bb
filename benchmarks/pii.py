"""PII detection: per-entity precision, recall and F1, and throughput, on a presidio-research dataset.

The dataset is a JSON list of {"full_text", "spans": [{"entity_type", "start_position", "end_position"}]}
(presidio-research's synthetic format). Scored per token, as presidio-evaluator does: each word gets the
entity of the span covering it, gold and predicted. Gold types are mapped to ours where they name the
same thing (GPE and STREET_ADDRESS are LOCATION; our DATE_OF_BIRTH counts as DATE_TIME); entities we do
not detect (ORGANIZATION, TITLE, AGE...) are reported as recall 0 but not hidden.
Usage: uv run python benchmarks/pii.py --presidio-synth FILE [--limit N]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter

from meshpilot.guardrails import pii

GOLD_MAP = {"GPE": "LOCATION", "STREET_ADDRESS": "LOCATION", "DATE_OF_BIRTH": "DATE_TIME"}
PRED_MAP = {"DATE_OF_BIRTH": "DATE_TIME"}
TARGETS = {"EMAIL_ADDRESS": 0.95, "PHONE_NUMBER": 0.95, "CREDIT_CARD": 0.95, "IBAN_CODE": 0.95, "US_SSN": 0.95,
           "IP_ADDRESS": 0.95, "PERSON": 0.80}


def token_labels(text: str, spans: list[tuple[str, int, int]]) -> list[str]:
    labels = []
    for match in re.finditer(r"\w+", text):
        label = "O"
        for entity, start, end in spans:
            if start < match.end() and match.start() < end:
                label = entity
        labels.append(label)
    return labels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presidio-synth", required=True)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    with open(args.presidio_synth, encoding="utf-8") as handle:
        samples = json.load(handle)[:args.limit]

    t0 = time.perf_counter()
    pii.analyzer()
    load_s = time.perf_counter() - t0
    tp, fp, fn = Counter(), Counter(), Counter()
    chars = 0
    t0 = time.perf_counter()
    for sample in samples:
        text = sample["full_text"]
        chars += len(text.encode())
        found = pii.analyze(text)
        gold = token_labels(text, [(GOLD_MAP.get(s["entity_type"], s["entity_type"]), s["start_position"],
                                    s["end_position"]) for s in sample["spans"]])
        pred = token_labels(text, [(PRED_MAP.get(f.entity_type, f.entity_type), f.start, f.end) for f in found])
        for g, p in zip(gold, pred):
            if g == p and g != "O":
                tp[g] += 1
                continue
            if p != "O":
                fp[p] += 1
            if g != "O":
                fn[g] += 1
    elapsed = time.perf_counter() - t0

    entities = {}
    for entity in sorted(set(tp) | set(fp) | set(fn)):
        precision = tp[entity] / (tp[entity] + fp[entity]) if tp[entity] + fp[entity] else 0.0
        recall = tp[entity] / (tp[entity] + fn[entity]) if tp[entity] + fn[entity] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        entities[entity] = {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3),
                            "support_tokens": tp[entity] + fn[entity]}
    met = {e: entities.get(e, {}).get("recall", 0) >= target for e, target in TARGETS.items()
           if entities.get(e, {}).get("support_tokens")}
    if "PERSON" in entities:
        met["PERSON"] = met.get("PERSON", False) and entities["PERSON"]["precision"] >= 0.80
    print(json.dumps({
        "benchmark": "pii", "dataset": args.presidio_synth, "samples": len(samples),
        "throughput_kb_s": round(chars / 1024 / elapsed, 1), "analyzer_load_s": round(load_s, 2),
        "targets_met": met, "entities": entities,
    }))


if __name__ == "__main__":
    main()
