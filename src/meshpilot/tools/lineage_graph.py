"""The lineage graph of the workspace index: how a dataset or column is named and found, and what the
mesh knows about it (its catalog dataset, columns, product), read from the index as a question needs it.

A walk over the whole graph runs in memory (`lineage_reach`); this module resolves what a user writes
to the node a walk starts at, and gives the few lookups other tools make one hop at a time (incident
triage: the column edges into a column).

Three kinds of hop join the nodes (columns, whole datasets, jobs):
- a column edge from a column-lineage facet (DIRECT, or INDIRECT: a filter, join, grouping);
- a job hop (kind JOB) from a dataset a job reads to each dataset it writes, where the job sent no
  column lineage for that output: dataset-level lineage from the job's inputs and outputs, as Marquez
  draws it. Column lineage, where a job sends it, says exactly which inputs an output uses, so it
  replaces the job hop for that output;
- a whole-dataset hop: a JOIN, FILTER or GROUP_BY use changes which rows a job writes, so its output
  dataset is reached as a whole; from a dataset reached as a whole, every dataset a job writes from it
  is reached as a whole too.
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
from meshpilot.tools import lineage_reach
from meshpilot.tools.lineage_reach import LineageArrays

ColumnKey = tuple[str, str]  # (dataset key, field); dataset key = "<namespace>/<name>"

@dataclass
class Edge:
    source: Any  # a column key
    target: Any  # a column key, or a dataset key (the whole dataset)
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


def _splits(text: str, kind: str = "dataset") -> tuple[str, list[tuple[str, str]]]:
    """The name `text` gives (without a Marquez node id's prefix) and every (namespace, name) it can be
    split into."""
    prefix = f"{kind}:"
    body, separator = (text[len(prefix):], ":") if text.startswith(prefix) else (text, "/")
    return body, sorted({(body[:at], body[at + 1:]) for at, ch in enumerate(body) if ch == separator})


def find_event_datasets(con: Any, text: str, kind: str = "dataset") -> list[tuple[str, str]]:
    """The (namespace, name) of the datasets (or jobs) events name that `text` can mean: namespace and
    name joined by '/' or as in Marquez's node ids ('dataset:<namespace>:<name>', 'job:...'), or a name
    alone. Namespaces and names may themselves hold ':' and '/', so every split is tried against what is
    known; an exact split wins over a bare name."""
    body, pairs = _splits(text, kind)
    rows = con.execute(
        """SELECT DISTINCT namespace, name FROM (
             SELECT n.namespace, n.name FROM lineage_nodes n
               JOIN (SELECT unnest($ns) AS ns, unnest($names) AS name) p ON n.namespace = p.ns AND n.name = p.name
               WHERE n.kind = $kind
             UNION ALL SELECT namespace, name FROM lineage_nodes WHERE kind = $kind AND name = $text)
           ORDER BY ALL""",
        {"kind": kind, "text": body, "ns": [p[0] for p in pairs], "names": [p[1] for p in pairs]}).fetchall()
    exact = [(ns, name) for ns, name in rows if (ns, name) in set(pairs)]
    return exact or [(ns, name) for ns, name in rows if name == body]


_FRONTIER = "(SELECT unnest($ns) AS ns, unnest($name) AS name, unnest(range(len($ns))) AS i) f"


class LineageGraph:
    """The datasets events name and the mesh entities they belong to, read from the workspace index a
    frontier of nodes at a time (a question costs what it reaches), and the whole graph in memory for
    walks (`arrays`).

    `mesh_ref` maps a dataset key to the catalog dataset it is (a catalog dataset with no namespace
    matches any), `dataset_key` the other way.
    """

    def __init__(self, connection: Any, index_path: Any = None):  # a DuckDB cursor of its own over the index
        self._con = connection
        self._index_path = index_path
        self._arrays: LineageArrays | None = None
        self._parts: dict[str, tuple[str, str]] = {}  # dataset key -> (namespace, name)
        self.up = BatchLookup(self._column_edges_up, missing=())  # column -> the column edges into it
        self.mesh_ref = BatchLookup(self._mesh_refs)
        self.dataset_key = BatchLookup(self._dataset_keys)
        self.columns = BatchLookup(self._columns, missing=[])  # mesh:// dataset ref -> its columns, in order
        self.fields = BatchLookup(self._fields, missing=[])  # dataset key -> its schema facet's fields
        self.products = BatchLookup(self._products, missing={})  # product ref -> owner, consumers, contract

    @classmethod
    def from_store(cls, store: MeshStore) -> LineageGraph:
        return cls(store.cursor(), store.path)

    def arrays(self) -> LineageArrays:
        """The whole graph in memory, for walks (read once per process and index file)."""
        if self._arrays is None:
            self._arrays = lineage_reach.load(self._con, self._index_path)
        return self._arrays

    def node(self, key: str, column: str | None) -> int | None:
        """The node a walk from this dataset key (and column) starts at; None where no lineage names it."""
        arrays = self.arrays()
        dataset = arrays.find_dataset(*self.parts(key))
        if dataset is None:
            return None
        if column is None:
            return arrays.start(dataset)
        node = arrays.find_column(dataset, column)
        return node if node is not None else arrays.bare(dataset)

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

    def _column_edges_up(self, nodes: list[ColumnKey]) -> dict[ColumnKey, list[Edge]]:
        frontier = self._frontier([n[0] for n in nodes])
        frontier["field"] = [n[1] for n in nodes]
        keyed = """(SELECT hash(ns, name, field) AS k, hash(ns, name) AS d, i FROM (SELECT unnest($ns) AS ns,
                       unnest($name) AS name, unnest($field) AS field, unnest(range(len($ns))) AS i)) f"""
        # A dataset-level use (a filter or join key with no output field) decides the rows of every column
        # of its output.
        query = f"""SELECT e.*, f.i FROM column_edges e JOIN {keyed} ON e.target_key = f.k
                    UNION ALL
                    SELECT e.*, f.i FROM column_edges e JOIN {keyed} ON e.target_dataset = f.d
                    WHERE e.target_field IS NULL"""
        found: dict[ColumnKey, list[Edge]] = {}
        for row in self._con.execute(f"{query} ORDER BY ALL", frontier).fetchall():
            node = nodes[row[-1]]
            namespace, name, field = row[3:6]
            # The integer keys are hashes: the names decide (a collision must not add an edge).
            if (namespace, name) == self.parts(node[0]) and field in (node[1], None):
                found.setdefault(node, []).append(self._edge(row))
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

    def _known_column(self, key: str, column: str | None) -> tuple[list[str], bool]:
        """The columns a dataset declares, and whether column lineage names `column` (producers' schema
        facets can leave columns out)."""
        if column is None:
            return [], False
        node = self.node(key, column)
        if node is None:  # a catalog dataset no lineage names
            return self.columns_of(key), False
        arrays = self.arrays()
        return arrays.declared_columns(arrays.dataset_of_node(node)), arrays.kind_of(node) == "column"

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

    def resolve(self, text: str, column: str | None = None) -> tuple[str, str | None]:
        """A dataset key (and column) from a mesh:// dataset or column reference, or from a dataset as
        events name it: `<namespace>/<name>`, Marquez's `dataset:<namespace>:<name>`, or its name alone
        when one namespace has it (each optionally followed by #<column>)."""
        if text.startswith("mesh://"):
            key, column = self._resolve_mesh(text, column)
        else:
            key, column = self._resolve_event_name(text, column)
        known, named = self._known_column(key, column)
        if column and known and column not in known and not named:
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
        # An exact (namespace, name) split, looked up in memory, spares the index a scan of every name.
        exact = [pair for pair in _splits(text)[1] if self.arrays().find_dataset(*pair) is not None]
        if exact:
            return exact
        return find_event_datasets(self._con, text)
