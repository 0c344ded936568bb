"""What every importer shares: a batch of mesh entities, merged into the workspace in one validated step.

An importer only translates its source into an `ImportBatch`. Merging is the same for all: products
are written whole (one file each), teams are merged by id, lineage events are added to the source's
own file without duplicates, check results are merged by (dataset, check, run time). The workspace as
it would be is validated before anything is written, so a bad source leaves the workspace untouched,
and importing the same source twice changes nothing the second time. Where the workspace's index is
current and the batch only changes product files and appends to logs, only those are validated
(against the index) and re-indexed: importing one product into a large workspace costs that product.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshpilot.errors import ImportRejectedError, InvalidWorkspaceError, Problem
from meshpilot.mesh import files
from meshpilot.mesh.model import CheckResult, DataProduct, Team
from meshpilot.mesh.store import apply_incrementally, index_loaded
from meshpilot.mesh.workspace import Workspace


@dataclass
class ImportBatch:
    source: str  # what the user pointed at, for messages
    name: str  # stable stem of this source's lineage and quality files
    products: list[DataProduct] = field(default_factory=list)
    teams: list[Team] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # validated OpenLineage events, as sent
    results: list[CheckResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def apply_batch(workspace: Workspace, batch: ImportBatch) -> dict[str, Any]:
    changes: dict[str, str] = {}
    parsed: dict[str, Any] = {}  # what each product file holds, so validation does not parse it back
    documents = {f"products/{p.domain}.{p.id}.yaml": p.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
                 for p in batch.products}
    for (relative, document), text in zip(documents.items(), files.dump_yaml_many(list(documents.values())),
                                          strict=True):
        changes[relative], parsed[relative] = text, document
    if batch.teams:
        changes["teams.yaml"] = files.dump_yaml({"teams": _merged_teams(workspace, batch.teams)})
    if batch.events:
        relative = f"lineage/{batch.name}.jsonl"
        text = _merged_log(workspace, relative, batch.events, key=_canonical,
                           order=lambda e: str(e.get("eventTime", "")))
        if text is not None:
            changes[relative] = text
    if batch.results:
        relative = f"quality/{batch.name}.jsonl"
        # New results after the ones already there (not re-sorted), so the log only grows and the
        # index takes the new lines alone.
        text = _merged_log(workspace, relative, [r.model_dump(mode="json", exclude_none=True) for r in batch.results],
                           key=lambda r: (r["dataset"], r["check_id"], r.get("run_at")))
        if text is not None:
            changes[relative] = text
    changed = apply_incrementally(workspace, changes, parsed)
    if changed is None:
        try:
            changed, mesh = workspace.apply_loaded(changes, parsed)
        except InvalidWorkspaceError as exc:
            raise ImportRejectedError(
                f"Nothing was imported from {batch.source}: the workspace would not be valid with it.",
                problems=exc.problems,
                hint="Fix the source (or the workspace files named above) and import again.",
            ) from exc
        # The mesh just validated is what the files now hold: index it now rather than read it all back
        # at the next command.
        index_loaded(workspace, mesh)
    datasets = [d for p in batch.products for d in p.datasets]
    return {
        "source": batch.source,
        "imported": {
            "products": len(batch.products),
            "datasets": len(datasets),
            "columns": sum(len(d.columns) for d in datasets),
            "checks": sum(len(d.checks) for d in datasets),
            "check_results": len(batch.results),
            "lineage_events": len(batch.events),
            "teams": len(batch.teams),
        },
        "files_changed": changed,
        "warnings": batch.warnings,
    }


def _canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def _merged_log(workspace: Workspace, relative: str, records: list[dict[str, Any]], key, order=None) -> str | None:
    """The JSON Lines log at `relative` with `records` merged in (a record replaces an earlier one of the
    same key), or None when it already holds each of them as written.

    A re-import mostly brings what the log has: that is found by comparing lines, so a log of a whole
    catalog's runs is not parsed and written again for one changed product."""
    path = workspace.root / relative
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = [_canonical(r) for r in records]
    if text and set(lines) <= set(text.splitlines()):
        return None
    by_key = {key(r): r for r in _parsed_lines(relative, text)}
    by_key.update((key(r), r) for r in records)
    merged = list(by_key.values())
    if order is not None:
        merged.sort(key=order)
    return "".join(_canonical(r) + "\n" for r in merged)


def _parsed_lines(relative: str, text: str) -> list[dict[str, Any]]:
    records = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.strip():
            try:
                records.append(json.loads(raw))
            except (json.JSONDecodeError, RecursionError) as exc:
                raise ImportRejectedError(
                    f"Nothing was imported: {relative} in the workspace is not valid JSON Lines.",
                    problems=[Problem(relative, f"invalid JSON: {exc.msg}" if isinstance(exc, json.JSONDecodeError)
                                      else files.TOO_DEEP, number)],
                    hint="Repair or remove that line, then import again.",
                ) from exc
    return records


def _merged_teams(workspace: Workspace, imported: list[Team]) -> list[dict[str, Any]]:
    existing: list[dict[str, Any]] = []
    if (workspace.root / "teams.yaml").exists():
        doc, problems = files.load_yaml(workspace.root / "teams.yaml", "teams.yaml")
        if problems:
            raise ImportRejectedError("Nothing was imported: teams.yaml in the workspace is invalid.", problems=problems)
        existing = list((doc.data or {}).get("teams") or []) if isinstance(doc.data, dict) else []
    by_id = {t.get("id"): t for t in existing if isinstance(t, dict)}
    by_id.update((t.id, t.model_dump(mode="json", exclude_defaults=True)) for t in imported)
    return list(by_id.values())


def read_json(path: Path, what: str) -> Any:
    """A JSON file of an import source, or a clear rejection naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ImportRejectedError(f"{path} does not exist.", hint=f"Point the import at a {what}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportRejectedError(f"Cannot read {path}: {exc}.") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ImportRejectedError(f"{path} is {files.TOO_DEEP}, so nothing was imported.",
                                  hint=f"Check that it is a {what}.") from None
    except json.JSONDecodeError as exc:
        raise ImportRejectedError(
            f"{path} is not valid JSON, so nothing was imported.",
            problems=[Problem(str(path), f"{exc.msg} (column {exc.colno})", exc.lineno)],
            hint=f"Check that it is a {what}.",
        ) from None
