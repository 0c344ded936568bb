"""Lineage impact analysis over the OpenLineage events in the workspace, down to columns.

`impact` walks downstream from a dataset or column and, for a proposed change, classifies every
column, dataset, job, data product, owner team, consumer and contract it reaches as broken, at risk or
unaffected, each with the path that explains why. `upstream` walks the other way (root causes),
`paths` lists the routes between two datasets or columns. Every result carries a Mermaid diagram.
The hops are described in `lineage_graph`: column edges where a job sent column lineage, its inputs and
outputs where it did not, and whole outputs behind the join, filter and grouping keys; walks run over the
whole graph in memory (`lineage_reach`).

How a change propagates:
- drop or rename: a column reached through DIRECT column edges only loses its source: broken; anything
  reached through an INDIRECT use (its job fails or its rows change) or a job hop (a job that reads the
  dataset without saying which columns it uses) is at risk;
- type: a DIRECT IDENTITY chain carries the new type into the column: broken; transformations,
  indirect uses and job hops are at risk;
- semantics: everything reached is at risk;
- no change given: everything reached is affected.
A dataset is as bad as its worst reached column (or as the hop that reached it whole); a product as its
worst dataset; its owner team, consumers and contract share the product's status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from meshpilot.errors import InvalidArgumentError
from meshpilot.mesh.model import MeshRef
from meshpilot.mesh.store import MeshStore
from meshpilot.tools.lineage_graph import LineageGraph
from meshpilot.tools.lineage_reach import KIND_NAMES, Reach

CHANGES = ("drop", "rename", "type", "semantics")
STATUS_ORDER = {"broken": 3, "at_risk": 2, "affected": 1, "unaffected": 0}


class ImpactItem(BaseModel):
    ref: str
    kind: str  # column, dataset, job, product, team, consumer, contract
    status: str  # broken, at_risk, affected, unaffected
    reason: str
    path: list[str] = []


class LineageResult(BaseModel):
    source: str
    change: str | None = None
    items: list[ImpactItem]
    counts: dict[str, int]
    more: int = 0  # items counted but not listed (beyond the limit asked for)
    mermaid: str
    citations: list[str]


KIND_ORDER = ("product", "contract", "consumer", "team", "dataset", "job", "column")  # what a reader needs first
_CODES = tuple(sorted(STATUS_ORDER, key=STATUS_ORDER.__getitem__))  # status by code: unaffected ... broken


class _Explainer:
    """Names, reasons and paths of the nodes of one walk, each path built once from its predecessor's (a
    walk of a hundred thousand nodes a few hundred hops deep must not re-walk each path from its node)."""

    def __init__(self, graph: LineageGraph, reach: Reach | None = None):
        self.reach, self.graph, self.arrays = reach, graph, graph.arrays()
        self._paths: dict[int, list[str]] = {}
        self._hops: list[tuple[int, int, str]] = []  # (from, to, label) of every hop explained, for the diagram
        self._names: dict[int, str] = {}

    def name(self, node: int) -> str:
        name = self._names.get(node)
        if name is None:
            kind = self.arrays.kind_of(node)
            if kind == "job":
                name = f"job {self.arrays.job_name(node)}"
            else:
                name = self.arrays.label(self.arrays.dataset_of_node(node) if kind in ("start", "bare") else node)
            self._names[node] = name
        return name

    def hop(self, node: int) -> tuple[int, int, str, str]:
        return self.reach.previous(node)

    def path(self, node: int) -> list[str]:
        chain = []
        while node not in self._paths and not self.reach.is_root(node):
            chain.append(node)
            node = self.hop(node)[0]
        for step in reversed(chain):
            previous, kind, subtype, job = self.hop(step)
            a, b = (previous, step) if self.reach.downstream else (step, previous)
            text = _hop_text(KIND_NAMES[kind], subtype, job, self.arrays.kind_of(a) == "column",
                             self.arrays.kind_of(b) == "dataset")
            self._hops.append((a, b, subtype.lower() or KIND_NAMES[kind].lower()))
            self._paths[step] = [*self._paths.get(previous, []), f"{self.name(a)} -[{text}]-> {self.name(b)}"]
        return self._paths.get(node, []) if not chain else self._paths[chain[0]]

    def mermaid(self, source: str, status: dict[int, str] | None = None, otherwise: str = "affected") -> str:
        """The hops explained so far, each node coloured by its status (`status`, else `otherwise`)."""
        lines = ["graph LR", f'  {_id(source)}["{source}"]:::source']
        for a, b, label in self._hops:
            name_a, name_b = self.name(a), self.name(b)
            lines.append(f'  {_id(name_a)}["{name_a}"] -->|{label}| {_id(name_b)}["{name_b}"]')
            reached = b if self.reach.downstream else a
            lines.append(f"  class {_id(self.name(reached))} "
                         f"{(status or {}).get(reached, otherwise)}")
        lines += ["  classDef source fill:#cde,stroke:#357", "  classDef broken fill:#f99,stroke:#900",
                  "  classDef at_risk fill:#fd8,stroke:#a60", "  classDef affected fill:#eee,stroke:#888"]
        return "\n".join(dict.fromkeys(lines))


def _hop_text(kind: str, subtype: str, job: str, from_column: bool, to_whole: bool) -> str:
    if kind == "JOB":
        return f"read by {job}, which sends no column lineage for it" if from_column else f"read by {job}"
    return f"{kind} {subtype} by {job}{' (all its rows)' if to_whole and kind == 'INDIRECT' else ''}".replace("  ", " ")


def _reason(explainer: _Explainer, node: int) -> str:
    previous, kind, subtype, job = explainer.hop(node)
    if KIND_NAMES[kind] == "JOB":
        return f"{job} reads {explainer.name(previous)}" + (
            "" if explainer.arrays.kind_of(previous) == "dataset" else " and sends no column lineage")
    if explainer.arrays.kind_of(node) == "dataset":
        return f"{job} {subtype.lower().replace('_', ' ')}s on {explainer.name(previous)}: all its rows may change" \
            if KIND_NAMES[kind] == "INDIRECT" else f"{job} reads it ({subtype.lower() or KIND_NAMES[kind].lower()})"
    return f"{KIND_NAMES[kind].lower()} {subtype.lower()} use".replace("  ", " ")


@dataclass
class _Candidates:
    """Items before they are named: per item its kind, status code and the walk's order of the node that
    explains it (nearest first), so the first `limit` can be chosen without naming every one."""

    kinds: list[np.ndarray]
    status: list[np.ndarray]
    rank: list[np.ndarray]
    payload: list[np.ndarray]

    def add(self, kind: str, status: np.ndarray, rank: np.ndarray, payload: np.ndarray) -> None:
        self.kinds.append(np.full(len(status), KIND_ORDER.index(kind), dtype=np.int64))
        self.status.append(np.asarray(status, dtype=np.int64))
        self.rank.append(np.asarray(rank, dtype=np.int64))
        self.payload.append(np.asarray(payload, dtype=np.int64))

    def chosen(self, limit: int | None) -> tuple[dict[str, int], list[tuple[str, int, int]], int]:
        """(counts by kind:status, the first `limit` items as (kind, status code, payload), how many more)."""
        kinds, status, rank, payload = (np.concatenate(x) if x else np.zeros(0, np.int64)
                                        for x in (self.kinds, self.status, self.rank, self.payload))
        counts: dict[str, int] = {}
        for value, count in enumerate(np.bincount(kinds * 4 + status, minlength=4 * len(KIND_ORDER)).tolist()):
            if count:
                counts[f"{KIND_ORDER[value // 4]}:{_CODES[value % 4]}"] = count
        order_key = ((3 - status) * len(KIND_ORDER) + kinds) * (int(rank.max(initial=0)) + 1) + rank
        if limit is not None and limit < len(order_key):
            picked = np.argpartition(order_key, limit)[:limit]
        else:
            picked = np.arange(len(order_key))
        picked = picked[np.argsort(order_key[picked], kind="stable")]
        return counts, [(KIND_ORDER[kinds[i]], int(status[i]), int(payload[i])) for i in picked], \
            len(order_key) - len(picked)


def _worst_first(groups: np.ndarray, size: int, code: np.ndarray, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct groups (integers below `size`), and for each the rank of its member with the worst
    status code, the earliest of those (one pass, no sort)."""
    if not len(groups):
        return groups, rank[:0]
    span = int(rank.max()) + 1
    best = np.full(size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, groups, (3 - code.astype(np.int64)) * span + rank)
    present = np.flatnonzero(best != np.iinfo(np.int64).max)
    return present, best[present] % span


def _source(graph: LineageGraph, key: str, column: str | None, start: int | None) -> str:
    """How a result names where its walk starts."""
    if start is None:
        return graph.label(key, column)
    arrays = graph.arrays()
    return arrays.label(arrays.dataset_of_node(start), column)


def _mesh_entities(graph: LineageGraph, candidates: _Candidates, dataset_ids: np.ndarray, dataset_code: np.ndarray,
                   dataset_first: np.ndarray, representative: np.ndarray) -> tuple[list, dict[int, int]]:
    """The products, teams, consumers and contracts of the reached datasets that belong to products (few:
    named one by one), added to `candidates`: [((kind, ref), (status code, dataset, reason))], and the node
    that explains each of those datasets."""
    arrays = graph.arrays()
    mesh_items: dict[tuple[str, str], tuple[int, int, str]] = {}  # (kind, ref) -> (code, dataset, reason)
    in_mesh = arrays.in_mesh[dataset_ids - arrays.c]
    dataset_rank = dict(zip(dataset_ids[in_mesh].tolist(), dataset_first[in_mesh].tolist(), strict=True))
    representative_of = dict(zip(dataset_ids[in_mesh].tolist(), representative[in_mesh].tolist(), strict=True))
    for dataset, status_code in zip(dataset_ids[in_mesh].tolist(), dataset_code[in_mesh].tolist(), strict=True):
        dataset_ref = arrays.mesh_refs[dataset]
        product_ref = str(MeshRef.parse(dataset_ref).product_ref())
        product = graph.products.get(product_ref, {})
        status = _CODES[status_code]
        entities = [("product", product_ref, f"its dataset {dataset_ref} is {status.replace('_', ' ')}")]
        if product.get("owner"):
            entities.append(("team", f"team:{product['owner']}", f"owns {product_ref}"))
        entities += [("consumer", c if c.startswith("mesh://") else f"consumer:{c}", f"consumes {product_ref}")
                     for c in product.get("consumers", [])]
        if product.get("contract"):
            entities.append(("contract", product["contract"], f"the contract of {product_ref}"))
        for kind, ref, reason in entities:
            current = mesh_items.get((kind, ref))
            if current is None or status_code > current[0] or \
                    status_code == current[0] and dataset_rank[dataset] < dataset_rank[current[1]]:
                mesh_items[(kind, ref)] = (status_code, dataset, reason)
    mesh_list = list(mesh_items.items())
    for kind in ("product", "team", "consumer", "contract"):
        of_kind = [i for i, ((k, _), _) in enumerate(mesh_list) if k == kind]
        candidates.add(kind, np.array([mesh_list[i][1][0] for i in of_kind]),
                       np.array([dataset_rank[mesh_list[i][1][1]] for i in of_kind]), np.array(of_kind))
    return mesh_list, representative_of


def impact(urn: str, column: str | None = None, change: str | None = None, depth: int | None = None,
           workspace: Any = None, graph: LineageGraph | None = None, limit: int | None = None) -> LineageResult:
    """Everything downstream of a dataset or column, classified for a proposed change: its columns,
    datasets, jobs, products, teams, consumers and contracts, worst first (the first `limit` of them
    listed, all of them counted)."""
    if change is not None and change not in CHANGES:
        raise InvalidArgumentError(f"Unknown change '{change}'.", hint=f"Use one of: {', '.join(CHANGES)}.")
    graph = graph or _graph(workspace)
    key, column = graph.resolve(urn, column)
    start = graph.node(key, column)
    source = _source(graph, key, column, start)
    if start is None:
        return LineageResult(source=source, change=change, items=[], counts={}, mermaid=f"graph LR\n  {_id(source)}"
                             f'["{source}"]:::source', citations=[source])
    arrays = graph.arrays()
    reach = Reach(arrays, start, downstream=True, depth=depth, change=change)
    nodes = reach.nodes
    code = np.where(reach.broken, STATUS_ORDER["broken"],
                    STATUS_ORDER["at_risk"] if change else STATUS_ORDER["affected"])
    rank = np.arange(len(nodes))
    candidates = _Candidates([], [], [], [])
    is_column, is_job_end = nodes < arrays.c, nodes >= arrays.c + 3 * arrays.d
    candidates.add("column", code[is_column], rank[is_column], nodes[is_column])

    # A dataset: as bad as its worst reached column, or reached whole; explained by its first such node.
    datasets = arrays.dataset_of(nodes)
    in_dataset = np.flatnonzero(datasets >= 0)
    dataset_ids, picked = _worst_first(datasets[in_dataset] - arrays.c, arrays.d, code[in_dataset], in_dataset)
    dataset_ids += arrays.c
    representative = nodes[picked]
    dataset_code, dataset_first = code[picked], rank[picked]
    candidates.add("dataset", dataset_code, dataset_first, representative)

    # A job: as bad as the worst node reached through one of its hops.
    job_of = np.full(len(nodes), -1, dtype=np.int64)
    for in_tree in (~reach.broken, reach.broken):
        if in_tree.any():
            job_of[in_tree] = reach.jobs_of(nodes[in_tree], *reach.tree(int(nodes[in_tree][0])))
    job_of[is_job_end] = nodes[is_job_end] - arrays.c - 3 * arrays.d
    _, picked = _worst_first(job_of, arrays.j, code, rank)
    candidates.add("job", code[picked], picked, picked)

    # Columns a reached (not whole) dataset declares that the walk did not reach.
    reached = np.zeros(arrays.n, dtype=bool)  # zeroed pages are free until touched
    reached[nodes] = True
    partial = dataset_ids[~reached[dataset_ids]]
    low, high = (np.searchsorted(arrays.declared_dataset, partial + i) for i in (0, 1))
    declared = np.concatenate([np.arange(lo, hi) for lo, hi in zip(low.tolist(), high.tolist(), strict=True)]) \
        if len(partial) else np.zeros(0, np.int64)
    declared = declared[~((arrays.declared_node[declared] >= 0) & reached[arrays.declared_node[declared]])]
    candidates.add("column", np.zeros(len(declared)), np.full(len(declared), len(nodes)), declared)

    mesh_list, representative_of = _mesh_entities(graph, candidates, dataset_ids, dataset_code, dataset_first,
                                                  representative)
    explainer = _Explainer(graph, reach)
    counts, chosen, more = candidates.chosen(limit)
    status_of = dict.fromkeys(nodes[reach.broken].tolist(), "broken")
    items = []
    for kind, status_code, payload in chosen:
        status = _CODES[status_code]
        if kind == "column" and status_code == 0:
            dataset = int(arrays.declared_dataset[payload])
            items.append(ImpactItem(ref=arrays.label(dataset, arrays.declared_field[payload].as_py()),
                                    kind="column", status=status, reason="not derived from the changed column"))
        elif kind == "column":
            items.append(ImpactItem(ref=explainer.name(payload), kind=kind, status=status,
                                    reason=_reason(explainer, payload), path=explainer.path(payload)))
        elif kind == "dataset":
            is_whole = arrays.kind_of(payload) == "dataset"
            items.append(ImpactItem(ref=explainer.name(arrays.dataset_of_node(payload)), kind=kind,
                                    status=status, reason=_reason(explainer, payload) if is_whole
                                    else "holds affected columns", path=explainer.path(payload)))
        elif kind == "job":
            node = int(nodes[payload])
            if arrays.kind_of(node) == "job":
                previous = explainer.hop(node)[0]
                items.append(ImpactItem(ref=arrays.job_name(node), kind=kind, status=status, path=explainer.path(node),
                                        reason=f"reads {explainer.name(previous)}; writes no dataset the events name"))
            else:
                previous, _, _, job = explainer.hop(node)
                items.append(ImpactItem(ref=job, kind=kind, status=status, reason=f"reads {explainer.name(previous)}",
                                        path=explainer.path(node)))
        else:
            (_, ref), (_, dataset, reason) = mesh_list[payload]
            items.append(ImpactItem(ref=ref, kind=kind, status=status, reason=reason,
                                    path=explainer.path(representative_of[dataset])))
    ordered = sorted(items, key=lambda i: (-STATUS_ORDER[i.status], i.kind, i.ref))
    return LineageResult(source=source, change=change, items=ordered, counts=counts, more=more,
                         mermaid=explainer.mermaid(source, status_of, "at_risk" if change else "affected"),
                         citations=[source] + [i.ref for i in ordered if i.ref.startswith("mesh://")])


def upstream(urn: str, column: str | None = None, depth: int | None = None, workspace: Any = None,
             limit: int | None = None) -> LineageResult:
    """Everything a dataset or column is derived from (for root causes): columns, datasets and the jobs
    that write them, nearest first."""
    graph = _graph(workspace)
    key, column = graph.resolve(urn, column)
    start = graph.node(key, column)
    source = _source(graph, key, column, start)
    if start is None:
        return LineageResult(source=source, items=[], counts={}, mermaid=f'graph LR\n  {_id(source)}["{source}"]',
                             citations=[source])
    arrays = graph.arrays()
    reach = Reach(arrays, start, downstream=False, depth=depth)
    nodes = reach.nodes
    rank = np.arange(len(nodes))
    candidates = _Candidates([], [], [], [])
    is_column = nodes < arrays.c
    candidates.add("column", np.ones(int(is_column.sum())), rank[is_column], nodes[is_column])
    affected = np.ones(len(nodes), dtype=np.int64)
    datasets = arrays.dataset_of(nodes)
    in_dataset = np.flatnonzero(datasets >= 0)
    _, first = _worst_first(datasets[in_dataset] - arrays.c, arrays.d, affected[in_dataset], in_dataset)
    candidates.add("dataset", affected[first], first, nodes[first])
    _, first = _worst_first(reach.jobs_of(nodes, reach.hops, reach.predecessors), arrays.j, affected, rank)
    candidates.add("job", affected[first], first, nodes[first])
    counts, chosen, more = candidates.chosen(limit)
    explainer = _Explainer(graph, reach)
    items = []
    for kind, _, node in chosen:
        previous, hop_kind, subtype, job = explainer.hop(node)
        path = explainer.path(node)
        if kind == "column":
            reason = f"{KIND_NAMES[hop_kind].lower()} {subtype.lower()} source".replace("  ", " ")
            items.append(ImpactItem(ref=explainer.name(node), kind=kind, status="affected", reason=reason, path=path))
        elif kind == "dataset":
            reason = f"read by {job}, which writes {explainer.name(previous)}" if KIND_NAMES[hop_kind] == "JOB" \
                else "an upstream source"
            items.append(ImpactItem(ref=explainer.name(arrays.dataset_of_node(node)), kind=kind,
                                    status="affected", reason=reason, path=path))
        else:
            items.append(ImpactItem(ref=job, kind=kind, status="affected", reason=f"writes {explainer.name(previous)}",
                                    path=path))
    ordered = sorted(items, key=lambda i: (i.kind, i.ref))
    return LineageResult(source=source, items=ordered, counts=counts, more=more, mermaid=explainer.mermaid(source),
                         citations=[source] + [i.ref for i in ordered if i.ref.startswith("mesh://")])


def paths(a: str, b: str, max_paths: int = 20, workspace: Any = None) -> LineageResult:
    """The lineage routes from `a` to `b` (datasets or columns), up to `max_paths` of them."""
    graph = _graph(workspace)
    start_key, start_column = graph.resolve(a, None)
    end_key, end_column = graph.resolve(b, None)
    source = f"{graph.label(start_key, start_column)} -> {graph.label(end_key, end_column)}"
    citations = [graph.label(start_key, start_column), graph.label(end_key, end_column)]
    start, end = graph.node(start_key, start_column), graph.node(end_key, end_column)
    found: list[list[tuple[str, str, str]]] = []  # each path: hops (from, to, how)
    if start is not None and end is not None:
        arrays = graph.arrays()
        hops = arrays.down
        indptr, indices = hops.matrix.indptr, hops.matrix.indices
        end_dataset = arrays.dataset_of_node(end)
        # Only nodes that can reach the end are worth a visit.
        towards, _ = arrays.walk(arrays.up, end, None)
        useful = np.zeros(arrays.n, dtype=bool)
        useful[towards] = True
        explainer = _Explainer(graph)

        def done(node: int) -> bool:
            if end_column is None:
                return arrays.dataset_of_node(node) == end_dataset
            return node == end

        def visit(node: int, trail: list[tuple[str, str, str]], on_path: set[int]) -> None:
            if len(found) >= max_paths:
                return
            if trail and done(node):
                found.append(trail)
                return
            for at in range(indptr[node], indptr[node + 1]):
                target = int(indices[at])
                if target in on_path or not useful[target]:
                    continue
                kind = KIND_NAMES[hops.kind[at]]
                if kind == "START":
                    visit(target, trail, on_path | {target})
                    continue
                how = _hop_text(kind, arrays.subtypes[hops.subtype[at]], arrays.jobs[hops.job[at]],
                                arrays.kind_of(node) == "column", arrays.kind_of(target) == "dataset")
                visit(target, [*trail, (explainer.name(node), explainer.name(target), how)], on_path | {target})

        visit(start, [], {start})
    items = [ImpactItem(ref=f"path {i + 1}", kind="path", status="affected", reason=f"{len(p)} hop(s)",
                        path=[f"{x} -[{how}]-> {y}" for x, y, how in p]) for i, p in enumerate(found)]
    lines = ["graph LR"] + [f'  {_id(x)}["{x}"] --> {_id(y)}["{y}"]' for p in found for x, y, _ in p]
    return LineageResult(source=source, items=items, counts={"paths": len(found)}, mermaid="\n".join(dict.fromkeys(lines)),
                         citations=citations)


def _counts(items: list[ImpactItem]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[f"{item.kind}:{item.status}"] = counts.get(f"{item.kind}:{item.status}", 0) + 1
    return counts


def _id(text: str) -> str:
    return "n" + re.sub(r"\W", "_", text)[-60:]


def _graph(workspace: Any) -> LineageGraph:
    from meshpilot.mesh.workspace import Workspace

    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    with MeshStore.open(ws) as store:
        return LineageGraph.from_store(store)
