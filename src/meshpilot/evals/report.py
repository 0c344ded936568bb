"""Eval reports: JSON (everything, also usable as the next --baseline), Markdown, and a static HTML page
with a bar per metric against its threshold (inline SVG: no scripts, nothing loaded from elsewhere)."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meshpilot.evals.runner import Check, SuiteResult


def as_json(results: list[SuiteResult], checks: list[Check]) -> dict[str, Any]:
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "passed": all(c.status != "fail" for c in checks),
        "suites": {r.name: {"cases": r.cases, "seconds": r.seconds, "metrics": r.metrics, "skipped": r.skipped,
                            "failures": r.failures[:20]} for r in results},
        "checks": [c.__dict__ for c in checks],
    }


def baseline_of(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The metrics of an earlier JSON report, as a baseline."""
    return {name: suite["metrics"] for name, suite in report.get("suites", {}).items()}


def as_markdown(results: list[SuiteResult], checks: list[Check]) -> str:
    lines = ["# Meshpilot evals", "", f"Result: **{'PASS' if all(c.status != 'fail' for c in checks) else 'FAIL'}**", "",
             "| suite | metric | value | threshold | status | note |", "|---|---|---|---|---|---|"]
    for c in checks:
        value = "–" if c.value is None else f"{c.value:g}"
        lines.append(f"| {c.suite} | {c.metric} | {value} | {c.threshold} | {c.status} | {c.reason} |")
    lines += ["", "| suite | cases | seconds |", "|---|---|---|"]
    lines += [f"| {r.name} | {r.cases} | {r.seconds} |" for r in results]
    return "\n".join(lines) + "\n"


def as_html(results: list[SuiteResult], checks: list[Check]) -> str:
    rows = []
    for c in checks:
        colour = {"pass": "#2e7d32", "fail": "#c62828", "skipped": "#9e9e9e"}[c.status]
        bar = ""
        if c.value is not None:
            scale = max(1.0, c.value)  # counts (leaks) can exceed 1
            width = int(240 * min(c.value, scale) / scale)
            bar = (f'<svg width="250" height="14" role="img" aria-label="{c.value:g}"><rect width="240" height="14" '
                   f'fill="#eee"/><rect width="{width}" height="14" fill="{colour}"/></svg>')
        value = "–" if c.value is None else f"{c.value:g}"
        rows.append(f"<tr><td>{html.escape(c.suite)}</td><td>{html.escape(c.metric)}</td><td>{value}</td><td>{bar}</td>"
                    f"<td>{html.escape(c.threshold)}</td><td style='color:{colour}'>{c.status}</td>"
                    f"<td>{html.escape(c.reason)}</td></tr>")
    verdict = "PASS" if all(c.status != "fail" for c in checks) else "FAIL"
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>Meshpilot evals</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2rem}td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;"
            "text-align:left}table{border-collapse:collapse}</style></head><body>"
            f"<h1>Meshpilot evals: {verdict}</h1><table><tr><th>suite</th><th>metric</th><th>value</th><th></th>"
            f"<th>threshold</th><th>status</th><th>note</th></tr>{''.join(rows)}</table>"
            f"<p>{sum(r.cases for r in results)} cases in {len(results)} suites.</p></body></html>")


def write(directory: Path, results: list[SuiteResult], checks: list[Check]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "evals.json", directory / "evals.md", directory / "evals.html"]
    paths[0].write_text(json.dumps(as_json(results, checks), indent=2, default=str), encoding="utf-8")
    paths[1].write_text(as_markdown(results, checks), encoding="utf-8")
    paths[2].write_text(as_html(results, checks), encoding="utf-8")
    return paths
