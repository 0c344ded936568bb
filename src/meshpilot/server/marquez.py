"""A read API with Marquez's payloads, so existing Marquez clients and UIs can read Meshpilot's graph.

Served next to the OpenLineage endpoint by `meshpilot serve lineage`:
    GET /api/v1/lineage?nodeId=dataset:<ns>:<name>|job:<ns>:<name>&depth=20
    GET /api/v1/column-lineage?nodeId=dataset:<ns>:<name>|datasetField:<ns>:<name>:<field>&depth=20&withDownstream=false
    GET /api/v1/namespaces
    GET /api/v1/namespaces/{namespace}/datasets[/{dataset}[/versions]]
    GET /api/v1/namespaces/{namespace}/jobs[/{job}[/runs]]
Shapes follow Marquez's spec/openapi.yml (LineageGraph, GraphNode, Dataset, Job, Run, DatasetVersion);
errors are Marquez's `{"code": ..., "message": ...}`. As in Marquez, the lineage graph is every job and
dataset connected to the node through jobs' inputs and outputs, up to `depth` jobs away in either
direction; the column-lineage graph follows column edges upstream (and downstream when asked).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from meshpilot.errors import MeshpilotError
from meshpilot.mesh.store import MeshStore
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools.lineage_graph import find_event_datasets

MAX_DEPTH = 100
_STATES = {"START": "RUNNING", "RUNNING": "RUNNING", "COMPLETE": "COMPLETED", "FAIL": "FAILED", "ABORT": "ABORTED",
           "OTHER": "RUNNING"}


class MarquezError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _version(*parts: Any) -> str:
    """A stable UUID for a dataset or job version (Marquez names versions by UUID)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(parts, sort_keys=True, default=str)))


class MarquezView:
    """Marquez payloads read from the workspace index (one cursor per request)."""

    def __init__(self, con: Any):
        self.con = con

    # --- nodes -------------------------------------------------------------------------------------------

    def _node(self, kind: str, text: str) -> tuple[str, str]:
        found = find_event_datasets(self.con, text, kind)
        exact = [f for f in found if f"{kind}:{f[0]}:{f[1]}" == text]
        if len(exact or found) != 1:
            raise MarquezError(404, f"{text} not found") if not found else \
                MarquezError(400, f"{text} is ambiguous: write {kind}:<namespace>:<name>")
        return (exact or found)[0]

    def _records(self, kind: str, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
        rows = self.con.execute(
            """SELECT n.namespace, n.name, n.first_seen, n.last_seen, n.facets FROM lineage_nodes n
               JOIN (SELECT unnest($ns) AS ns, unnest($name) AS name) f ON n.namespace = f.ns AND n.name = f.name
               WHERE n.kind = $kind""",
            {"kind": kind, "ns": [k[0] for k in keys], "name": [k[1] for k in keys]}).fetchall()
        return {(ns, name): (first, last, json.loads(facets)) for ns, name, first, last, facets in rows}

    def dataset(self, namespace: str, name: str, record: tuple | None = None) -> dict[str, Any]:
        record = record or self._records("dataset", [(namespace, name)]).get((namespace, name))
        if record is None:
            raise MarquezError(404, f"Dataset '{namespace}:{name}' not found")
        first, last, facets = record
        fields = [{"name": str(f.get("name")), "type": str(f.get("type") or "UNKNOWN"), "tags": [],
                   "description": f.get("description")}
                  for f in (facets.get("schema") or {}).get("fields") or [] if isinstance(f, dict) and f.get("name")]
        return {"id": {"namespace": namespace, "name": name}, "type": "DB_TABLE", "name": name, "physicalName": name,
                "createdAt": _time(first), "updatedAt": _time(last), "namespace": namespace,
                "sourceName": (facets.get("dataSource") or {}).get("name") or namespace, "fields": fields, "tags": [],
                "lastModifiedAt": None, "description": (facets.get("documentation") or {}).get("description"),
                "facets": facets, "currentVersion": _version(namespace, name, fields), "deleted": False}

    def job(self, namespace: str, name: str, record: tuple | None = None) -> dict[str, Any]:
        record = record or self._records("job", [(namespace, name)]).get((namespace, name))
        if record is None:
            raise MarquezError(404, f"Job '{namespace}:{name}' not found")
        first, last, facets = record
        io = self.con.execute("SELECT direction, namespace, name FROM job_io WHERE job = ? ORDER BY ALL",
                              [f"{namespace}/{name}"]).fetchall()
        runs = self.runs(namespace, name, limit=1)
        return {"id": {"namespace": namespace, "name": name}, "type": "BATCH", "name": name, "simpleName": name,
                "createdAt": _time(first), "updatedAt": _time(last), "namespace": namespace,
                "inputs": [{"namespace": ns, "name": n} for d, ns, n in io if d == "input"],
                "outputs": [{"namespace": ns, "name": n} for d, ns, n in io if d == "output"],
                "location": (facets.get("sourceCodeLocation") or {}).get("url"),
                "description": (facets.get("documentation") or {}).get("description"),
                "latestRun": runs[0] if runs else None, "latestRuns": runs, "facets": facets,
                "currentVersion": _version(namespace, name, io, (facets.get("sql") or {}).get("query"))}

    def runs(self, namespace: str, name: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.con.execute(
            """SELECT run_id, state, started_at, ended_at FROM runs WHERE job = ? ORDER BY ended_at DESC LIMIT ?""",
            [f"{namespace}/{name}", limit]).fetchall()
        return [{"id": run_id, "createdAt": _time(started), "updatedAt": _time(ended), "nominalStartTime": None,
                 "nominalEndTime": None, "state": _STATES.get(state or "", "RUNNING"), "startedAt": _time(started),
                 "endedAt": _time(ended) if state in ("COMPLETE", "FAIL", "ABORT") else None,
                 "durationMs": int((ended - started).total_seconds() * 1000) if started and ended else None,
                 "args": {}, "facets": {}}
                for run_id, state, started, ended in rows]

    def job_runs(self, namespace: str, name: str) -> dict[str, Any]:
        if not self._records("job", [(namespace, name)]):
            raise MarquezError(404, f"Job '{namespace}:{name}' not found")
        return {"runs": self.runs(namespace, name)}

    # --- lineage -----------------------------------------------------------------------------------------

    def lineage(self, node_id: str, depth: int) -> dict[str, Any]:
        kind, _, _ = node_id.partition(":")
        if kind not in ("dataset", "job"):
            raise MarquezError(400, f"nodeId '{node_id}' must start with dataset: or job:")
        start = self._node(kind, node_id)
        datasets: set[tuple[str, str]] = set()
        jobs: set[str] = set()
        if kind == "dataset":
            datasets.add(start)
            frontier_datasets, frontier_jobs = [start], []
        else:
            frontier_datasets, frontier_jobs = [], [f"{start[0]}/{start[1]}"]
            jobs.update(frontier_jobs)
        for _ in range(depth):  # each step: datasets to the jobs that read or write them, jobs to their datasets
            if frontier_datasets:
                found = {j for (j,) in self.con.execute(
                    """SELECT DISTINCT io.job FROM job_io io JOIN (SELECT unnest($ns) AS ns, unnest($name) AS name) f
                         ON io.namespace = f.ns AND io.name = f.name""",
                    {"ns": [d[0] for d in frontier_datasets], "name": [d[1] for d in frontier_datasets]}).fetchall()}
                frontier_jobs = sorted(found - jobs)
                jobs.update(frontier_jobs)
                frontier_datasets = []
            if not frontier_jobs or len(jobs) > 5_000:
                break
            found_datasets = set(self.con.execute(
                "SELECT DISTINCT namespace, name FROM job_io WHERE list_contains($jobs, job)",
                {"jobs": frontier_jobs}).fetchall())
            frontier_datasets = sorted(found_datasets - datasets)
            datasets.update(frontier_datasets)
            frontier_jobs = []
        edges = self.con.execute(
            "SELECT job, direction, namespace, name FROM job_io WHERE list_contains($jobs, job) ORDER BY ALL",
            {"jobs": sorted(jobs)}).fetchall()
        job_parts = {f"{ns}/{n}": (ns, n) for ns, n in self.con.execute(
            "SELECT namespace, name FROM lineage_nodes WHERE kind = 'job' AND list_contains($jobs, namespace || '/' || name)",
            {"jobs": sorted(jobs)}).fetchall()}
        dataset_records = self._records("dataset", sorted(datasets))
        job_records = self._records("job", sorted(job_parts.values()))
        nodes: dict[str, dict[str, Any]] = {}
        for namespace, name in sorted(datasets):
            nodes[f"dataset:{namespace}:{name}"] = {
                "id": f"dataset:{namespace}:{name}", "type": "DATASET",
                "data": self.dataset(namespace, name, dataset_records.get((namespace, name))),
                "inEdges": [], "outEdges": []}
        for namespace, name in sorted(job_parts.values()):
            nodes[f"job:{namespace}:{name}"] = {
                "id": f"job:{namespace}:{name}", "type": "JOB",
                "data": self.job(namespace, name, job_records.get((namespace, name))), "inEdges": [], "outEdges": []}
        for job_key, direction, namespace, name in edges:
            dataset_id = f"dataset:{namespace}:{name}"
            if job_key not in job_parts or dataset_id not in nodes:
                continue
            job_id = "job:{}:{}".format(*job_parts[job_key])
            origin, destination = (dataset_id, job_id) if direction == "input" else (job_id, dataset_id)
            edge = {"origin": origin, "destination": destination}
            nodes[origin]["outEdges"].append(edge)
            nodes[destination]["inEdges"].append(edge)
        return {"graph": list(nodes.values())}

    def column_lineage(self, node_id: str, depth: int, with_downstream: bool) -> dict[str, Any]:
        kind, _, rest = node_id.partition(":")
        if kind == "datasetField":
            dataset_text, _, field = rest.rpartition(":")
            namespace, name = self._node("dataset", f"dataset:{dataset_text}")
            starts = [(namespace, name, field)]
        elif kind == "dataset":
            namespace, name = self._node("dataset", node_id)
            starts = [(namespace, name, f) for (f,) in self.con.execute(
                """SELECT DISTINCT target_field FROM column_edges WHERE target_namespace = ? AND target_name = ?
                     AND target_field IS NOT NULL UNION SELECT DISTINCT source_field FROM column_edges
                   WHERE source_namespace = ? AND source_name = ? ORDER BY 1""",
                [namespace, name, namespace, name]).fetchall()]
        else:
            raise MarquezError(400, f"nodeId '{node_id}' must start with dataset: or datasetField:")
        edges: set[tuple] = set()
        for downstream in (False, True) if with_downstream else (False,):
            mine, other = ("source", "target") if downstream else ("target", "source")
            frontier, seen = list(starts), set(starts)
            for _ in range(depth):
                if not frontier:
                    break
                rows = self.con.execute(
                    f"""SELECT e.source_namespace, e.source_name, e.source_field, e.target_namespace, e.target_name,
                               e.target_field, e.transformation_type, e.description
                        FROM column_edges e JOIN (SELECT unnest($ns) AS ns, unnest($n) AS n, unnest($f) AS f) x
                          ON e.{mine}_namespace = x.ns AND e.{mine}_name = x.n AND e.{mine}_field = x.f
                        WHERE e.target_field IS NOT NULL""",
                    {"ns": [s[0] for s in frontier], "n": [s[1] for s in frontier], "f": [s[2] for s in frontier]}).fetchall()
                edges.update(rows)
                reached = {(r[0], r[1], r[2]) if not downstream else (r[3], r[4], r[5]) for r in rows}
                frontier = sorted(reached - seen)
                seen.update(frontier)
        return {"graph": self._field_nodes(starts, sorted(edges, key=str))}

    def _field_nodes(self, starts: list[tuple], edges: list[tuple]) -> list[dict[str, Any]]:
        nodes: dict[str, dict[str, Any]] = {}
        types = self._field_types({(e[0], e[1]) for e in edges} | {(e[3], e[4]) for e in edges} | {s[:2] for s in starts})

        def node(ns: str, dataset: str, field: str) -> dict[str, Any]:
            node_key = f"datasetField:{ns}:{dataset}:{field}"
            if node_key not in nodes:
                nodes[node_key] = {"id": node_key, "type": "DATASET_FIELD", "data": {
                    "namespace": ns, "dataset": dataset, "datasetVersion": None, "field": field,
                    "fieldType": types.get((ns, dataset), {}).get(field), "transformationDescription": None,
                    "transformationType": None, "inputFields": []}, "inEdges": [], "outEdges": []}
            return nodes[node_key]

        for ns, dataset, field in starts:
            node(ns, dataset, field)
        for s_ns, s_name, s_field, t_ns, t_name, t_field, kind, description in edges:
            source, target = node(s_ns, s_name, s_field), node(t_ns, t_name, t_field)
            target["data"]["inputFields"].append({"namespace": s_ns, "dataset": s_name, "field": s_field,
                                                  "transformationDescription": description,
                                                  "transformationType": kind})
            target["data"]["transformationType"] = target["data"]["transformationType"] or kind
            target["data"]["transformationDescription"] = target["data"]["transformationDescription"] or description
            edge = {"origin": source["id"], "destination": target["id"]}
            if edge not in source["outEdges"]:
                source["outEdges"].append(edge)
                target["inEdges"].append(edge)
        return list(nodes.values())

    def _field_types(self, datasets: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
        return {key: {str(f.get("name")): f.get("type") for f in (facets.get("schema") or {}).get("fields") or []
                      if isinstance(f, dict)}
                for key, (_, _, facets) in self._records("dataset", sorted(datasets)).items()}

    # --- listings ----------------------------------------------------------------------------------------

    def namespaces(self) -> dict[str, Any]:
        rows = self.con.execute("SELECT namespace, min(first_seen), max(last_seen) FROM lineage_nodes "
                                "GROUP BY namespace ORDER BY namespace").fetchall()
        return {"namespaces": [{"name": ns, "createdAt": _time(first), "updatedAt": _time(last), "ownerName": "anonymous",
                                "description": None} for ns, first, last in rows]}

    def datasets(self, namespace: str, limit: int, offset: int) -> dict[str, Any]:
        return self._listing("dataset", namespace, limit, offset, self.dataset, "datasets")

    def jobs(self, namespace: str, limit: int, offset: int) -> dict[str, Any]:
        return self._listing("job", namespace, limit, offset, self.job, "jobs")

    def _listing(self, kind: str, namespace: str, limit: int, offset: int, build: Any, key: str) -> dict[str, Any]:
        total = self.con.execute("SELECT count(*) FROM lineage_nodes WHERE kind = ? AND namespace = ?",
                                 [kind, namespace]).fetchone()[0]
        names = self.con.execute("SELECT name FROM lineage_nodes WHERE kind = ? AND namespace = ? ORDER BY name "
                                 "LIMIT ? OFFSET ?", [kind, namespace, limit, offset]).fetchall()
        records = self._records(kind, [(namespace, n) for (n,) in names])
        return {"totalCount": total, key: [build(namespace, n, records.get((namespace, n))) for (n,) in names]}

    def dataset_versions(self, namespace: str, name: str) -> dict[str, Any]:
        current = self.dataset(namespace, name)
        rows = self.con.execute("SELECT event_time, fields FROM schema_versions WHERE namespace = ? AND name = ? "
                                "ORDER BY event_time DESC", [namespace, name]).fetchall()
        versions = []
        for when, fields in rows:
            columns = [{"name": n, "type": t or "UNKNOWN", "tags": [], "description": None}
                       for n, t in json.loads(fields).items()]
            version = _version(namespace, name, columns)
            versions.append({"id": {"namespace": namespace, "name": name, "version": version}, "type": "DB_TABLE",
                             "name": name, "physicalName": name, "createdAt": _time(when), "version": version,
                             "namespace": namespace, "sourceName": current["sourceName"], "fields": columns, "tags": [],
                             "description": current["description"], "createdByRun": None, "facets": {}})
        return {"versions": versions}


def routes(workspace: Workspace, token: str | None = None) -> list[Route]:
    """The read routes; with a token, each request needs `Authorization: Bearer <token>` (as writes do)."""
    def handler(build: Any) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            from starlette.concurrency import run_in_threadpool

            if token and request.headers.get("authorization") != f"Bearer {token}":
                return JSONResponse({"code": 401, "message": "unauthorized: send Authorization: Bearer <token>"},
                                    status_code=401)

            def answer() -> Any:
                with MeshStore.open(workspace) as store:
                    return build(MarquezView(store.cursor()), request)
            try:
                return JSONResponse(await run_in_threadpool(answer))
            except MarquezError as exc:
                return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.code)
            except MeshpilotError as exc:
                return JSONResponse({"code": 500, "message": exc.message}, status_code=500)
        return endpoint

    def number(request: Request, name: str, default: int, most: int) -> int:
        text = request.query_params.get(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise MarquezError(400, f"{name} must be an integer, not '{text}'") from None
        if not 0 <= value <= most:
            raise MarquezError(400, f"{name} must be between 0 and {most}")
        return value

    def node_id(request: Request) -> str:
        value = request.query_params.get("nodeId")
        if not value:
            raise MarquezError(400, "nodeId is required (dataset:<namespace>:<name> or job:<namespace>:<name>)")
        return value

    p = "/api/v1/namespaces/{namespace}"
    return [
        Route("/api/v1/lineage", handler(lambda v, r: v.lineage(node_id(r), number(r, "depth", 20, MAX_DEPTH))),
              methods=["GET"]),
        Route("/api/v1/column-lineage", handler(lambda v, r: v.column_lineage(
            node_id(r), number(r, "depth", 20, MAX_DEPTH),
            r.query_params.get("withDownstream", "false").lower() == "true")), methods=["GET"]),
        Route("/api/v1/namespaces", handler(lambda v, r: v.namespaces()), methods=["GET"]),
        Route(f"{p}/datasets", handler(lambda v, r: v.datasets(
            r.path_params["namespace"], number(r, "limit", 100, 10_000), number(r, "offset", 0, 10**9))), methods=["GET"]),
        Route(f"{p}/datasets/{{dataset:path}}/versions", handler(lambda v, r: v.dataset_versions(
            r.path_params["namespace"], r.path_params["dataset"])), methods=["GET"]),
        Route(f"{p}/datasets/{{dataset:path}}", handler(lambda v, r: v.dataset(
            r.path_params["namespace"], r.path_params["dataset"])), methods=["GET"]),
        Route(f"{p}/jobs", handler(lambda v, r: v.jobs(
            r.path_params["namespace"], number(r, "limit", 100, 10_000), number(r, "offset", 0, 10**9))), methods=["GET"]),
        Route(f"{p}/jobs/{{job:path}}/runs", handler(lambda v, r: v.job_runs(
            r.path_params["namespace"], r.path_params["job"])), methods=["GET"]),
        Route(f"{p}/jobs/{{job:path}}", handler(lambda v, r: v.job(r.path_params["namespace"], r.path_params["job"])),
              methods=["GET"]),
    ]
