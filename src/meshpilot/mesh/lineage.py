"""OpenLineage events as the workspace stores them, and the dataset and column edges they declare.

Only what the mesh needs is typed; every other facet is kept as it came, so nothing a producer sent is
lost when an event is written back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from importlib.resources import files
from typing import Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, model_validator

SCHEMA_FILE = "schemas/OpenLineage-2-0-2.json"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class RunState(StrEnum):
    START = "START"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    ABORT = "ABORT"
    FAIL = "FAIL"
    OTHER = "OTHER"


class LineageDataset(_Open):
    namespace: str
    name: str
    facets: dict[str, Any] = {}


class LineageJob(_Open):
    namespace: str
    name: str
    facets: dict[str, Any] = {}


class LineageRun(_Open):
    runId: UUID
    facets: dict[str, Any] = {}


class LineageEvent(_Open):
    """A RunEvent, JobEvent or DatasetEvent (told apart by which of run, job and dataset it has)."""

    eventTime: AwareDatetime
    producer: str
    schemaURL: str
    eventType: RunState | None = None
    run: LineageRun | None = None
    job: LineageJob | None = None
    dataset: LineageDataset | None = None
    inputs: list[LineageDataset] = []
    outputs: list[LineageDataset] = []

    @model_validator(mode="after")
    def _is_one_kind(self) -> LineageEvent:
        if self.run is not None and self.job is None:
            raise ValueError("a run event needs a 'job' (namespace and name)")
        if self.run is None and self.job is None and self.dataset is None:
            raise ValueError("an event needs 'run' and 'job' (RunEvent), 'job' (JobEvent) or 'dataset' (DatasetEvent)")
        return self

    @property
    def datasets(self) -> list[LineageDataset]:
        """Every dataset the event names: inputs, outputs, and a DatasetEvent's dataset."""
        return [*self.inputs, *self.outputs, *([self.dataset] if self.dataset else [])]

    @property
    def kind(self) -> str:
        if self.run is not None:
            return "run"
        return "job" if self.job is not None else "dataset"

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, exclude_unset=True)

    @property
    def event_id(self) -> str:
        """Content hash: the same event sent twice is stored once."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ColumnEdge:
    source_namespace: str
    source_name: str
    source_field: str
    target_namespace: str
    target_name: str
    target_field: str | None  # None: the input affects the whole output dataset (e.g. a filter)
    transformation_type: str | None
    transformation_subtype: str | None
    description: str | None
    job: str


def job_name(event: LineageEvent) -> str | None:
    """A job as edges name it: "<namespace>/<name>"."""
    return f"{event.job.namespace}/{event.job.name}" if event.job else None


def job_io(event: LineageEvent) -> list[tuple[str, str, str, str]]:
    """(job, "input" or "output", namespace, name) for each dataset a run or job event says its job reads
    or writes: dataset-level lineage, which needs no column lineage (Marquez draws its graph from it)."""
    job = job_name(event)
    if job is None:
        return []
    return [(job, "input", d.namespace, d.name) for d in event.inputs] + \
        [(job, "output", d.namespace, d.name) for d in event.outputs]


@dataclass
class NodeRecord:
    """A dataset or job as its events describe it: when it was first and last named, and the newest
    value of each of its facets (documentation, ownership, schema, dataSource, sql, ...)."""

    kind: str  # "dataset" or "job"
    namespace: str
    name: str
    first_seen: datetime
    last_seen: datetime
    facets: dict[str, Any] = field(default_factory=dict)
    facet_times: dict[str, str] = field(default_factory=dict)  # facet -> ISO time of the event that gave it

    @property
    def key(self) -> tuple[str, str, str]:
        return self.kind, self.namespace, self.name

    def saw(self, when: datetime, facets: dict[str, Any]) -> None:
        self.first_seen, self.last_seen = min(self.first_seen, when), max(self.last_seen, when)
        stamp = when.isoformat()
        for name, value in facets.items():
            # Column lineage is kept as edges; a facet an event sends as null removes nothing (OpenLineage
            # facets are partial updates).
            if name == "columnLineage" or value is None:
                continue
            if name not in self.facet_times or datetime.fromisoformat(self.facet_times[name]) <= when:
                self.facets[name], self.facet_times[name] = value, stamp


def node_records(events: Iterable[LineageEvent], known: dict[tuple[str, str, str], NodeRecord] | None = None,
                 ) -> dict[tuple[str, str, str], NodeRecord]:
    """Every dataset and job the events name, merged into `known` (records already indexed, brought up
    to date in place); returns the records these events touched."""
    known = {} if known is None else known
    touched: dict[tuple[str, str, str], NodeRecord] = {}

    def record(kind: str, namespace: str, name: str, when: datetime, facets: dict[str, Any]) -> None:
        key = (kind, namespace, name)
        node = known.get(key)
        if node is None:
            node = known[key] = NodeRecord(kind, namespace, name, when, when)
        node.saw(when, facets)
        touched[key] = node

    for event in events:
        if event.job is not None:
            record("job", event.job.namespace, event.job.name, event.eventTime, event.job.facets)
        for dataset in event.datasets:
            record("dataset", dataset.namespace, dataset.name, event.eventTime, dataset.facets)
    return touched


def column_edges(event: LineageEvent) -> list[ColumnEdge]:
    job = job_name(event) or ""
    outputs = list(event.outputs) + ([event.dataset] if event.dataset else [])
    edges: list[ColumnEdge] = []
    for output in outputs:
        facet = output.facets.get("columnLineage") or {}
        for target_field, spec in (facet.get("fields") or {}).items():
            for source in spec.get("inputFields") or []:
                edges.extend(_edges_for(source, output, target_field, spec, job))
        for source in facet.get("dataset") or []:
            edges.extend(_edges_for(source, output, None, {}, job))
    return edges


def _edges_for(source: dict, output: LineageDataset, target_field: str | None, spec: dict, job: str) -> list[ColumnEdge]:
    # Since OpenLineage 1.x each input field lists its transformations; older producers put one
    # transformationType/Description on the output field.
    transformations = source.get("transformations") or [
        {"type": spec.get("transformationType"), "description": spec.get("transformationDescription")}
    ]
    return [
        ColumnEdge(
            source_namespace=source["namespace"],
            source_name=source["name"],
            source_field=source["field"],
            target_namespace=output.namespace,
            target_name=output.name,
            target_field=target_field,
            transformation_type=t.get("type"),
            transformation_subtype=t.get("subtype"),
            description=t.get("description"),
            job=job,
        )
        for t in transformations
    ]


def schema_versions(events: Iterable[LineageEvent], last: dict[tuple[str, str], dict[str, str]] | None = None,
                    ) -> list[tuple[str, str, Any, str | None, str, str | None]]:
    """Each dataset's schema each time it changed, from the schema facets of events in time order:
    (namespace, name, event time, job, fields as JSON, what changed since the version before; None for
    the first one seen). `last` holds the newest schema per dataset so far, and is brought up to date
    (events appended later continue from it)."""
    last = {} if last is None else last
    versions = []
    for event in sorted(events, key=lambda e: (e.eventTime, e.event_id)):
        job = job_name(event)
        for dataset in event.datasets:
            fields = output_schema(dataset)
            if not fields:
                continue
            key = (dataset.namespace, dataset.name)
            current = {str(f.get("name")): str(f.get("type", "")) for f in fields if isinstance(f, dict)}
            before = last.get(key)
            if before != current:
                versions.append((*key, event.eventTime, job, json.dumps(current),
                                 None if before is None else _describe_schema_change(before, current)))
                last[key] = current
    return versions


def _describe_schema_change(before: dict[str, str], after: dict[str, str]) -> str:
    parts = [f"removed {n}" for n in before if n not in after] + [f"added {n}" for n in after if n not in before]
    parts += [f"{n}: {before[n]} -> {after[n]}" for n in before if n in after and before[n] != after[n]]
    return ", ".join(parts)


def output_schema(dataset: LineageDataset) -> list[dict[str, Any]]:
    """The fields of a dataset's `schema` facet, if it has one."""
    return list((dataset.facets.get("schema") or {}).get("fields") or [])



@lru_cache(maxsize=1)
def _event_schemas() -> dict[str, dict[str, Any]]:
    """The spec's schema split by event kind, so that errors name the field instead of
    "not valid under any of the given schemas"."""
    schema = json.loads(files("meshpilot.mesh").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))
    return {kind: {"$ref": f"#/$defs/{name}", "$defs": schema["$defs"]}
            for kind, name in (("run", "RunEvent"), ("job", "JobEvent"), ("dataset", "DatasetEvent"))}


@lru_cache(maxsize=1)
def _validators() -> dict[str, Any]:
    import jsonschema

    return {kind: jsonschema.Draft202012Validator(schema) for kind, schema in _event_schemas().items()}


@lru_cache(maxsize=1)
def _compiled() -> dict[str, Any]:
    import fastjsonschema

    return {kind: fastjsonschema.compile(schema) for kind, schema in _event_schemas().items()}


def schema_errors(data: dict[str, Any], kind: str) -> list[tuple[tuple, str]]:
    """(path, message) for each way the event breaks the OpenLineage JSON schema.

    A compiled validator answers the common case (valid) in microseconds; only an invalid event pays
    for jsonschema's detailed, located explanation.
    """
    import fastjsonschema

    try:
        _compiled()[kind](data)
        return []
    except fastjsonschema.JsonSchemaException as exc:
        quick = [((), f"OpenLineage schema: {exc.message}")]
    from meshpilot.mesh.files import json_schema_errors

    detailed = [(path, f"OpenLineage schema: {message if path else 'event: ' + message}")
                for path, message in json_schema_errors(_validators()[kind], data)][:5]
    return detailed or quick  # formats (date-time, uri) are checked by the compiled validator only
