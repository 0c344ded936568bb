"""The lineage graph as the workspace index holds it, read as a walk reaches it.

Nodes are columns `(dataset key, field)`, whole datasets (a dataset key, "<namespace>/<name>" as events
name it) and jobs (`JobNode`, for a job that reads what the walk reached but writes nothing known).
Three kinds of hop join them:
- a column edge from a column-lineage facet (DIRECT, or INDIRECT: a filter, join, grouping);
- a job hop (kind JOB) from a dataset a job reads to each dataset it writes, where the job sent no
  column lineage for that output: dataset-level lineage from the job's inputs and outputs, as Marquez
  draws it. Column lineage, where a job sends it, says exactly which inputs an output uses, so it
  replaces the job hop for that output;
- a whole-dataset hop: a JOIN, FILTER or GROUP_BY use changes which rows a job writes, so its output
  dataset is reached as a whole (every column of it, and everything its readers write, is at risk).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from meshpilot.errors import InvalidArgumentError, NotFoundError
from meshpilot.mesh.model import MeshRef
from meshpilot.mesh.store import MeshStore

ColumnKey = tuple[str, str]  # (dataset key, field); dataset key = "<namespace>/<name>"

# INDIRECT uses that decide which rows a job writes (OpenLineage's subtypes): a change to such a column
# reaches the job's whole output. SORT, WINDOW and CONDITIONAL stay with the output column they feed.
ROW_DECIDING = ("JOIN", "FILTER", "GROUP_BY")


@dataclass(frozen=True)
class JobNode:
    """A job reached by a walk: it reads what was reached and writes nothing the events name."""

    name: str  # "<namespace>/<name>"


@dataclass
class Edge:
    source: Any  # a column key, or a dataset key for hops from a whole dataset
    target: Any  # a column key, a dataset key (the whole dataset) or a JobNode
    kind: str  # DIRECT, INDIRECT or JOB
    subtype: str
    job: str

    @property
    def target_dataset(self) -> str | None:
        if isinstance(self.target, tuple):
            return self.target[0]
        return self.target if isinstance(self.target, str) else None


class BatchLookup(Mapping[Any, Any]):
    """A mapping read from the index one key (or one batch of keys) at a time, and kept once read.
    Walking a lineage graph touches the nodes it reaches, not the whole graph."""

    def __init__(self, read_many: Callable[[list[Any]], dict[Any, Any]], missing: Any = None):
        self._read_many = read_many
        self._missing = missing
        self._known: dict[Any, Any] = {}

    def prefetch(self, keys: Iterable[Any]) -> None:
        wanted = list(dict.fromkeys(k for k in keys if k not in self._known))
        if wanted:
            found = self._read_many(wanted)
            for key in wanted:
                self._known[key] = found.get(key, self._missing)

    def __getitem__(self, key: Any) -> Any:
        self.prefetch([key])
        value = self._known[key]
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[Any]:
        return (k for k, v in self._known.items() if v is not None)

    def __len__(self) -> int:
        return sum(1 for v in self._known.values() if v is not None)


def find_event_datasets(con: Any, text: str, kind: str = "dataset") -> list[tuple[str, str]]:
    """The (namespace, name) of the datasets (or jobs) events name that `text` can mean: namespace and
    name joined by '/' or as in Marquez's node ids ('dataset:<namespace>:<name>', 'job:...'), or a name
    alone. Namespaces and names may themselves hold ':' and '/', so every split is tried against what is
    known; an exact split wins over a bare name."""
    candidates: set[tuple[str, str]] = set()
    prefix = f"{kind}:"
    body, separator = (text[len(prefix):], ":") if text.startswith(prefix) else (text, "/")
    for at in [i for i, ch in enumerate(body) if ch == separator]:
        candidates.add((body[:at], body[at + 1:]))
    rows = con.execute(
        """SELECT DISTINCT namespace, name FROM lineage_nodes WHERE kind = $kind AND (name = $text
             OR list_contains($pairs, struct_pack(ns := namespace, n := name)))
           ORDER BY ALL""",
        {"kind": kind, "text": body, "pairs": [{"ns": ns, "n": name} for ns, name in candidates]}).fetchall()
    exact = [(ns, name) for ns, name in rows if (ns, name) in candidates]
    return exact or [(ns, name) for ns, name in rows if name == body]


_FRONTIER = "(SELECT unnest($ns) AS ns, unnest($name) AS name, unnest(range(len($ns))) AS i) f"


class LineageGraph:
    """Column edges, job inputs and outputs and the datasets events name, with the mesh entities they
    belong to, read from the workspace index a frontier of nodes at a time, so a question costs what it
    reaches.

    `mesh_ref` maps a dataset key to the catalog dataset it is (a catalog dataset with no namespace
    matches any), `dataset_key` the other way.
    """

    def __init__(self, connection: Any):  # a DuckDB cursor of its own over the index
        self._con = connection
        self._parts: dict[str, tuple[str, str]] = {}  # dataset key -> (namespace, name)
        self.down = BatchLookup(lambda nodes: self._column_edges(nodes, downstream=True), missing=())
        self.up = BatchLookup(lambda nodes: self._column_edges(nodes, downstream=False), missing=())
        self.whole_down = BatchLookup(lambda keys: self._whole_dataset_edges(keys, downstream=True), missing=())
        self.whole_up = BatchLookup(lambda keys: self._whole_dataset_edges(keys, downstream=False), missing=())
        self.jobs_down = BatchLookup(lambda keys: self._job_hops(keys, downstream=True), missing=())
        self.jobs_up = BatchLookup(lambda keys: self._job_hops(keys, downstream=False), missing=())
        self.dataset_down = BatchLookup(lambda keys: self._dataset_edges(keys, downstream=True), missing=())
        self.dataset_up = BatchLookup(lambda keys: self._dataset_edges(keys, downstream=False), missing=())
        self.mesh_ref = BatchLookup(self._mesh_refs)
        self.dataset_key = BatchLookup(self._dataset_keys)
        self.columns = BatchLookup(self._columns, missing=[])  # mesh:// dataset ref -> its columns, in order
        self.fields = BatchLookup(self._fields, missing=[])  # dataset key -> its schema facet's fields
        self.products = BatchLookup(self._products, missing={})  # product ref -> owner, consumers, contract

    @classmethod
    def from_store(cls, store: MeshStore) -> LineageGraph:
        return cls(store.cursor())

    def column(self, namespace: str, name: str, field: str) -> ColumnKey:
        """The node of a column as events name it (namespace, dataset name, field)."""
        return self.key(namespace, name), field

    def key(self, namespace: str | None, name: str) -> str:
        key = f"{namespace or ''}/{name}"
        self._parts.setdefault(key, (namespace or "", name))
        return key

    def parts(self, key: str) -> tuple[str, str]:
        return self._parts.get(key) or ("", key)

    def _frontier(self, keys: list[str]) -> dict[str, list]:
        parts = [self.parts(k) for k in keys]
        return {"ns": [p[0] for p in parts], "name": [p[1] for p in parts]}

    # --- reading ---------------------------------------------------------------------------------------

    def _edge(self, row: tuple) -> Edge:
        s_ns, s_name, s_field, t_ns, t_name, t_field, kind, subtype, _, job = row[:10]  # then the keys
        target_dataset = self.key(t_ns, t_name)
        return Edge((self.key(s_ns, s_name), s_field), (target_dataset, t_field) if t_field else target_dataset,
                    kind or "DIRECT", subtype or "", job)

    def _column_edges(self, nodes: list[ColumnKey], downstream: bool) -> dict[ColumnKey, list[Edge]]:
        frontier = self._frontier([n[0] for n in nodes])
        frontier["field"] = [n[1] for n in nodes]
        keyed = """(SELECT hash(ns, name, field) AS k, hash(ns, name) AS d, i FROM (SELECT unnest($ns) AS ns,
                       unnest($name) AS name, unnest($field) AS field, unnest(range(len($ns))) AS i)) f"""
        if downstream:
            query = f"SELECT e.*, f.i FROM column_edges e JOIN {keyed} ON e.source_key = f.k"
        else:
            # Upstream, a dataset-level use (a filter or join key with no output field) decides the rows
            # of every column of its output.
            query = f"""SELECT e.*, f.i FROM column_edges e JOIN {keyed} ON e.target_key = f.k
                        UNION ALL
                        SELECT e.*, f.i FROM column_edges e JOIN {keyed} ON e.target_dataset = f.d
                        WHERE e.target_field IS NULL"""
        found: dict[ColumnKey, list[Edge]] = {}
        for row in self._con.execute(f"{query} ORDER BY ALL", frontier).fetchall():
            node = nodes[row[-1]]
            namespace, name, field = row[0:3] if downstream else row[3:6]
            # The integer keys are hashes: the names decide (a collision must not add an edge).
            if (namespace, name) == self.parts(node[0]) and (field == node[1] or (field is None and not downstream)):
                found.setdefault(node, []).append(self._edge(row))
        return found

    def _whole_dataset_edges(self, keys: list[str], downstream: bool) -> dict[str, list[Edge]]:
        """The column edges from (downstream) or into (upstream) any column of these datasets."""
        mine = "source" if downstream else "target"
        rows = self._con.execute(
            f"""SELECT e.*, f.i FROM column_edges e
                JOIN (SELECT hash(ns, name) AS d, ns, name, i FROM {_FRONTIER}) f ON e.{mine}_dataset = f.d
                ORDER BY ALL""", self._frontier(keys)).fetchall()
        found: dict[str, list[Edge]] = {}
        offset = 0 if downstream else 3
        for row in rows:
            if tuple(row[offset:offset + 2]) == self.parts(keys[row[-1]]):
                found.setdefault(keys[row[-1]], []).append(self._edge(row))
        return found

    def _job_hops(self, keys: list[str], downstream: bool) -> dict[str, list[tuple[str, str | None, bool]]]:
        """For each dataset: (job, dataset on the other side or None, whether the job sent column lineage
        for its output) for each job that reads it (downstream) or writes it (upstream). A job that reads
        and writes nothing else gives one row with None."""
        rows = self._con.execute(
            f"""SELECT f.i, h.job, h.other_namespace, h.other_name, h.precise FROM job_hops h
                JOIN (SELECT hash(ns, name) AS d, ns, name, i FROM {_FRONTIER}) f ON h.dataset = f.d
                WHERE h.direction = $direction AND h.namespace = f.ns AND h.name = f.name ORDER BY ALL""",
            {**self._frontier(keys), "direction": "down" if downstream else "up"}).fetchall()
        found: dict[str, list[tuple[str, str | None, bool]]] = {}
        for i, job, namespace, name, precise in rows:
            other_key = self.key(namespace, name) if name is not None else None
            if other_key != keys[i]:
                found.setdefault(keys[i], []).append((job, other_key, precise))
        return found

    def _dataset_edges(self, keys: list[str], downstream: bool) -> dict[str, list[str]]:
        mine, other = ("source", "target") if downstream else ("target", "source")
        rows = self._con.execute(
            f"""SELECT e.{other}_namespace, e.{other}_name, f.i FROM dataset_edges e JOIN {_FRONTIER}
                  ON e.{mine}_namespace = f.ns AND e.{mine}_name = f.name
                ORDER BY ALL""", self._frontier(keys)).fetchall()
        found: dict[str, list[str]] = {}
        for namespace, name, i in rows:
            neighbours = found.setdefault(keys[i], [])
            key = self.key(namespace, name)
            if key not in neighbours:
                neighbours.append(key)
        return found

    def _mesh_refs(self, keys: list[str]) -> dict[str, str]:
        # The catalog dataset of that name whose namespace matches (or that has none); of several, the
        # last by reference (row order changes with incremental updates, the answer must not).
        rows = self._con.execute(
            f"""SELECT f.i, max(d.ref) FROM datasets d JOIN {_FRONTIER}
                 ON d.qualified_name = f.name AND (d.namespace IS NULL OR d.namespace = f.ns)
               GROUP BY f.i""", self._frontier(keys)).fetchall()
        return {keys[i]: ref for i, ref in rows}

    def _dataset_keys(self, refs: list[str]) -> dict[str, str]:
        found = {}
        for ref, name, namespace in self._con.execute(
                "SELECT ref, qualified_name, namespace FROM datasets WHERE list_contains($refs, ref)",
                {"refs": refs}).fetchall():
            if namespace is None:
                # As events name it: the (first, alphabetically) namespace of a dataset of that name.
                row = self._con.execute(
                    "SELECT min(namespace) FROM lineage_nodes WHERE kind = 'dataset' AND name = $n",
                    {"n": name}).fetchone()
                namespace = row[0]
            found[ref] = self.key(namespace, name)
        return found

    def _columns(self, refs: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for dataset_ref, names in self._con.execute(
                "SELECT dataset_ref, list(name ORDER BY position) FROM columns WHERE list_contains($refs, dataset_ref) "
                "GROUP BY dataset_ref", {"refs": refs}).fetchall():
            found[dataset_ref] = names
        return found

    def _fields(self, keys: list[str]) -> dict[str, list[str]]:
        found = {}
        for i, fields in self._con.execute(
                f"""SELECT f.i, json_extract(n.facets, '$.schema.fields') FROM lineage_nodes n JOIN {_FRONTIER}
                      ON n.kind = 'dataset' AND n.namespace = f.ns AND n.name = f.name""",
                self._frontier(keys)).fetchall():
            names = [str(f["name"]) for f in json.loads(fields or "[]") if isinstance(f, dict) and "name" in f]
            found[keys[i]] = list(dict.fromkeys(names))
        return found

    def _products(self, refs: list[str]) -> dict[str, dict[str, Any]]:
        found = {}
        for ref, owner, contract, consumers in self._con.execute(
                "SELECT ref, owner, contract, consumers FROM products "
                "WHERE list_contains($refs, ref)", {"refs": refs}).fetchall():
            found[ref] = {"owner": owner, "consumers": [c["name"] for c in json.loads(consumers or "[]")],
                          "contract": contract}
        return found

    def _in_edges(self, key: str, column: str) -> bool:
        """Whether column lineage names this column (producers' schema facets can leave columns out)."""
        namespace, name = self.parts(key)
        return self._con.execute(
            """SELECT count(*) > 0 FROM column_edges WHERE (source_namespace = $ns AND source_name = $n
                 AND source_field = $c) OR (target_namespace = $ns AND target_name = $n AND target_field = $c)""",
            {"ns": namespace, "n": name, "c": column}).fetchone()[0]

    def columns_of(self, key: str) -> list[str]:
        """A dataset's columns: its catalog dataset's, else the newest schema facet's."""
        ref = self.mesh_ref.get(key)
        return (self.columns.get(ref, []) if ref else []) or self.fields.get(key, [])

    # --- naming ----------------------------------------------------------------------------------------

    def label(self, dataset_key: str, column: str | None = None) -> str:
        ref = self.mesh_ref.get(dataset_key)
        if ref:
            return str(MeshRef.parse(ref).with_column(column)) if column else ref
        return f"{dataset_key}#{column}" if column else dataset_key

    def name(self, node: Any) -> str:
        if isinstance(node, JobNode):
            return f"job {node.name}"
        return self.label(*node) if isinstance(node, tuple) else self.label(node)

    def resolve(self, text: str, column: str | None = None) -> tuple[str, str | None]:
        """A dataset key (and column) from a mesh:// dataset or column reference, or from a dataset as
        events name it: `<namespace>/<name>`, Marquez's `dataset:<namespace>:<name>`, or its name alone
        when one namespace has it (each optionally followed by #<column>)."""
        if text.startswith("mesh://"):
            key, column = self._resolve_mesh(text, column)
        else:
            key, column = self._resolve_event_name(text, column)
        known = self.columns_of(key)
        if column and known and column not in known and not self._in_edges(key, column):
            close = difflib.get_close_matches(column, known, n=1)
            raise NotFoundError(f"No column '{column}' in {self.label(key)}.",
                                hint=f"Did you mean '{close[0]}'?" if close else f"Its columns: {', '.join(known)}.")
        return key, column

    def _resolve_mesh(self, urn: str, column: str | None) -> tuple[str, str | None]:
        ref = MeshRef.parse(urn)
        if ref.dataset is None:
            raise InvalidArgumentError(f"{urn} names a product; lineage starts from a dataset or a column.",
                                       hint="Write mesh://<domain>/<product>/<dataset>[#<column>].")
        dataset_ref = str(ref.dataset_ref())
        key = self.dataset_key.get(dataset_ref)
        if key is None:
            raise NotFoundError(f"No dataset {dataset_ref} in this workspace.",
                                hint="List datasets with `meshpilot datasets list`.")
        return key, column or ref.column

    def _resolve_event_name(self, text: str, column: str | None) -> tuple[str, str | None]:
        attempts = [(text, column)]
        if column is None and "#" in text:
            dataset, _, field = text.rpartition("#")
            attempts.insert(0, (dataset, field))
        for dataset, field in attempts:
            refs = [r for (r,) in self._con.execute(
                "SELECT ref FROM datasets WHERE qualified_name = $t OR name = $t ORDER BY ref", {"t": dataset}).fetchall()]
            if len(refs) == 1 and self.dataset_key.get(refs[0]):
                return self.dataset_key[refs[0]], field
            found = self.find_datasets(dataset)
            if len(found) == 1:
                return self.key(*found[0]), field
            if len(found) > 1:
                names = ", ".join(f"{ns}/{name}" for ns, name in found[:5])
                raise InvalidArgumentError(f"'{dataset}' names {len(found)} datasets: {names}.",
                                           hint="Write <namespace>/<name> or dataset:<namespace>:<name>.")
        raise NotFoundError(f"No dataset '{text}' in this workspace's catalog or lineage.",
                            hint="Write mesh://<domain>/<product>/<dataset>, <namespace>/<name> as events name it, "
                                 "or dataset:<namespace>:<name>; `meshpilot datasets list --lineage` lists them.")

    def find_datasets(self, text: str) -> list[tuple[str, str]]:
        return find_event_datasets(self._con, text)

    # --- walking ---------------------------------------------------------------------------------------

    def neighbours(self, node: Any, downstream: bool) -> list[Edge]:
        """The hops out of a node, in the walk's direction (see the module's docstring)."""
        if isinstance(node, JobNode):
            return []
        hops: list[Edge] = []
        if isinstance(node, tuple):
            dataset, whole = node[0], False
            for edge in (self.down if downstream else self.up).get(node, ()):
                hops.append(edge)
                if downstream and edge.kind == "INDIRECT" and edge.subtype in ROW_DECIDING \
                        and isinstance(edge.target, tuple):
                    hops.append(Edge(node, edge.target[0], edge.kind, edge.subtype, edge.job))
        else:
            dataset, whole = node, True
            hops += (self.whole_down if downstream else self.whole_up).get(node, ())
        for job, other, precise in (self.jobs_down if downstream else self.jobs_up).get(dataset, ()):
            if precise and not whole:
                continue  # the job's column lineage says which columns it uses: the column edges above
            if downstream:
                hops.append(Edge(node, other if other is not None else JobNode(job), "JOB", "READS", job))
            elif other is not None:
                hops.append(Edge(other, node, "JOB", "READS", job))
        return hops

    def prefetch(self, level: list[Any], downstream: bool) -> None:
        columns = [n for n in level if isinstance(n, tuple)]
        wholes = [n for n in level if isinstance(n, str)]
        (self.down if downstream else self.up).prefetch(columns)
        (self.whole_down if downstream else self.whole_up).prefetch(wholes)
        (self.jobs_down if downstream else self.jobs_up).prefetch([n[0] for n in columns] + wholes)

    def walk(self, starts: list[Any], downstream: bool, depth: int | None) -> dict[Any, tuple[Any, Edge | None, int]]:
        """Breadth-first from `starts` (column keys and dataset keys): node -> (previous node, edge taken,
        hops)."""
        seen: dict[Any, tuple[Any, Edge | None, int]] = {s: (None, None, 0) for s in starts}
        # Level by level, in the order nodes were reached: the same order as one queue, with one query
        # per kind of hop per level for all its nodes.
        level, hops = list(dict.fromkeys(starts)), 0
        while level and (depth is None or hops < depth):
            self.prefetch(level, downstream)
            reached = []
            for node in level:
                for edge in self.neighbours(node, downstream):
                    nxt = edge.target if downstream else edge.source
                    if nxt not in seen:
                        seen[nxt] = (node, edge, hops + 1)
                        reached.append(nxt)
            level, hops = reached, hops + 1
        return seen
