"""Import OpenLineage events from a JSON file (one event or a list) or a JSON Lines file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshpilot.errors import ImportRejectedError, Problem
from meshpilot.mesh import files
from meshpilot.mesh.connectors.base import ImportBatch, apply_batch, read_json
from meshpilot.mesh.model import slugify
from meshpilot.mesh.workspace import Workspace, validate_event


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event in the file, validated; any invalid event rejects the whole file."""
    if path.is_dir():
        raise ImportRejectedError(f"{path} is a folder.", hint="Give a .json or .jsonl file of OpenLineage events.")
    problems: list[Problem] = []
    located: list[files.LocatedDocument] = []
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        if not path.exists():
            raise ImportRejectedError(f"{path} does not exist.")
        for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if raw.strip():
                doc, line_problems = files.parse_json_line(raw, str(path), number)
                problems += line_problems
                located += [doc] if doc else []
    else:
        data = read_json(path, "JSON file of OpenLineage events")
        items = data if isinstance(data, list) else [data]
        # A JSON array has no per-item lines to cite; the item's position stands in for it.
        located = [files.LocatedDocument(f"{path} (event {i + 1} of {len(items)})", item, {})
                   for i, item in enumerate(items)]
    events = []
    for doc in located:
        if not isinstance(doc.data, dict):
            problems.append(doc.problem((), "an OpenLineage event is a JSON object"))
            continue
        event, event_problems = validate_event(doc)
        problems += event_problems
        if event:
            events.append(doc.data)
    if problems:
        raise ImportRejectedError(
            f"{path} holds invalid OpenLineage events, so none of them was imported:", problems=problems,
            hint="Each event needs eventTime (with a time zone), producer, schemaURL and run.runId (a UUID) + job, "
                 "or job alone (JobEvent), or dataset alone (DatasetEvent).")
    if not events:
        raise ImportRejectedError(f"{path} holds no OpenLineage events.")
    return events


def import_events(workspace: Workspace, path: Path) -> dict[str, Any]:
    events = read_events(Path(path))
    batch = ImportBatch(source=str(path), name=f"openlineage-{slugify(Path(path).stem)}", events=events)
    return apply_batch(workspace, batch)
