"""A local stand-in for an OpenMetadata server, speaking its REST API.

It serves what a real server returns after ingesting the public sample data: the export's tables,
lineage, test cases, users and teams reshaped into API entities, each validated against
openmetadata-ingestion's own generated models before it is served, so the client under test parses
genuine payloads. Requests without the expected bearer token get 401, as from a real server.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse


def _id(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def _fqn_part(name: str) -> str:
    return f'"{name}"' if "." in name else name


def build_payloads(export: Path) -> dict[str, Any]:
    from metadata.generated.schema.entity.data.table import Table
    from metadata.generated.schema.entity.teams.team import Team
    from metadata.generated.schema.entity.teams.user import User
    from metadata.generated.schema.tests.basic import TestCaseResult
    from metadata.generated.schema.tests.testCase import TestCase

    raw_tables = json.loads((export / "datasets" / "tables.json").read_text())["tables"]
    schema_fqn = "sample_data.ecommerce_db.shopify"
    schema_ref = {"id": _id(schema_fqn), "type": "databaseSchema", "name": "shopify",
                  "fullyQualifiedName": schema_fqn, "description": "Shopify sales schema."}
    tables = []
    for raw in raw_tables:
        fqn = f"{schema_fqn}.{_fqn_part(raw['name'])}"
        columns = [{k: v for k, v in c.items() if k != "children"} | {"fullyQualifiedName": f"{fqn}.{c['name']}"}
                   for c in raw["columns"]]
        entity = {
            "id": _id(fqn), "name": raw["name"], "fullyQualifiedName": fqn, "description": raw.get("description"),
            "tableType": raw.get("tableType", "Regular"), "columns": columns, "databaseSchema": schema_ref,
            "database": {"id": _id("sample_data.ecommerce_db"), "type": "database", "name": "ecommerce_db",
                         "fullyQualifiedName": "sample_data.ecommerce_db"},
            "service": {"id": _id("sample_data"), "type": "databaseService", "name": "sample_data"},
            "updatedAt": raw["updatedAt"], "version": raw.get("version", 0.1), "href": raw.get("href"),
        }
        if raw.get("tableConstraints"):
            entity["tableConstraints"] = raw["tableConstraints"]
        if raw["name"] == "dim_customer":
            entity["owners"] = [{"id": _id("team", "Data"), "type": "team", "name": "Data"}]
        tables.append(Table.model_validate(entity).model_dump(mode="json", exclude_none=True, by_alias=True))
    by_fqn = {t["fullyQualifiedName"]: t for t in tables}

    lineage: dict[str, dict[str, Any]] = {fqn: {"entity": {"id": t["id"], "type": "table", "fullyQualifiedName": fqn},
                                                "nodes": [], "upstreamEdges": [], "downstreamEdges": []}
                                          for fqn, t in by_fqn.items()}
    for edge in json.loads((export / "lineage" / "lineage.json").read_text()):
        source, target = by_fqn.get(edge["from"]["fqn"]), by_fqn.get(edge["to"]["fqn"])
        if not (source and target):
            continue
        pipeline = edge.get("edge_meta", {}).get("fqn")
        details: dict[str, Any] = {"sqlQuery": edge.get("sql_query"), "source": "Manual"}
        if pipeline:
            details["pipeline"] = {"id": _id(pipeline), "type": "pipeline", "fullyQualifiedName": pipeline}
        # The export has no column lineage; a server with a parsed ETL query would. Declare the one
        # mapping the sample's SQL implies, so the client's column lineage path is exercised.
        if source["name"] == "raw_customer" and target["name"] == "dim_address":
            details["columnsLineage"] = [{"fromColumns": [f"{source['fullyQualifiedName']}.shipping_address"],
                                          "toColumn": f"{target['fullyQualifiedName']}.address1"}]
        entry = lineage[target["fullyQualifiedName"]]
        entry["nodes"].append({"id": source["id"], "type": "table", "name": source["name"],
                               "fullyQualifiedName": source["fullyQualifiedName"]})
        entry["upstreamEdges"].append({"fromEntity": source["id"], "toEntity": target["id"], "lineageDetails": details})

    suites = json.loads((export / "tests" / "testSuites.json").read_text())["tests"]
    results_doc = json.loads((export / "tests" / "testCaseResults.json").read_text())["testCaseResults"]
    results_by_name = {r["name"]: r["results"] for r in results_doc}
    test_cases, results = [], {}
    base_ts = max(t["updatedAt"] for t in tables)
    for suite in suites:
        for case in suite["testCases"]:
            link = case["entityLink"]
            column = link.split("::columns::")[1].rstrip(">") if "::columns::" in link else None
            table_fqn = link.split("::")[2].rstrip(">")
            name = f"{column}.{case['name']}" if column else case["name"]
            fqn = f"{table_fqn}.{name}"
            entity = {
                "id": _id(fqn), "name": case["name"], "fullyQualifiedName": fqn, "entityLink": link,
                "description": case.get("description"),
                "testDefinition": {"id": _id(case["testDefinitionName"]), "type": "testDefinition",
                                   "name": case["testDefinitionName"]},
                "testSuite": {"id": _id(suite["testSuiteName"]), "type": "testSuite", "name": suite["testSuiteName"]},
                "parameterValues": [{"name": p["name"], "value": str(p["value"])} for p in case.get("parameterValues", [])],
            }
            test_cases.append(TestCase.model_validate(entity).model_dump(mode="json", exclude_none=True, by_alias=True))
            results[fqn] = [
                TestCaseResult.model_validate({
                    "timestamp": base_ts - day * 86_400_000, "testCaseStatus": r["testCaseStatus"],
                    "result": r.get("result"), "testResultValue": r.get("testResultValues", [])}).model_dump(
                    mode="json", exclude_none=True)
                for day, r in enumerate(results_by_name.get(name, []))
            ]

    raw_teams = json.loads((export / "teams" / "teams.json").read_text())["teams"]
    teams = [Team.model_validate({
        "id": _id("team", t["name"]), "name": t["name"], "teamType": t["teamType"],
        "parents": [{"id": _id("team", p), "type": "team", "name": p} for p in t.get("parent") or []],
    }).model_dump(mode="json", exclude_none=True) for t in raw_teams]
    raw_users = json.loads((export / "users" / "users.json").read_text())["users"]
    users = [User.model_validate({
        "id": _id("user", u["name"]), "name": u["name"], "displayName": u.get("displayName"), "email": u["email"],
        "teams": [{"id": _id("team", u["teams"]), "type": "team", "name": u["teams"]}],
    }).model_dump(mode="json", exclude_none=True) for u in raw_users]
    return {"tables": tables, "lineage": lineage, "testCases": test_cases, "results": results,
            "teams": teams, "users": users}


class OpenMetadataStub:
    """`with OpenMetadataStub(export, token) as url:` serves the API at `url` (ending in /api)."""

    def __init__(self, export: Path, token: str, version: str | None = None):
        from metadata.__version__ import get_client_version

        self.payloads = build_payloads(export)
        self.token = token
        self.version = version or get_client_version()
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                stub.requests.append(url.path)
                if self.headers.get("Authorization") != f"Bearer {stub.token}":
                    return self._send(401, {"code": 401, "message": "Not Authorized! Token verification failed"})
                self._send(*stub.route(url.path, parse_qs(url.query)))

        return Handler

    def route(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        p = self.payloads
        prefix = "/api/v1"
        if not path.startswith(prefix):
            return 404, {"code": 404, "message": f"no route {path}"}
        path = path[len(prefix):]
        listing = {"/tables": p["tables"], "/dataQuality/testCases": p["testCases"], "/teams": p["teams"],
                   "/users": p["users"]}
        if path == "/system/version":
            return 200, {"version": self.version, "revision": "stub", "timestamp": 0}
        if path in listing:
            return 200, {"data": listing[path], "paging": {"total": len(listing[path])}}
        if path.startswith("/lineage/table/name/"):
            fqn = unquote(path[len("/lineage/table/name/"):])
            return (200, p["lineage"][fqn]) if fqn in p["lineage"] else (404, {"code": 404, "message": fqn})
        if path.startswith("/dataQuality/testCases/testCaseResults/"):
            fqn = unquote(path[len("/dataQuality/testCases/testCaseResults/"):])
            return 200, {"data": p["results"].get(fqn, []), "paging": {"total": len(p["results"].get(fqn, []))}}
        return 404, {"code": 404, "message": f"no route {path}"}

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
