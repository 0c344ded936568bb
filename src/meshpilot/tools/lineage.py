"""Lineage impact analysis over the OpenLineage events in the workspace, down to columns.

`impact` walks downstream from a dataset or column and, for a proposed change, classifies every
column, dataset, data product, owner team, consumer and contract it reaches as broken, at risk or
unaffected, each with the path that explains why. `upstream` walks the other way (root causes),
`paths` lists the routes between two datasets or columns. Every result carries a Mermaid diagram.

How a change propagates (each hop is a column-lineage edge; INDIRECT edges are filters, joins,
groupings that read a column without copying it):
- drop or rename: a column reached through DIRECT edges only loses its source: broken; anything
  reached through an INDIRECT edge is at risk (its job fails or its rows change);
- type: a DIRECT IDENTITY chain carries the new type into the column: broken; transformations and
  indirect uses are at risk;
- semantics: everything reached is at risk;
- no change given: everything reached is affected.
A dataset is as bad as its worst reached column; a product as its worst dataset; its owner team,
consumers and contract share the product's status.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from meshpilot.errors import InvalidArgumentError, NotFoundError
from meshpilot.mesh.model import MeshRef
from meshpilot.mesh.store import MeshStore

CHANGES = ("drop", "rename", "type", "semantics")
STATUS_ORDER = {"broken": 3, "at_risk": 2, "affected": 1, "unaffected": 0}

ColumnKey = tuple[str, str]  # (dataset key, field); dataset key = "<namespace>/<name>"


class ImpactItem(BaseModel):
    ref: str
    kind: str  # column, dataset, product, team, consumer, contract
    status: str  # broken, at_risk, affected, unaffected
    reason: str
    path: list[str] = []


class LineageResult(BaseModel):
    source: str
    change: str | None = None
    items: list[ImpactItem]
    counts: dict[str, int]
    mermaid: str
    citations: list[str]


@dataclass
class _Edge:
    source: ColumnKey
    target: ColumnKey | None  # None: the whole target dataset (a dataset-level INDIRECT use)
    target_dataset: str
    kind: str  # DIRECT or INDIRECT
    subtype: str
    job: str


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


class LineageGraph:
    """Column and dataset edges from the workspace index, with the mesh entities they belong to, read
    as a walk reaches them (a frontier of nodes per query), so a question costs what it reaches.

    A dataset is keyed "<namespace>/<name>" as events name it; `mesh_ref` maps a key to the catalog
    dataset it is (a catalog dataset with no namespace matches any), `dataset_key` the other way.
    """

    def __init__(self, connection: Any):  # a DuckDB cursor of its own over the index
        self._con = connection
        self._parts: dict[str, tuple[str, str]] = {}  # dataset key -> (namespace, name)
        self.down = BatchLookup(lambda nodes: self._column_edges(nodes, downstream=True), missing=())
        self.up = BatchLookup(lambda nodes: self._column_edges(nodes, downstream=False), missing=())
        self.dataset_down = BatchLookup(lambda keys: self._dataset_edges(keys, downstream=True), missing=())
        self.dataset_up = BatchLookup(lambda keys: self._dataset_edges(keys, downstream=False), missing=())
        self.mesh_ref = BatchLookup(self._mesh_refs)
        self.dataset_key = BatchLookup(self._dataset_keys)
        self.columns = BatchLookup(self._columns, missing=[])  # mesh:// dataset ref -> its columns, in order
        self.products = BatchLookup(self._products, missing={})  # product ref -> owner, consumers, contract

    @classmethod
    def from_store(cls, store: MeshStore) -> LineageGraph:
        return cls(store.cursor())

    def column(self, namespace: str, name: str, field: str) -> ColumnKey:
        """The node of a column as events name it (namespace, dataset name, field)."""
        return self._key(namespace, name), field

    def _key(self, namespace: str | None, name: str) -> str:
        key = f"{namespace or ''}/{name}"
        self._parts.setdefault(key, (namespace or "", name))
        return key

    def _frontier(self, keys: list[str]) -> dict[str, list]:
        parts = [self._parts.get(k) or ("", k) for k in keys]
        return {"ns": [p[0] for p in parts], "name": [p[1] for p in parts]}

    def _column_edges(self, nodes: list[ColumnKey], downstream: bool) -> dict[ColumnKey, list[_Edge]]:
        mine = "source" if downstream else "target"
        frontier = self._frontier([n[0] for n in nodes])
        frontier["field"] = [n[1] for n in nodes]
        rows = self._con.execute(
            f"""SELECT e.*, f.i FROM column_edges e
                JOIN (SELECT unnest($ns) AS ns, unnest($name) AS name, unnest($field) AS field,
                             unnest(range(len($ns))) AS i) f
                  ON e.{mine}_namespace = f.ns AND e.{mine}_name = f.name AND e.{mine}_field = f.field
                ORDER BY ALL""", frontier).fetchall()
        found: dict[ColumnKey, list[_Edge]] = {}
        for s_ns, s_name, s_field, t_ns, t_name, t_field, kind, subtype, _, job, i in rows:
            target_dataset = self._key(t_ns, t_name)
            edge = _Edge((self._key(s_ns, s_name), s_field), (target_dataset, t_field) if t_field else None,
                         target_dataset, kind or "DIRECT", subtype or "", job)
            found.setdefault(nodes[i], []).append(edge)
        return found

    def _dataset_edges(self, keys: list[str], downstream: bool) -> dict[str, list[str]]:
        mine, other = ("source", "target") if downstream else ("target", "source")
        rows = self._con.execute(
            f"""SELECT e.{other}_namespace, e.{other}_name, f.i FROM dataset_edges e
                JOIN (SELECT unnest($ns) AS ns, unnest($name) AS name, unnest(range(len($ns))) AS i) f
                  ON e.{mine}_namespace = f.ns AND e.{mine}_name = f.name
                ORDER BY ALL""", self._frontier(keys)).fetchall()
        found: dict[str, list[str]] = {}
        for namespace, name, i in rows:
            neighbours = found.setdefault(keys[i], [])
            key = self._key(namespace, name)
            if key not in neighbours:
                neighbours.append(key)
        return found

    def _mesh_refs(self, keys: list[str]) -> dict[str, str]:
        # The catalog dataset of that name whose namespace matches (or that has none); of several, the
        # last by reference (row order changes with incremental updates, the answer must not).
        rows = self._con.execute(
            """SELECT f.i, max(d.ref) FROM datasets d
               JOIN (SELECT unnest($ns) AS ns, unnest($name) AS name, unnest(range(len($ns))) AS i) f
                 ON d.qualified_name = f.name AND (d.namespace IS NULL OR d.namespace = f.ns)
               GROUP BY f.i""", self._frontier(keys)).fetchall()
        return {keys[i]: ref for i, ref in rows}

    def _dataset_keys(self, refs: list[str]) -> dict[str, str]:
        found = {}
        for ref, name, namespace in self._con.execute(
                "SELECT ref, qualified_name, namespace FROM datasets WHERE list_contains($refs, ref)",
                {"refs": refs}).fetchall():
            if namespace is None:
                # As events name it: the (first, alphabetically) namespace of the edges naming it, if any.
                row = self._con.execute(
                    """SELECT min(ns) FROM (
                         SELECT source_namespace AS ns FROM column_edges WHERE source_name = $n
                         UNION ALL SELECT target_namespace FROM column_edges WHERE target_name = $n
                         UNION ALL SELECT source_namespace FROM dataset_edges WHERE source_name = $n
                         UNION ALL SELECT target_namespace FROM dataset_edges WHERE target_name = $n)""",
                    {"n": name}).fetchone()
                namespace = row[0]
            found[ref] = self._key(namespace, name)
        return found

    def _columns(self, refs: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for dataset_ref, names in self._con.execute(
                "SELECT dataset_ref, list(name ORDER BY position) FROM columns WHERE list_contains($refs, dataset_ref) "
                "GROUP BY dataset_ref", {"refs": refs}).fetchall():
            found[dataset_ref] = names
        return found

    def _products(self, refs: list[str]) -> dict[str, dict[str, Any]]:
        found = {}
        for ref, owner, contract, consumers in self._con.execute(
                "SELECT ref, owner, contract, consumers FROM products "
                "WHERE list_contains($refs, ref)", {"refs": refs}).fetchall():
            found[ref] = {"owner": owner, "consumers": [c["name"] for c in json.loads(consumers or "[]")],
                          "contract": contract}
        return found

    # --- naming --------------------------------------------------------------------------------------

    def label(self, dataset_key: str, column: str | None = None) -> str:
        ref = self.mesh_ref.get(dataset_key)
        if ref:
            return str(MeshRef.parse(ref).with_column(column)) if column else ref
        return f"{dataset_key}#{column}" if column else dataset_key

    def resolve(self, urn: str, column: str | None) -> tuple[str, str | None]:
        """A dataset key (and column) from a mesh:// dataset or column reference."""
        ref = MeshRef.parse(urn)
        if ref.dataset is None:
            raise InvalidArgumentError(f"{urn} names a product; impact starts from a dataset or a column.",
                                       hint="Write mesh://<domain>/<product>/<dataset>[#<column>].")
        column = column or ref.column
        dataset_ref = str(ref.dataset_ref())
        key = self.dataset_key.get(dataset_ref)
        if key is None:
            raise NotFoundError(f"No dataset {dataset_ref} in this workspace.",
                                hint="List datasets with `meshpilot datasets list`.")
        known = self.columns.get(dataset_ref, [])
        if column and known and column not in known:
            close = difflib.get_close_matches(column, known, n=1)
            raise NotFoundError(f"No column '{column}' in {dataset_ref}.",
                                hint=f"Did you mean '{close[0]}'?" if close else f"Its columns: {', '.join(known)}.")
        return key, column

    # --- walking ---------------------------------------------------------------------------------------

    def walk(self, starts: list[ColumnKey], downstream: bool, depth: int | None) -> dict[Any, tuple[Any, _Edge | None, int]]:
        """Breadth-first from `starts`: node -> (previous node, edge taken, hops). Nodes are column keys,
        or dataset keys for whole-dataset (INDIRECT) uses."""
        seen: dict[Any, tuple[Any, _Edge | None, int]] = {s: (None, None, 0) for s in starts}
        edges_of = self.down if downstream else self.up
        # Level by level, in the order nodes were reached: the same order as one queue, with one query
        # per level for the edges of all its nodes.
        level, hops = list(dict.fromkeys(starts)), 0
        while level and (depth is None or hops < depth):
            level = [n for n in level if isinstance(n, tuple)]
            edges_of.prefetch(level)
            reached = []
            for node in level:
                for edge in edges_of.get(node, ()):
                    nxt = (edge.target or edge.target_dataset) if downstream else edge.source
                    if nxt not in seen:
                        seen[nxt] = (node, edge, hops + 1)
                        reached.append(nxt)
            level, hops = reached, hops + 1
        return seen


def _path(seen: dict, node: Any, graph: LineageGraph, downstream: bool = True) -> list[str]:
    hops = []
    while seen[node][0] is not None:
        previous, edge, _ = seen[node]
        a, b = (previous, node) if downstream else (node, previous)
        hops.append(f"{_name(graph, a)} -[{edge.kind} {edge.subtype} by {edge.job}]-> {_name(graph, b)}".replace("  ", " "))
        node = previous
    return list(reversed(hops))


def _name(graph: LineageGraph, node: Any) -> str:
    return graph.label(*node) if isinstance(node, tuple) else graph.label(node)


def _status(change: str | None, seen: dict, node: Any) -> str:
    if change is None:
        return "affected"
    kinds = []
    while seen[node][0] is not None:
        _, edge, _ = seen[node]
        kinds.append((edge.kind, edge.subtype))
        node = seen[node][0]
    if not isinstance(node, tuple):  # unreachable: starts are columns
        return "at_risk"
    indirect = any(kind == "INDIRECT" for kind, _ in kinds)
    if change in ("drop", "rename"):
        return "at_risk" if indirect else "broken"
    if change == "type":
        return "broken" if all(k == ("DIRECT", "IDENTITY") for k in kinds) else "at_risk"
    return "at_risk"


def impact(urn: str, column: str | None = None, change: str | None = None, depth: int | None = None,
           workspace: Any = None, graph: LineageGraph | None = None) -> LineageResult:
    """Everything downstream of a dataset or column, classified for a proposed change."""
    if change is not None and change not in CHANGES:
        raise InvalidArgumentError(f"Unknown change '{change}'.", hint=f"Use one of: {', '.join(CHANGES)}.")
    graph = graph or _graph(workspace)
    key, column = graph.resolve(urn, column)
    ref = graph.mesh_ref.get(key)
    starts = [(key, column)] if column else [(key, c) for c in graph.columns.get(ref, [])]
    seen = graph.walk(starts, downstream=True, depth=depth)
    items: dict[tuple[str, str], ImpactItem] = {}

    def note(item_ref: str, kind: str, status: str, reason: str, path: list[str]) -> None:
        current = items.get((kind, item_ref))
        if current is None or STATUS_ORDER[status] > STATUS_ORDER[current.status]:
            items[(kind, item_ref)] = ImpactItem(ref=item_ref, kind=kind, status=status, reason=reason, path=path)

    reached_datasets: dict[str, str] = {}
    for node, (previous, edge, _) in seen.items():
        if previous is None:
            continue
        status = _status(change, seen, node)
        path = _path(seen, node, graph)
        dataset = node[0] if isinstance(node, tuple) else node
        if isinstance(node, tuple):
            note(graph.label(*node), "column", status, f"{edge.kind.lower()} {edge.subtype.lower()} use", path)
        note(graph.label(dataset), "dataset", status, "holds affected columns" if isinstance(node, tuple)
             else f"{edge.job} reads it ({edge.subtype.lower()})", path)
        if STATUS_ORDER[status] > STATUS_ORDER.get(reached_datasets.get(dataset, "unaffected"), 0):
            reached_datasets[dataset] = status
    for dataset, status in reached_datasets.items():
        dataset_ref = graph.mesh_ref.get(dataset)
        reached = {n[1] for n in seen if isinstance(n, tuple) and n[0] == dataset}
        for other in graph.columns.get(dataset_ref or "", []):
            if other not in reached:
                note(graph.label(dataset, other), "column", "unaffected", "not derived from the changed column", [])
        if not dataset_ref:
            continue
        product_ref = str(MeshRef.parse(dataset_ref).product_ref())
        product = graph.products.get(product_ref, {})
        path = items[("dataset", graph.label(dataset))].path
        note(product_ref, "product", status, f"its dataset {dataset_ref} is {status.replace('_', ' ')}", path)
        if product.get("owner"):
            note(f"team:{product['owner']}", "team", status, f"owns {product_ref}", path)
        for consumer in product.get("consumers", []):
            note(consumer if consumer.startswith("mesh://") else f"consumer:{consumer}", "consumer", status,
                 f"consumes {product_ref}", path)
        if product.get("contract"):
            note(product["contract"], "contract", status, f"the contract of {product_ref}", path)
    ordered = sorted(items.values(), key=lambda i: (-STATUS_ORDER[i.status], i.kind, i.ref))
    source = graph.label(key, column)
    return LineageResult(source=source, change=change, items=ordered, counts=_counts(ordered),
                         mermaid=_mermaid(graph, seen, change, source), citations=[source] + [i.ref for i in ordered
                                                                                              if i.ref.startswith("mesh://")])


def upstream(urn: str, column: str | None = None, depth: int | None = None, workspace: Any = None) -> LineageResult:
    """Everything a dataset or column is derived from (for root causes)."""
    graph = _graph(workspace)
    key, column = graph.resolve(urn, column)
    ref = graph.mesh_ref.get(key)
    starts = [(key, column)] if column else [(key, c) for c in graph.columns.get(ref, [])]
    seen = graph.walk(starts, downstream=False, depth=depth)
    items = {}
    for node, (previous, edge, _) in seen.items():
        if previous is None:
            continue
        path = _path(seen, node, graph, downstream=False)
        items[_name(graph, node)] = ImpactItem(ref=_name(graph, node), kind="column", status="affected",
                                               reason=f"{edge.kind.lower()} {edge.subtype.lower()} source", path=path)
        dataset_label = graph.label(node[0])
        items.setdefault(dataset_label, ImpactItem(ref=dataset_label, kind="dataset", status="affected",
                                                   reason="an upstream source", path=path))
    ordered = sorted(items.values(), key=lambda i: (i.kind, i.ref))
    source = graph.label(key, column)
    return LineageResult(source=source, items=ordered, counts=_counts(ordered),
                         mermaid=_mermaid(graph, seen, None, source, downstream=False),
                         citations=[source] + [i.ref for i in ordered if i.ref.startswith("mesh://")])


def paths(a: str, b: str, max_paths: int = 20, workspace: Any = None) -> LineageResult:
    """The lineage routes from `a` to `b` (datasets or columns), up to `max_paths` of them."""
    graph = _graph(workspace)
    start_key, start_column = graph.resolve(a, None)
    end_key, end_column = graph.resolve(b, None)
    starts = [(start_key, start_column)] if start_column else [(start_key, c) for c in graph.columns.get(
        graph.mesh_ref.get(start_key, ""), [])]
    found: list[list[tuple[str, str, str]]] = []  # each path: hops (from, to, how)

    def done(node: Any) -> bool:
        dataset = node[0] if isinstance(node, tuple) else node
        return dataset == end_key and (end_column is None or (isinstance(node, tuple) and node[1] == end_column))

    def visit(node: Any, trail: list[tuple[str, str, str]], on_path: set) -> None:
        if len(found) >= max_paths:
            return
        if done(node) and trail:
            found.append(trail)
            return
        if not isinstance(node, tuple):
            return
        for edge in graph.down.get(node, []):
            nxt = edge.target or edge.target_dataset
            if nxt not in on_path:
                hop = (_name(graph, node), _name(graph, nxt), f"{edge.kind} {edge.subtype} by {edge.job}")
                visit(nxt, [*trail, hop], on_path | {nxt})

    for start in starts:
        visit(start, [], {start})
    items = [ImpactItem(ref=f"path {i + 1}", kind="path", status="affected", reason=f"{len(p)} hop(s)",
                        path=[f"{a} -[{how}]-> {b}" for a, b, how in p]) for i, p in enumerate(found)]
    lines = ["graph LR"] + [f'  {_id(a)}["{a}"] --> {_id(b)}["{b}"]' for p in found for a, b, _ in p]
    return LineageResult(source=f"{graph.label(start_key, start_column)} -> {graph.label(end_key, end_column)}",
                         items=items, counts={"paths": len(found)}, mermaid="\n".join(dict.fromkeys(lines)),
                         citations=[graph.label(start_key, start_column), graph.label(end_key, end_column)])


def _counts(items: list[ImpactItem]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[f"{item.kind}:{item.status}"] = counts.get(f"{item.kind}:{item.status}", 0) + 1
    return counts


def _id(text: str) -> str:
    return "n" + "".join(ch if ch.isalnum() else "_" for ch in text)[-60:]


def _mermaid(graph: LineageGraph, seen: dict, change: str | None, source: str, downstream: bool = True) -> str:
    lines = ["graph LR", f'  {_id(source)}["{source}"]:::source']
    for node, (previous, edge, _) in seen.items():
        if previous is None:
            continue
        a, b = (_name(graph, previous), _name(graph, node))
        if not downstream:
            a, b = b, a
        status = _status(change, seen, node) if downstream else "affected"
        lines.append(f'  {_id(a)}["{a}"] -->|{edge.subtype.lower() or edge.kind.lower()}| {_id(b)}["{b}"]')
        lines.append(f"  class {_id(_name(graph, node))} {status}")
    lines += ["  classDef source fill:#cde,stroke:#357", "  classDef broken fill:#f99,stroke:#900",
              "  classDef at_risk fill:#fd8,stroke:#a60", "  classDef affected fill:#eee,stroke:#888"]
    return "\n".join(dict.fromkeys(lines))


def _graph(workspace: Any) -> LineageGraph:
    from meshpilot.mesh.workspace import Workspace

    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    with MeshStore.open(ws) as store:
        return LineageGraph.from_store(store)
