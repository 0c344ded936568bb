"""Datasets and jobs as OpenLineage events name them, whether or not a data product holds them.

Every dataset an event names exists once the event is ingested, with its newest schema, documentation,
ownership and data source facets; every job with its inputs, outputs, SQL and runs. A dataset no
product holds is listed as unassigned until someone attaches it (`assign`), which writes it into the
product's file as an output port whose dataset carries the event's namespace and name, so lineage, SQL
and search see it as that product's dataset from then on.

History: each dataset's schema versions (from schema facets, in event-time order) and `diff` between
two times: datasets that appeared, columns that appeared, vanished or changed type, jobs whose SQL,
source or inputs and outputs changed.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from meshpilot.errors import InvalidArgumentError, NotFoundError
from meshpilot.mesh import files
from meshpilot.mesh.model import DataProduct, Dataset, MeshRef, OutputPort
from meshpilot.mesh.store import MeshStore
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools.lineage_graph import find_event_datasets

# A catalog dataset with no namespace stands for that name in any namespace (as lineage maps them).
_ASSIGNED = """LEFT JOIN (SELECT qualified_name, namespace, max(ref) AS ref FROM datasets GROUP BY ALL) d
                 ON d.qualified_name = n.name AND (d.namespace IS NULL OR d.namespace = n.namespace)"""


def node_id(kind: str, namespace: str, name: str) -> str:
    """Marquez's id of a dataset or job node."""
    return f"{kind}:{namespace}:{name}"


def _workspace(workspace: Workspace | str | None) -> Workspace:
    return workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)


def _one(con: Any, text: str, kind: str = "dataset") -> tuple[str, str]:
    if text.startswith("mesh://"):
        ref = MeshRef.parse(text)
        row = con.execute("""SELECT n.namespace, n.name FROM lineage_nodes n JOIN datasets d
                               ON d.qualified_name = n.name AND (d.namespace IS NULL OR d.namespace = n.namespace)
                             WHERE n.kind = 'dataset' AND d.ref = ? ORDER BY ALL LIMIT 1""",
                          [str(ref.dataset_ref()) if ref.dataset else text]).fetchone()
        if row is None:
            raise NotFoundError(f"No lineage event names the dataset {text}.",
                                hint="Its jobs have not sent OpenLineage events (or name it in another namespace).")
        return row
    found = find_event_datasets(con, text, kind)
    if len(found) == 1:
        return found[0]
    if found:
        raise InvalidArgumentError(f"'{text}' names {len(found)} {kind}s: "
                                   + ", ".join(f"{ns}/{n}" for ns, n in found[:5]) + ".",
                                   hint=f"Write <namespace>/<name> or {kind}:<namespace>:<name>.")
    listing = "meshpilot datasets list --lineage" if kind == "dataset" else "meshpilot lineage jobs"
    raise NotFoundError(f"No {kind} '{text}' in this workspace's lineage events.",
                        hint=f"Write <namespace>/<name> or {kind}:<namespace>:<name>; `{listing}` lists them.")


def _fields(facets: dict[str, Any]) -> list[dict[str, Any]]:
    fields = (facets.get("schema") or {}).get("fields") or []
    return [{"name": str(f.get("name")), "type": f.get("type"), "description": f.get("description")}
            for f in fields if isinstance(f, dict) and f.get("name") is not None]


def _owners(facets: dict[str, Any]) -> list[str]:
    return [str(o.get("name")) for o in (facets.get("ownership") or {}).get("owners") or []
            if isinstance(o, dict) and o.get("name")]


def _dataset_row(namespace: str, name: str, first: Any, last: Any, facets: dict[str, Any], ref: str | None) -> dict:
    return {"id": node_id("dataset", namespace, name), "namespace": namespace, "name": name,
            "assigned_to": ref, "description": (facets.get("documentation") or {}).get("description"),
            "owners": _owners(facets), "source": (facets.get("dataSource") or {}).get("name"),
            "fields": _fields(facets), "first_seen": first, "last_seen": last}


def list_event_datasets(workspace: Workspace | str | None = None, unassigned: bool = False,
                        namespace: str | None = None) -> list[dict[str, Any]]:
    """Every dataset lineage events name, with the catalog dataset it is (None: in no product)."""
    with MeshStore.open(_workspace(workspace)) as store:
        rows = store.cursor().execute(
            f"""SELECT n.namespace, n.name, n.first_seen, n.last_seen, n.facets, d.ref FROM lineage_nodes n {_ASSIGNED}
                WHERE n.kind = 'dataset' AND (NOT $unassigned OR d.ref IS NULL)
                  AND ($namespace IS NULL OR n.namespace = $namespace)
                ORDER BY n.namespace, n.name""", {"unassigned": unassigned, "namespace": namespace}).fetchall()
    return [_dataset_row(ns, name, first, last, json.loads(facets), ref) for ns, name, first, last, facets, ref in rows]


def event_dataset(text: str, workspace: Workspace | str | None = None) -> dict[str, Any]:
    """A dataset as events name it: its facets, the jobs that write and read it, its schema versions."""
    with MeshStore.open(_workspace(workspace)) as store:
        con = store.cursor()
        namespace, name = _one(con, text)
        first, last, facets, ref = con.execute(
            f"""SELECT n.first_seen, n.last_seen, n.facets, d.ref FROM lineage_nodes n {_ASSIGNED}
                WHERE n.kind = 'dataset' AND n.namespace = ? AND n.name = ?""", [namespace, name]).fetchone()
        jobs = con.execute("SELECT direction, job FROM job_io WHERE namespace = ? AND name = ? ORDER BY ALL",
                           [namespace, name]).fetchall()
        neighbours = {direction: [f"{ns}/{n}" for ns, n in con.execute(
            f"""SELECT DISTINCT {other}_namespace, {other}_name FROM dataset_edges
                WHERE {mine}_namespace = ? AND {mine}_name = ? ORDER BY ALL""", [namespace, name]).fetchall()]
            for direction, mine, other in (("upstream", "target", "source"), ("downstream", "source", "target"))}
        versions = _versions(con, namespace, name)
    return {**_dataset_row(namespace, name, first, last, json.loads(facets), ref),
            "written_by": [j for d, j in jobs if d == "output"], "read_by": [j for d, j in jobs if d == "input"],
            **neighbours, "versions": versions}


def _versions(con: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    return [{"event_time": when, "job": job, "fields": json.loads(fields), "change": change or "first seen"}
            for when, job, fields, change in con.execute(
                """SELECT event_time, job, fields, change FROM schema_versions WHERE namespace = ? AND name = ?
                   ORDER BY event_time""", [namespace, name]).fetchall()]


def list_jobs(workspace: Workspace | str | None = None, namespace: str | None = None) -> list[dict[str, Any]]:
    """Every job lineage events name, with its inputs, outputs and latest run."""
    with MeshStore.open(_workspace(workspace)) as store:
        return _jobs(store.cursor(), namespace)


def _jobs(con: Any, namespace: str | None, name: str | None = None) -> list[dict[str, Any]]:
    rows = con.execute(
            """SELECT n.namespace, n.name, n.first_seen, n.last_seen, n.facets,
                      list(DISTINCT io.namespace || '/' || io.name ORDER BY io.namespace || '/' || io.name)
                          FILTER (WHERE io.direction = 'input'),
                      list(DISTINCT io.namespace || '/' || io.name ORDER BY io.namespace || '/' || io.name)
                          FILTER (WHERE io.direction = 'output')
               FROM lineage_nodes n LEFT JOIN job_io io ON io.job = n.namespace || '/' || n.name
               WHERE n.kind = 'job' AND ($namespace IS NULL OR n.namespace = $namespace)
                 AND ($name IS NULL OR n.name = $name)
               GROUP BY ALL ORDER BY n.namespace, n.name""", {"namespace": namespace, "name": name}).fetchall()
    runs = _latest_runs(con, [f"{ns}/{n}" for ns, n, *_ in rows])
    return [_job_row(ns, name, first, last, json.loads(facets), inputs or [], outputs or [], runs.get(f"{ns}/{name}"))
            for ns, name, first, last, facets, inputs, outputs in rows]


def _latest_runs(con: Any, jobs: list[str]) -> dict[str, dict[str, Any]]:
    return {job: {"id": run_id, "state": state, "started_at": started, "ended_at": ended, "error": error}
            for job, run_id, state, started, ended, error in con.execute(
                """SELECT job, arg_max(run_id, ended_at), arg_max(state, ended_at), arg_max(started_at, ended_at),
                          max(ended_at), arg_max(error, ended_at)
                   FROM runs WHERE list_contains($jobs, job) GROUP BY job""", {"jobs": jobs}).fetchall()}


def _job_row(namespace: str, name: str, first: Any, last: Any, facets: dict[str, Any], inputs: list[str],
             outputs: list[str], latest_run: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": node_id("job", namespace, name), "namespace": namespace, "name": name,
            "description": (facets.get("documentation") or {}).get("description"),
            "sql": (facets.get("sql") or {}).get("query"),
            "location": (facets.get("sourceCodeLocation") or {}).get("url"),
            "type": (facets.get("jobType") or {}).get("jobType"), "owners": _owners(facets),
            "inputs": inputs, "outputs": outputs, "latest_run": latest_run, "first_seen": first, "last_seen": last}


def job(text: str, workspace: Workspace | str | None = None) -> dict[str, Any]:
    """A job with its inputs, outputs, SQL, and its runs, newest first."""
    with MeshStore.open(_workspace(workspace)) as store:
        con = store.cursor()
        namespace, name = _one(con, text, kind="job")
        key = f"{namespace}/{name}"
        rows = _jobs(con, namespace, name)
        runs = [{"id": run_id, "state": state, "started_at": started, "ended_at": ended, "error": error}
                for run_id, state, started, ended, error in con.execute(
                    "SELECT run_id, state, started_at, ended_at, error FROM runs WHERE job = ? ORDER BY ended_at DESC",
                    [key]).fetchall()]
    return {**rows[0], "runs": runs}


# --- assigning ---------------------------------------------------------------------------------------


def assign(text: str, product: str, dataset_name: str | None = None, owner: str | None = None,
           workspace: Workspace | str | None = None) -> dict[str, Any]:
    """Attach a dataset events name to a product (created when it does not exist): it becomes an output
    port of the product, its dataset keeping the event's namespace and name and its schema facet's
    columns. Validated with the whole workspace before anything is written."""
    ws = _workspace(workspace)
    details = event_dataset(text, ws)
    if details["assigned_to"]:
        raise InvalidArgumentError(f"{details['namespace']}/{details['name']} is already {details['assigned_to']}.",
                                   hint="Edit that product's file to move it.")
    ref = MeshRef.parse(product if product.startswith("mesh://") else f"mesh://{product}")
    if ref.dataset is not None:
        raise InvalidArgumentError(f"{product} names a dataset; assign to a product.",
                                   hint="Write mesh://<domain>/<product>.")
    name = dataset_name or _dataset_name(details["name"])
    with MeshStore.open(ws) as store:
        row = store.cursor().execute("SELECT file FROM products WHERE ref = ?", [str(ref)]).fetchone()
        current = store.product(str(ref)) if row else None
    relative = row[0] if row else f"products/{ref.domain}.{ref.product}.yaml"
    if current is None:
        current = DataProduct(id=ref.product, name=ref.product.replace("-", " ").capitalize(), domain=ref.domain,
                              owner=owner, description=f"Created by `meshpilot datasets assign` for {details['id']}.")
    elif owner and current.owner != owner:
        raise InvalidArgumentError(f"{ref} is owned by '{current.owner}'; --owner only names the owner of a new product.",
                                   hint="Leave --owner out, or change the owner in the product's file.")
    dataset = Dataset(name=name, qualified_name=details["name"], namespace=details["namespace"],
                      description=details["description"],
                      columns=[{"name": f["name"], "type": str(f["type"] or "unknown"), "description": f["description"]}
                               for f in details["fields"]])
    port = OutputPort(name=_port_name(name), location=f"{details['namespace']}/{details['name']}", dataset=dataset)
    document = current.model_dump(mode="json", exclude_defaults=True)
    document.setdefault("output_ports", []).append(port.model_dump(mode="json", exclude_defaults=True, exclude_none=True))
    changed = ws.apply({relative: files.dump_yaml(document)})
    return {"dataset": details["id"], "ref": str(MeshRef(domain=ref.domain, product=ref.product, dataset=name)),
            "file": relative, "files_changed": changed, "created_product": row is None}


def _dataset_name(name: str) -> str:
    """A dataset's name in its product: the event name's last part ('public.orders' -> 'orders')."""
    tail = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[-1]
    return tail or name


def _port_name(name: str) -> str:
    slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")
    return "-".join(part for part in slug.split("-") if part) or "port"


# --- history -----------------------------------------------------------------------------------------


def parse_time(text: str, option: str) -> datetime:
    """An ISO 8601 date or time (UTC when no zone is given), or 'now'."""
    if text.strip().lower() == "now":
        return datetime.now(tz=UTC)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            value = datetime.combine(date.fromisoformat(text.strip()), datetime.min.time())
        except ValueError:
            raise InvalidArgumentError(f"{option} '{text}' is not a date or time.",
                                       hint="Write an ISO 8601 date or time, e.g. 2026-11-02 or 2026-11-02T06:00:00Z, "
                                            "or 'now'.") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def diff(since: datetime, until: datetime, workspace: Workspace | str | None = None) -> dict[str, Any]:
    """What changed in the lineage between two times: datasets first seen, columns that appeared,
    vanished or changed type (schema facets), jobs first seen or whose SQL, source or inputs and
    outputs changed."""
    if since > until:
        raise InvalidArgumentError(f"--since {since.isoformat()} is after --until {until.isoformat()}.",
                                   hint="Give the earlier time as --since.")
    with MeshStore.open(_workspace(workspace)) as store:
        con = store.cursor()
        schemas = con.execute(
            """SELECT namespace, name, arg_max(fields, event_time) FILTER (WHERE event_time <= $since),
                      arg_max(fields, event_time) FILTER (WHERE event_time <= $until),
                      arg_max(job, event_time) FILTER (WHERE event_time > $since AND event_time <= $until)
               FROM schema_versions GROUP BY ALL ORDER BY ALL""", {"since": since, "until": until}).fetchall()
        appeared = con.execute(
            """SELECT kind, namespace, name FROM lineage_nodes WHERE first_seen > $since AND first_seen <= $until
               ORDER BY ALL""", {"since": since, "until": until}).fetchall()
        events = con.execute(
            """SELECT job, event_time, payload FROM lineage_events WHERE job IS NOT NULL AND event_time <= $until
               ORDER BY event_time, event_id""", {"until": until}).fetchall()
    datasets = []
    for namespace, name, before, after, job_name in schemas:
        before, after = json.loads(before) if before else None, json.loads(after) if after else {}
        if before is None or before == after:
            continue
        datasets.append({
            "dataset": f"{namespace}/{name}", "changed_by": job_name,
            "columns_added": [c for c in after if c not in before],
            "columns_removed": [c for c in before if c not in after],
            "types_changed": {c: f"{before[c]} -> {after[c]}" for c in before if c in after and before[c] != after[c]}})
    return {"since": since, "until": until, "datasets_changed": datasets,
            "datasets_appeared": [f"{ns}/{n}" for kind, ns, n in appeared if kind == "dataset"],
            "jobs_appeared": [f"{ns}/{n}" for kind, ns, n in appeared if kind == "job"],
            "jobs_changed": _job_changes(events, since)}


def _job_state(state: dict[str, Any], payload: dict[str, Any]) -> None:
    """Fold one event (in time order) into a job's state: its newest SQL and source, and the inputs and
    outputs of its newest run (a run's events add up; a new run starts afresh)."""
    run = (payload.get("run") or {}).get("runId")
    if run is None or run != state.get("run"):
        state["run"], state["inputs"], state["outputs"] = run, set(), set()
    facets = (payload.get("job") or {}).get("facets") or {}
    if (facets.get("sql") or {}).get("query") is not None:
        state["sql"] = facets["sql"]["query"]
    for facet, key in (("sourceCode", "sourceCode"), ("sourceCodeLocation", "url")):
        if (facets.get(facet) or {}).get(key) is not None:
            state[facet] = facets[facet][key]
    for direction in ("inputs", "outputs"):
        state[direction].update(f"{d['namespace']}/{d['name']}" for d in payload.get(direction) or [])


def _job_changes(events: list[tuple], since: datetime) -> list[dict[str, Any]]:
    before: dict[str, dict[str, Any]] = {}
    after: dict[str, dict[str, Any]] = {}
    for job_name, when, payload in events:
        data = json.loads(payload)
        if when <= since:
            _job_state(before.setdefault(job_name, {}), data)
        # The state as of `until`: what the job did before, updated by what it did since.
        _job_state(after.setdefault(job_name, {}), data)
    changes = []
    for job_name, now in sorted(after.items()):
        then = before.get(job_name)
        if then is None:
            continue
        what = {key: {"before": then.get(key), "after": now.get(key)}
                for key in ("sql", "sourceCode", "sourceCodeLocation") if then.get(key) != now.get(key)}
        for direction in ("inputs", "outputs"):
            for label, names in (("added", now[direction] - then[direction]), ("removed", then[direction] - now[direction])):
                if names:
                    what[f"{direction}_{label}"] = sorted(names)
        if what:
            changes.append({"job": job_name, **what})
    return changes
