"""The Marquez-compatible read API, checked against the payload shapes of Marquez's own spec/openapi.yml
(tests/fixtures/marquez) over Marquez's food_delivery seed events, served over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from meshpilot.mesh.connectors import openlineage
from meshpilot.mesh.workspace import Workspace
from tests.server.test_lineage_http import _client, _event, endpoint  # noqa: F401  (uvicorn on loopback)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "marquez"
SPEC = yaml.safe_load((FIXTURES / "openapi.yml").read_text())
SCHEMAS = SPEC["components"]["schemas"]


def _nullable(schema: Any) -> Any:
    """Marquez sends null for properties it has no value for (its own examples do: lastModifiedAt: null),
    which OpenAPI 3.0 leaves implicit: accept null wherever a type is given, and check nothing else looser."""
    if isinstance(schema, dict):
        schema = {k: _nullable(v) for k, v in schema.items() if k not in ("discriminator", "example")}
        if isinstance(schema.get("type"), str):
            schema["type"] = [schema["type"], "null"]
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]
        return schema
    if isinstance(schema, list):
        return [_nullable(v) for v in schema]
    return schema


def _validate(payload: Any, name: str) -> None:
    components = _nullable(SCHEMAS)
    # GraphNode.data is a Dataset or a Job by the node's type: Marquez's oneOf matches both, since neither
    # closes its properties, so the node type picks the schema.
    components["GraphNode"]["properties"]["data"] = {}
    # The spec types DatasetVersion.tags as a string; Marquez sends a list, as for every other tags.
    components["DatasetVersion"]["properties"]["tags"] = components["Dataset"]["properties"]["tags"]
    jsonschema.validate(payload, {"$ref": f"#/components/schemas/{name}", "components": {"schemas": components}})


def _declared(name: str) -> set[str]:
    """Every property a schema declares, through allOf/anyOf and $refs."""
    schema = SCHEMAS[name]
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", []) + schema.get("anyOf", []):
        if "$ref" in part:
            names |= _declared(part["$ref"].rsplit("/", 1)[-1])
        names |= set(part.get("properties", {}))
    return names


def _only_declared(payload: dict[str, Any], name: str) -> None:
    extra = set(payload) - _declared(name)
    assert not extra, f"{name} payload has keys Marquez does not define: {sorted(extra)}"


@pytest.fixture
def api(empty_workspace: Workspace):
    openlineage.import_events(empty_workspace, FIXTURES / "food_delivery.jsonl")
    from starlette.testclient import TestClient

    from meshpilot.server.lineage_http import create_app

    with TestClient(create_app(empty_workspace)) as client:
        yield client


def test_the_lineage_graph_has_marquez_shapes_and_the_events_edges(api) -> None:
    response = api.get("/api/v1/lineage", params={"nodeId": "dataset:food_delivery:public.delivery_7_days", "depth": 20})
    assert response.status_code == 200
    graph = response.json()
    _validate(graph, "LineageGraph")
    expected_node = json.loads((FIXTURES / "lineage_node.json").read_text())
    nodes = {n["id"]: n for n in graph["graph"]}
    for node in nodes.values():
        _only_declared(node, "GraphNode")
        assert set(node) == set(expected_node)
        if node["type"] == "DATASET":
            assert set(expected_node["data"]) <= set(node["data"])
        schema = "Dataset" if node["type"] == "DATASET" else "Job"
        _validate(node["data"], schema)
        _only_declared(node["data"], schema)
        if node["type"] == "JOB" and node["data"]["latestRun"]:
            _validate(node["data"]["latestRun"], "Run")
            _only_declared(node["data"]["latestRun"], "Run")
    # Every edge is a job's input or output in the events, both ends list it, and nothing is left out.
    events = [json.loads(line) for line in (FIXTURES / "food_delivery.jsonl").read_text().splitlines()]
    expected = set()
    for event in events:
        job = f"job:food_delivery:{event['job']['name']}"
        expected |= {(f"dataset:{d['namespace']}:{d['name']}", job) for d in event.get("inputs", [])}
        expected |= {(job, f"dataset:{d['namespace']}:{d['name']}") for d in event.get("outputs", [])}
    edges = {(e["origin"], e["destination"]) for n in nodes.values() for e in n["outEdges"]}
    assert edges == {(e["origin"], e["destination"]) for n in nodes.values() for e in n["inEdges"]} == expected
    assert len([n for n in nodes if n.startswith("job:")]) == 13 and len(nodes) == 26
    email = nodes["job:food_delivery:email_discounts"]
    assert email["outEdges"] == [] and {e["origin"] for e in email["inEdges"]} == {
        "dataset:food_delivery:public.discounts", "dataset:food_delivery:public.customers"}


def test_depth_limits_the_graph_by_jobs(api) -> None:
    one = api.get("/api/v1/lineage", params={"nodeId": "dataset:food_delivery:public.customers", "depth": 1}).json()
    ids = {n["id"] for n in one["graph"]}
    assert "job:food_delivery:etl_customers" in ids and "job:food_delivery:email_discounts" in ids
    assert "job:food_delivery:etl_menus" not in ids  # two jobs away
    job = api.get("/api/v1/lineage", params={"nodeId": "job:food_delivery:email_discounts", "depth": 1}).json()
    assert {n["id"] for n in job["graph"]} == {"job:food_delivery:email_discounts", "dataset:food_delivery:public.discounts",
                                                "dataset:food_delivery:public.customers"}


def test_column_lineage_has_marquez_field_nodes(api) -> None:
    graph = api.get("/api/v1/column-lineage", params={
        "nodeId": "datasetField:food_delivery:public.delivery_7_days:customer_email", "withDownstream": "true"}).json()
    # The spec's NodeType has no DATASET_FIELD: the shape is the one Marquez's own tests expect.
    expected = json.loads((FIXTURES / "column_lineage_node.json").read_text())
    nodes = {n["id"]: n for n in graph["graph"]}
    for field_node in nodes.values():
        assert set(field_node) == set(expected) and set(field_node["data"]) == set(expected["data"]) | {"datasetVersion"}
        assert all(set(f) == set(expected["data"]["inputFields"][0]) | {"transformationDescription", "transformationType"}
                   for f in field_node["data"]["inputFields"])
    node = nodes["datasetField:food_delivery:public.delivery_7_days:customer_email"]
    assert node["type"] == "DATASET_FIELD" and node["data"]["fieldType"] == "VARCHAR"
    assert [f["dataset"] + "." + f["field"] for f in node["data"]["inputFields"]] == ["public.customers.email"]
    assert {e["destination"] for e in node["outEdges"]} == {
        "datasetField:food_delivery:public.discounts:customer_email",
        "datasetField:food_delivery:public.top_delivery_times:customer_email"}
    upstream_only = api.get("/api/v1/column-lineage", params={
        "nodeId": "datasetField:food_delivery:public.delivery_7_days:customer_email"}).json()
    assert not any("discounts" in n["id"] for n in upstream_only["graph"])


def test_listings_and_entities(api) -> None:
    namespaces = api.get("/api/v1/namespaces").json()
    _validate(namespaces, "NamespaceList")
    assert [n["name"] for n in namespaces["namespaces"]] == ["food_delivery"]
    datasets = api.get("/api/v1/namespaces/food_delivery/datasets", params={"limit": 5}).json()
    _validate(datasets, "DatasetList")
    assert datasets["totalCount"] == 13 and len(datasets["datasets"]) == 5
    dataset = api.get("/api/v1/namespaces/food_delivery/datasets/public.customers").json()
    _validate(dataset, "Dataset")
    assert dataset["description"] == "A table for customers." and len(dataset["fields"]) == 8
    versions = api.get("/api/v1/namespaces/food_delivery/datasets/public.customers/versions").json()
    _validate(versions, "DatasetVersionList")
    for version in versions["versions"]:
        _only_declared(version, "DatasetVersion")
    jobs = api.get("/api/v1/namespaces/food_delivery/jobs").json()
    _validate(jobs, "JobList")
    assert jobs["totalCount"] == 13
    runs = api.get("/api/v1/namespaces/food_delivery/jobs/etl_orders/runs").json()
    _validate(runs, "RunList")
    assert [r["state"] for r in runs["runs"]] == ["COMPLETED"] and runs["runs"][0]["durationMs"] > 0


@pytest.mark.parametrize(("path", "params", "code", "text"), [
    ("/api/v1/lineage", {}, 400, "nodeId is required"),
    ("/api/v1/lineage", {"nodeId": "table:x"}, 400, "must start with dataset: or job:"),
    ("/api/v1/lineage", {"nodeId": "dataset:food_delivery:public.nothing"}, 404, "not found"),
    ("/api/v1/lineage", {"nodeId": "dataset:food_delivery:public.orders", "depth": "-1"}, 400, "depth must be between"),
    ("/api/v1/lineage", {"nodeId": "dataset:food_delivery:public.orders", "depth": "ten"}, 400, "must be an integer"),
    ("/api/v1/namespaces/food_delivery/datasets/public.nothing", {}, 404, "not found"),
    ("/api/v1/namespaces/food_delivery/jobs/nothing/runs", {}, 404, "not found"),
])
def test_bad_requests_get_marquez_errors(api, path, params, code, text) -> None:
    response = api.get(path, params=params)
    assert response.status_code == code and response.json()["code"] == code and text in response.json()["message"]


def test_reads_need_the_token_when_one_is_set(empty_workspace: Workspace) -> None:
    from starlette.testclient import TestClient

    from meshpilot.server.lineage_http import create_app

    openlineage.import_events(empty_workspace, FIXTURES / "food_delivery.jsonl")
    with TestClient(create_app(empty_workspace, token="s3cret")) as client:
        assert client.get("/api/v1/namespaces").status_code == 401
        assert "namespaces" not in client.get("/api/v1/namespaces").json()
        ok = client.get("/api/v1/namespaces", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["namespaces"]


def test_events_the_official_client_sends_are_readable_at_once_over_http(endpoint) -> None:  # noqa: F811
    url, _ = endpoint
    client = _client(url, "s3cret")
    for name in ("load_orders", "load_invoices"):
        client.emit(_event(name))
    headers = {"Authorization": "Bearer s3cret"}
    graph = httpx.get(f"{url}/api/v1/lineage", params={"nodeId": "dataset:pg:shop.orders"}, headers=headers).json()
    _validate(graph, "LineageGraph")
    assert {n["id"] for n in graph["graph"]} == {"dataset:pg:shop.orders", "job:etl:load_orders", "job:etl:load_invoices",
                                                 "dataset:duckdb:commerce.orders"}
    fields = httpx.get(f"{url}/api/v1/column-lineage", params={"nodeId": "datasetField:duckdb:commerce.orders:amount"},
                       headers=headers).json()
    assert {n["id"] for n in fields["graph"]} == {"datasetField:duckdb:commerce.orders:amount",
                                                  "datasetField:pg:shop.orders:total"}
