"""Lineage from real producers' events ingested into an empty workspace: Marquez's food_delivery seed
events (tests/fixtures/marquez) and OpenLineage's Spark and Hive column-lineage events. Expected answers
are computed here from the raw events (their inputs, outputs and columnLineage facets), never from the
tool's own output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshpilot.errors import InvalidArgumentError, NotFoundError
from meshpilot.mesh.connectors import openlineage
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools import lineage, lineage_datasets
from tests.conftest import SHARED_DATA, shared
from tests.mesh.connectors.test_openlineage import HIVE, _concrete, _write

FOOD = Path(__file__).resolve().parents[1] / "fixtures" / "marquez" / "food_delivery.jsonl"
SPARK = "openlineage/integration/spark/app/integrations/container"


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _key(dataset: dict) -> str:
    return f"{dataset['namespace']}/{dataset['name']}"


def _job_graph(events: list[dict]) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, set[str]]]:
    """From the raw events: dataset -> jobs reading it, job -> datasets it writes, dataset -> jobs writing it."""
    readers: dict[str, set[str]] = {}
    writes: dict[str, set[str]] = {}
    writers: dict[str, set[str]] = {}
    for event in events:
        job = f"{event['job']['namespace']}/{event['job']['name']}"
        for d in event.get("inputs", []):
            readers.setdefault(_key(d), set()).add(job)
        for d in event.get("outputs", []):
            writes.setdefault(job, set()).add(_key(d))
            writers.setdefault(_key(d), set()).add(job)
    return readers, writes, writers


def _downstream(events: list[dict], start: str) -> tuple[set[str], set[str]]:
    """Every dataset and job reachable from `start` through jobs' inputs and outputs."""
    readers, writes, _ = _job_graph(events)
    datasets, jobs, frontier = set(), set(), [start]
    while frontier:
        node = frontier.pop()
        for job in readers.get(node, ()):
            jobs.add(job)
            for out in writes.get(job, ()):
                if out not in datasets and out != start:
                    datasets.add(out)
                    frontier.append(out)
    return datasets, jobs


def _upstream(events: list[dict], start: str) -> set[str]:
    readers, _, writers = _job_graph(events)
    inputs: dict[str, set[str]] = {}
    for dataset, jobs in readers.items():
        for job in jobs:
            inputs.setdefault(job, set()).add(dataset)
    datasets, frontier = set(), [start]
    while frontier:
        node = frontier.pop()
        for job in writers.get(node, ()):
            for source in inputs.get(job, ()):
                if source not in datasets and source != start:
                    datasets.add(source)
                    frontier.append(source)
    return datasets


@pytest.fixture
def food(empty_workspace: Workspace) -> Workspace:
    openlineage.import_events(empty_workspace, FOOD)
    return empty_workspace


def _of(result, kind: str) -> set[str]:
    return {i.ref for i in result.items if i.kind == kind and i.status != "unaffected"}


def test_every_dataset_the_events_name_exists_with_its_facets(food: Workspace) -> None:
    events = _events(FOOD)
    named = {_key(d) for e in events for d in e.get("inputs", []) + e.get("outputs", [])}
    listed = lineage_datasets.list_event_datasets(food)
    assert {f"{d['namespace']}/{d['name']}" for d in listed} == named and len(named) == 13
    assert all(d["assigned_to"] is None for d in listed)
    by_name = {d["name"]: d for d in listed}
    declared = next(o for e in events for o in e.get("outputs", []) if o["name"] == "public.customers")
    customers = by_name["public.customers"]
    assert [f["name"] for f in customers["fields"]] == [f["name"] for f in declared["facets"]["schema"]["fields"]]
    assert customers["description"] == declared["facets"]["documentation"]["description"]
    assert customers["source"] == declared["facets"]["dataSource"]["name"]


def test_every_dataset_can_be_asked_about_at_once(food: Workspace) -> None:
    events = _events(FOOD)
    for dataset in lineage_datasets.list_event_datasets(food):
        name = f"{dataset['namespace']}/{dataset['name']}"
        expected, jobs = _downstream(events, name)
        result = lineage.impact(name, workspace=food)
        assert _of(result, "dataset") == expected, name
        assert _of(result, "job") == jobs, name
        assert _of(lineage.upstream(name, workspace=food), "dataset") >= _upstream(events, name), name


def test_the_cases_the_issue_names(food: Workspace) -> None:
    customers = lineage.impact("food_delivery/public.customers", workspace=food)
    assert "food_delivery/public.popular_orders_day_of_week" in _of(customers, "dataset")
    assert "food_delivery/email_discounts" in _of(customers, "job")  # reads customers, writes nothing
    email = next(i for i in customers.items if i.ref == "food_delivery/email_discounts")
    assert "writes no dataset" in email.reason
    assert "food_delivery/public.menu_items" in _of(lineage.upstream("dataset:food_delivery:public.delivery_7_days",
                                                                     workspace=food), "dataset")


def test_column_impact_follows_column_lineage_exactly(food: Workspace) -> None:
    events = _events(FOOD)
    declared = {}
    for event in events:
        for out in event.get("outputs", []):
            for field, spec in ((out.get("facets", {}).get("columnLineage") or {}).get("fields") or {}).items():
                for source in spec["inputFields"]:
                    declared.setdefault(f"{_key(source)}#{source['field']}", set()).add(f"{_key(out)}#{field}")
    assert len(declared) >= 10
    for source, targets in declared.items():
        if not source.startswith("food_delivery/public.") or source.split("#")[0].endswith("menu_item_id"):
            continue  # the seed names one column source as a dataset of its own
        result = lineage.impact(source, change="drop", depth=1, workspace=food)
        assert {i.ref for i in result.items if i.kind == "column" and i.status == "broken"} == targets, source


def test_a_dropped_join_key_puts_the_job_outputs_and_everything_after_at_risk(empty_workspace: Workspace,
                                                                               tmp_path: Path) -> None:
    producer = "https://example.com/producer"
    facet = {"_producer": producer, "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json"}

    def run(job: str, inputs: list[str], output: str, fields: dict, dataset: list | None = None) -> dict:
        lineage_facet = {**facet, "fields": fields, **({"dataset": dataset} if dataset else {})}
        return {"eventType": "COMPLETE", "eventTime": "2026-11-02T06:00:00Z", "producer": producer,
                "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                "run": {"runId": "3f5e83fa-3480-44ff-99c5-ff943904e5e8"}, "job": {"namespace": "etl", "name": job},
                "inputs": [{"namespace": "db", "name": n} for n in inputs],
                "outputs": [{"namespace": "db", "name": output, "facets": {"columnLineage": lineage_facet}}]}

    def field(name: str, column: str, kind: str = "DIRECT", subtype: str = "IDENTITY") -> dict:
        return {"namespace": "db", "name": name, "field": column, "transformations": [{"type": kind, "subtype": subtype}]}

    events = [
        run("join", ["orders", "customers"], "enriched", {"amount": {"inputFields": [field("orders", "amount")]}},
            dataset=[field("orders", "customer_id", "INDIRECT", "JOIN"), field("customers", "id", "INDIRECT", "JOIN")]),
        run("report", ["enriched"], "report", {"total": {"inputFields": [field("enriched", "amount", subtype="AGGREGATION")]}}),
        {**run("export", ["report"], "unused", {}), "outputs": []},
    ]
    openlineage.import_events(empty_workspace, _write(tmp_path, "join.jsonl", events))
    result = lineage.impact("db/customers#id", change="drop", workspace=empty_workspace)
    datasets = {i.ref: i for i in result.items if i.kind == "dataset"}
    assert {r: i.status for r, i in datasets.items()} == {"db/enriched": "at_risk", "db/report": "at_risk"}
    assert "joins on db/customers#id: all its rows may change" in datasets["db/enriched"].reason
    assert len(datasets["db/report"].path) == 2 and "INDIRECT JOIN by etl/join (all its rows)" in datasets["db/report"].path[0]
    assert {i.ref for i in result.items if i.kind == "job"} == {"etl/join", "etl/report", "etl/export"}
    # An amount that is copied, not joined on, is precise: only what is derived from it.
    amount = lineage.impact("db/orders#amount", change="drop", workspace=empty_workspace)
    assert {i.ref for i in amount.items if i.kind == "column" and i.status == "broken"} == {"db/enriched#amount", "db/report#total"}


def _fill_namespaces(value):
    """Spark's fixtures match temporary paths' namespaces with placeholders: one stand-in namespace."""
    if isinstance(value, dict):
        if "name" in value and "field" in value:
            value.setdefault("namespace", "default")
        for item in value.values():
            _fill_namespaces(item)
    elif isinstance(value, list):
        for item in value:
            _fill_namespaces(item)
    return value


@pytest.mark.parametrize("folder,pattern", [(SPARK, "*.json"), (HIVE, "cll*Complete.json")])
def test_spark_and_hive_events_give_dataset_lineage_for_every_dataset(empty_workspace: Workspace, tmp_path: Path,
                                                                      folder: str, pattern: str) -> None:
    paths = sorted((SHARED_DATA / folder).glob(pattern)) if (SHARED_DATA / folder).exists() else [shared(folder)]
    events = []
    for path in paths:
        event = _fill_namespaces(_concrete(json.loads(path.read_text())))
        # The fixtures reuse job names (or leave them to a matcher): one job per file.
        event["job"] = {"namespace": "default", **event["job"], "name": f"{event['job'].get('name', 'job')}.{path.stem}"}
        events.append(event)
    openlineage.import_events(empty_workspace, _write(tmp_path, "events.jsonl", events))
    named = {_key(d) for e in events for d in e.get("inputs", []) + e.get("outputs", [])}
    listed = {f"{d['namespace']}/{d['name']}" for d in lineage_datasets.list_event_datasets(empty_workspace)}
    assert named and listed == named
    for name in named:
        expected, _ = _downstream(events, name)
        assert _of(lineage.impact(name, workspace=empty_workspace), "dataset") >= expected, name


def test_assigning_a_dataset_makes_it_a_product_dataset_with_its_lineage(food: Workspace) -> None:
    result = lineage_datasets.assign("food_delivery/public.customers", "mesh://delivery/customers",
                                     owner=None, workspace=food)
    assert result["ref"] == "mesh://delivery/customers/customers" and result["created_product"]
    listed = {d["name"]: d["assigned_to"] for d in lineage_datasets.list_event_datasets(food)}
    assert listed["public.customers"] == "mesh://delivery/customers/customers"
    assert len(lineage_datasets.list_event_datasets(food, unassigned=True)) == 12
    impact = lineage.impact("mesh://delivery/customers/customers#email", change="drop", workspace=food)
    assert "food_delivery/public.delivery_7_days#customer_email" in {i.ref for i in impact.items if i.status == "broken"}
    with pytest.raises(InvalidArgumentError, match="already mesh://delivery/customers/customers"):
        lineage_datasets.assign("public.customers", "mesh://delivery/other", workspace=food)
    with pytest.raises(NotFoundError, match="No dataset 'public.nothing'"):
        lineage_datasets.assign("public.nothing", "mesh://delivery/other", workspace=food)


def test_history_and_diff_between_two_times(empty_workspace: Workspace, tmp_path: Path) -> None:
    events = _events(FOOD)
    later = json.loads(json.dumps([e for e in events if e["job"]["name"] == "etl_customers"]))
    for event in later:
        event["eventTime"] = "2026-11-20T06:00:00Z"
        event["run"]["runId"] = "0b7c2b6e-2f0d-4a55-9a8e-6d1f0b0c9a11"
        for out in event.get("outputs", []):
            fields = out["facets"]["schema"]["fields"]
            out["facets"]["schema"]["fields"] = [f for f in fields if f["name"] != "phone"] + [{"name": "loyalty_tier", "type": "VARCHAR"}]
        if "sql" in event["job"].get("facets", {}):
            event["job"]["facets"]["sql"]["query"] += " -- v2"
    openlineage.import_events(empty_workspace, _write(tmp_path, "all.jsonl", events + later))
    history = lineage_datasets.event_dataset("public.customers", empty_workspace)["versions"]
    assert [v["change"] for v in history] == ["first seen", "removed phone, added loyalty_tier"]
    since = lineage_datasets.parse_time("2026-11-10", "--since")
    changes = lineage_datasets.diff(since, lineage_datasets.parse_time("now", "--until"), empty_workspace)
    assert changes["datasets_changed"] == [{"dataset": "food_delivery/public.customers",
                                            "changed_by": "food_delivery/etl_customers",
                                            "columns_added": ["loyalty_tier"], "columns_removed": ["phone"],
                                            "types_changed": {}}]
    assert [j["job"] for j in changes["jobs_changed"]] == ["food_delivery/etl_customers"]
    assert changes["jobs_changed"][0]["sql"]["after"].endswith("-- v2") and changes["datasets_appeared"] == []
    before = lineage_datasets.diff(lineage_datasets.parse_time("2026-11-01", "--since"), since, empty_workspace)
    assert len(before["datasets_appeared"]) == 13 and before["datasets_changed"] == []
    with pytest.raises(InvalidArgumentError, match="is not a date or time"):
        lineage_datasets.parse_time("last tuesday", "--since")
