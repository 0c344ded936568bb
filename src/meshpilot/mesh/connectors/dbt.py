"""Import a dbt project from its artifacts: manifest.json, and catalog.json and run_results.json if present.

Models, seeds and snapshots become the datasets of one data product per dbt project; generic tests
become quality checks (their latest results from run_results.json); `depends_on` becomes lineage, as
OpenLineage JobEvents named like the official dbt integration names its datasets
(`<database>.<schema>.<alias>`), so events from both meet on the same datasets.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from meshpilot.errors import ImportRejectedError, Problem
from meshpilot.mesh import files
from meshpilot.mesh.connectors.base import ImportBatch, apply_batch, read_json
from meshpilot.mesh.model import (
    CheckResult,
    Column,
    DataProduct,
    Dataset,
    OutputPort,
    QualityCheck,
    slugify,
)
from meshpilot.mesh.workspace import Workspace

PRODUCER = "https://github.com/meshpilot/meshpilot/connectors/dbt"
JOB_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent"
DATASET_TYPES = ("model", "seed", "snapshot")
_TEST_KINDS = {"not_null": "not_null", "unique": "unique", "accepted_values": "accepted_values"}
_RESULT_STATUS = {"pass": "pass", "success": "pass", "fail": "fail", "warn": "warn", "error": "error",
                  "runtime error": "error"}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _DependsOn(_Open):
    nodes: list[str] = []


class _Node(_Open):
    unique_id: str
    resource_type: str
    name: str
    database: str | None = None
    schema_: str | None = None
    alias: str | None = None
    description: str = ""
    columns: dict[str, dict[str, Any]] = {}
    depends_on: _DependsOn = _DependsOn()
    config: dict[str, Any] = {}
    tags: list[str] = []
    test_metadata: dict[str, Any] | None = None
    column_name: str | None = None
    attached_node: str | None = None
    relation_name: str | None = None

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def __init__(self, **data: Any):
        if "schema" in data:
            data["schema_"] = data.pop("schema")
        super().__init__(**data)

    @property
    def qualified_name(self) -> str:
        return ".".join(p for p in (self.database, self.schema_, self.alias or self.name) if p)


class _Manifest(_Open):
    metadata: dict[str, Any]
    nodes: dict[str, _Node]
    sources: dict[str, _Node] = {}


def _locate(path: Path) -> tuple[Path, Path]:
    """The manifest and the folder holding the other artifacts, from a target folder or the manifest."""
    path = Path(path)
    if path.is_dir():
        if (path / "manifest.json").exists():
            return path / "manifest.json", path
        if (path / "target" / "manifest.json").exists():
            return path / "target" / "manifest.json", path / "target"
        raise ImportRejectedError(f"No manifest.json in {path} or {path / 'target'}.",
                                  hint="Run `dbt compile` or `dbt docs generate` first, or give the manifest's path.")
    return path, path.parent


def read_batch(path: Path, domain: str | None = None) -> ImportBatch:
    manifest_path, folder = _locate(path)
    raw = read_json(manifest_path, "dbt manifest.json")
    try:
        manifest = _Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ImportRejectedError(
            f"{manifest_path} is not a dbt manifest, so nothing was imported:",
            problems=[Problem(str(manifest_path), f"{'.'.join(map(str, e['loc']))}: {e['msg']}") for e in exc.errors()[:10]],
            hint="Give the manifest.json from a dbt project's target folder.",
        ) from None
    if "dbt_schema_version" not in manifest.metadata or "/manifest/" not in str(manifest.metadata["dbt_schema_version"]):
        raise ImportRejectedError(f"{manifest_path} is JSON but not a dbt manifest (no metadata.dbt_schema_version).")
    catalog = read_json(folder / "catalog.json", "dbt catalog.json") if (folder / "catalog.json").exists() else {}
    run_results = (read_json(folder / "run_results.json", "dbt run_results.json")
                   if (folder / "run_results.json").exists() else {})

    project = manifest.metadata.get("project_name") or _project_from_ids(manifest.nodes) or "dbt"
    generated_at = manifest.metadata.get("generated_at") or "1970-01-01T00:00:00Z"
    batch = ImportBatch(source=str(manifest_path), name=f"dbt-{slugify(project)}")
    nodes = {uid: n for uid, n in manifest.nodes.items() if n.resource_type in DATASET_TYPES}
    tests = [n for n in manifest.nodes.values() if n.resource_type == "test"]

    product = DataProduct(
        id=slugify(project), name=project, domain=slugify(domain or project), source="dbt",
        description=f"The dbt project {project}: its models, seeds and snapshots.",
        tags=["dbt"],
    )
    datasets: dict[str, Dataset] = {}
    for uid, node in sorted(nodes.items()):
        catalog_node = (catalog.get("nodes") or {}).get(uid) or {}
        dataset = _dataset(node, catalog_node)
        if catalog_node:
            in_warehouse = {name.lower() for name in catalog_node.get("columns") or {}}
            batch.warnings += [f"{uid}: column {c} is documented but not in the warehouse (catalog.json)"
                               for c in node.columns if c.lower() not in in_warehouse]
        datasets[uid] = dataset
        kind = "view" if node.config.get("materialized") in ("view", "ephemeral") else "table"
        product.output_ports.append(OutputPort(name=slugify(node.alias or node.name), kind=kind,
                                               location=node.relation_name or node.qualified_name, dataset=dataset))
    _attach_tests(tests, nodes, datasets, batch)
    batch.products.append(product)
    batch.results = _results(run_results, tests, datasets, product, generated_at)
    batch.events = [_job_event(node, manifest, generated_at, project) for node in nodes.values()
                    if node.depends_on.nodes]
    return batch


def _project_from_ids(nodes: dict[str, _Node]) -> str | None:
    return next((uid.split(".")[1] for uid in nodes if uid.count(".") >= 2), None)


def _dataset(node: _Node, catalog_node: dict[str, Any]) -> Dataset:
    catalog_columns = {name.lower(): c for name, c in (catalog_node.get("columns") or {}).items()}
    names = list(node.columns) + [c["name"] for c in catalog_columns.values()
                                  if c["name"] not in node.columns and c["name"].lower() not in
                                  {n.lower() for n in node.columns}]
    columns = []
    for name in names:
        declared = node.columns.get(name) or {}
        cataloged = catalog_columns.get(name.lower()) or {}
        description = declared.get("description") or cataloged.get("comment") or None
        columns.append(Column(
            name=name, type=cataloged.get("type") or declared.get("data_type") or "UNKNOWN",
            description=description, tags=list(declared.get("tags") or []),
            # dbt docs commonly flag personal data in prose ("Customer's first name. PII.").
            classification="PII" if description and re.search(r"\bPII\b", description) else None,
        ))
    stats = (catalog_node.get("stats") or {}).get("row_count") or {}
    return Dataset(name=node.alias or node.name, qualified_name=node.qualified_name,
                   description=node.description or None, columns=columns, tags=list(node.tags),
                   row_count=int(stats["value"]) if stats.get("value") is not None else None)


def _attach_tests(tests: list[_Node], nodes: dict[str, _Node], datasets: dict[str, Dataset], batch: ImportBatch) -> None:
    for test in tests:
        target = test.attached_node or next((n for n in test.depends_on.nodes if n in nodes), None)
        dataset = datasets.get(target or "")
        if dataset is None:
            batch.warnings.append(f"test {test.unique_id} is not attached to an imported model; skipped")
            continue
        meta = test.test_metadata or {}
        kwargs = meta.get("kwargs") or {}
        column = test.column_name or kwargs.get("column_name")
        if column and dataset.column(column) is None:
            dataset.columns.append(Column(name=column))
        if column and meta.get("name") == "not_null":
            dataset.column(column).nullable = False
        kind = _TEST_KINDS.get(meta.get("name", ""), "custom")
        params: dict[str, Any] = {"dbt_test": meta.get("name") or "singular", "unique_id": test.unique_id}
        if kind == "accepted_values":
            params["values"] = kwargs.get("values") or []
        if meta.get("name") == "relationships":
            params.update(to=kwargs.get("to"), field=kwargs.get("field"))
        dataset.checks.append(QualityCheck(id=slugify(test.name), kind=kind, column=column,
                                           description=test.description or None, params=params,
                                           severity="warning" if str(test.config.get("severity", "")).lower() == "warn" else "error"))


def _results(run_results: dict[str, Any], tests: list[_Node], datasets: dict[str, Dataset], product: DataProduct,
             generated_at: str) -> list[CheckResult]:
    by_test = {t.unique_id: t for t in tests}
    results = []
    for entry in run_results.get("results") or []:
        test = by_test.get(entry.get("unique_id", ""))
        if test is None:
            continue
        target = test.attached_node or next(iter(test.depends_on.nodes), "")
        dataset = datasets.get(target)
        status = _RESULT_STATUS.get(str(entry.get("status", "")).lower())
        if dataset is None or status is None:
            continue
        finished = [t.get("completed_at") for t in entry.get("timing") or [] if t.get("completed_at")]
        results.append(CheckResult(
            check_id=slugify(test.name), dataset=str(product.dataset_ref(dataset.name)), status=status,
            run_at=finished[-1] if finished else (run_results.get("metadata") or {}).get("generated_at", generated_at),
            observed=entry.get("failures"), message=entry.get("message"),
        ))
    return results


def _job_event(node: _Node, manifest: _Manifest, generated_at: str, project: str) -> dict[str, Any]:
    def dataset_of(uid: str) -> dict[str, Any]:
        upstream = manifest.nodes.get(uid) or manifest.sources.get(uid)
        if upstream is not None:
            name = upstream.qualified_name
        else:
            # A trimmed manifest may omit upstream nodes; they live beside the model in dbt's default layout.
            name = ".".join(p for p in (node.database, node.schema_, uid.rsplit(".", 1)[-1]) if p)
        return {"namespace": f"dbt://{project}", "name": name}

    return {
        "eventTime": generated_at, "producer": PRODUCER, "schemaURL": JOB_EVENT_SCHEMA,
        "job": {"namespace": f"dbt://{project}", "name": node.unique_id},
        "inputs": [dataset_of(uid) for uid in node.depends_on.nodes if not uid.startswith("macro.")],
        "outputs": [{"namespace": f"dbt://{project}", "name": node.qualified_name}],
    }


def import_artifacts(workspace: Workspace, path: Path, domain: str | None = None) -> dict[str, Any]:
    with files.collection_paused():
        return apply_batch(workspace, read_batch(path, domain))
