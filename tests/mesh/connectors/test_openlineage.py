import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from meshpilot.errors import ImportRejectedError
from meshpilot.mesh.connectors import openlineage
from meshpilot.mesh.store import MeshStore
from meshpilot.mesh.workspace import Workspace
from tests.conftest import SHARED_DATA, shared

HIVE = "openlineage/integration/hive/hive-openlineage-hook/integrations/container"


def _concrete(event: dict[str, Any]) -> dict[str, Any]:
    """Hive's expected-event fixtures hold `${json-unit.*}` matchers and leave out what every event has;
    strip the matchers and fill in what a producer sends."""
    event = _strip_placeholders(event)
    event.setdefault("eventTime", "2024-01-01T00:00:00Z")
    event.setdefault("producer", "https://github.com/OpenLineage/OpenLineage/tree/main/integration/hive")
    event.setdefault("schemaURL", "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent")
    event.setdefault("run", {})
    event["run"].setdefault("runId", str(uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(event["job"], sort_keys=True)
                                                     + event["eventType"])))
    facet_groups = [event["run"].get("facets", {}), event["job"].get("facets", {})]
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        dataset.setdefault("namespace", "default")
    facet_groups += [d.get(key, {}) for d in event.get("inputs", []) + event.get("outputs", [])
                     for key in ("facets", "inputFacets", "outputFacets")]
    for group in facet_groups:
        for name, facet in group.items():
            facet.setdefault("_producer", event["producer"])
            facet.setdefault("_schemaURL", f"https://openlineage.io/spec/facets/1-0-0/{name}.json")
    return event


def _strip_placeholders(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _strip_placeholders(v, k) for k, v in value.items()
                if not (isinstance(v, str) and v.startswith("${json-unit") and k not in ("runId", "eventTime"))}
    if isinstance(value, list):
        return [_strip_placeholders(v) for v in value]
    if isinstance(value, str) and value.startswith("${json-unit"):
        return str(uuid.uuid5(uuid.NAMESPACE_URL, key)) if key == "runId" else "2024-01-01T00:00:00Z"
    return value


def _write(tmp_path: Path, name: str, events: list[dict[str, Any]]) -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_a_full_example_event_imports_and_reimports_idempotently(empty_workspace: Workspace) -> None:
    path = shared("openlineage/spec/tests/example_full_event.json")
    assert openlineage.import_events(empty_workspace, path)["files_changed"] == ["lineage/openlineage-example_full_event.jsonl"]
    assert openlineage.import_events(empty_workspace, path)["files_changed"] == []
    with MeshStore.open(empty_workspace) as store:
        assert store.counts()["lineage_events"] == 1


def _declared_edges(events: list[dict]) -> set[tuple]:
    return {(f["name"], f["field"], out["name"], target)
            for event in events for out in event.get("outputs", [])
            for target, spec in (out.get("facets", {}).get("columnLineage", {}).get("fields") or {}).items()
            for f in spec["inputFields"]}


@pytest.mark.parametrize("name", sorted(p.name for p in (SHARED_DATA / HIVE).glob("cll*.json"))
                         if (SHARED_DATA / HIVE).exists() else ["cllCtasWithJoinsComplete.json"])
def test_every_hive_event_gives_exactly_its_declared_column_edges(empty_workspace: Workspace, tmp_path: Path,
                                                                   name: str) -> None:
    event = _concrete(json.loads(shared(f"{HIVE}/{name}").read_text()))
    openlineage.import_events(empty_workspace, _write(tmp_path, "hive.jsonl", [event]))
    with MeshStore.open(empty_workspace) as store:
        stored = set(store.con.execute("""SELECT source_name, source_field, target_name, target_field
                                          FROM column_edges WHERE target_field IS NOT NULL""").fetchall())
    assert stored == _declared_edges([event])


def test_the_jaffle_shop_events_give_exactly_their_edges(empty_workspace: Workspace, tmp_path: Path) -> None:
    raw = json.loads(shared("jaffle_shop_dbt_manifest_openlineage/integration/common/tests/dbt/duckdb/result.json")
                     .read_text())
    events = [_concrete(e) for e in raw]
    openlineage.import_events(empty_workspace, _write(tmp_path, "jaffle.jsonl", events))
    with MeshStore.open(empty_workspace) as store:
        counts = store.counts()
    # The dbt integration's events for these models carry schemas but no column lineage and no inputs.
    assert counts["lineage_events"] == 2
    assert counts["column_edges"] == len(_declared_edges(events)) == 0 and counts["dataset_edges"] == 0


def test_hive_column_lineage_gives_the_declared_column_edges(empty_workspace: Workspace, tmp_path: Path) -> None:
    source = json.loads(shared(f"{HIVE}/cllCtasWithJoinsComplete.json").read_text())
    event = _concrete(source)
    declared = {(f["name"], f["field"], out["name"], target)
                for out in event["outputs"]
                for target, spec in out["facets"]["columnLineage"]["fields"].items()
                for f in spec["inputFields"]}
    openlineage.import_events(empty_workspace, _write(tmp_path, "hive.jsonl", [event]))
    with MeshStore.open(empty_workspace) as store:
        stored = set(store.con.execute("""SELECT source_name, source_field, target_name, target_field
                                          FROM column_edges WHERE target_field IS NOT NULL""").fetchall())
    assert declared and stored == declared


def test_events_from_the_official_client_import(empty_workspace: Workspace, tmp_path: Path) -> None:
    client = pytest.importorskip("openlineage.client")
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.serde import Serde

    event = RunEvent(eventType=RunState.COMPLETE, eventTime=datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
                     run=Run(runId=str(uuid.uuid4())), job=Job(namespace="etl", name="load_orders"),
                     producer="https://example.com/etl", inputs=[InputDataset("pg", "shop.orders")],
                     outputs=[OutputDataset("duckdb", "commerce.orders")])
    path = tmp_path / "client.json"
    path.write_text(Serde.to_json(event))
    assert client is not None
    openlineage.import_events(empty_workspace, path)
    with MeshStore.open(empty_workspace) as store:
        assert store.con.execute("SELECT source_name, target_name, job FROM dataset_edges").fetchall() == [
            ("shop.orders", "commerce.orders", "etl/load_orders")]


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda e: e.pop("eventTime"), "missing required field 'eventTime'"),
    (lambda e: e["run"].update(runId="not-a-uuid"), "run.runId"),
    (lambda e: e.update(eventTime="2024-01-01T00:00:00"), "timezone"),
    (lambda e: e.update(eventType="EXPLODE"), "eventType"),
    (lambda e: e["job"].update(facets={"sql": {"query": "select 1"}}), "_producer"),
    (lambda e: e["outputs"][0]["facets"]["columnLineage"]["fields"]["a"]["inputFields"][0].pop("namespace"),
     "malformed columnLineage facet"),
])
def test_a_malformed_event_rejects_the_file_and_writes_nothing(demo_workspace: Workspace, tmp_path: Path,
                                                                 mutate, expected: str) -> None:
    good = {"eventType": "COMPLETE", "eventTime": "2024-01-01T00:00:00Z", "producer": "https://example.com/p",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": str(uuid.uuid4())}, "job": {"namespace": "n", "name": "j"}, "inputs": [],
            "outputs": [{"namespace": "n", "name": "t", "facets": {"columnLineage": {
                "_producer": "https://example.com/p", "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
                "fields": {"a": {
                "inputFields": [{"namespace": "n", "name": "s", "field": "a"}]}}}}}]}
    bad = json.loads(json.dumps(good))
    mutate(bad)
    path = _write(tmp_path, "events.jsonl", [good, bad])
    before = sorted(p.name for p in (demo_workspace.root / "lineage").iterdir())
    with pytest.raises(ImportRejectedError) as info:
        openlineage.import_events(demo_workspace, path)
    problems = [str(p) for p in info.value.problems]
    assert len(problems) >= 1 and all(":2:" in p for p in problems), problems
    assert any(re.search(expected, p) for p in problems), problems
    assert sorted(p.name for p in (demo_workspace.root / "lineage").iterdir()) == before


def test_a_line_that_is_not_json_is_named(empty_workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"eventTime": \n')
    with pytest.raises(ImportRejectedError) as info:
        openlineage.import_events(empty_workspace, path)
    assert str(info.value.problems[0]).startswith(f"{path}:1: invalid JSON")
