"""Lineage impact analysis over the OpenLineage events in the workspace, down to columns.

`impact` walks downstream from a dataset or column and, for a proposed change, classifies every
column, dataset, job, data product, owner team, consumer and contract it reaches as broken, at risk or
unaffected, each with the path that explains why. `upstream` walks the other way (root causes),
`paths` lists the routes between two datasets or columns. Every result carries a Mermaid diagram.
The graph and its hops are in `lineage_graph`: column edges where a job sent column lineage, its inputs
and outputs where it did not, and whole outputs behind the join, filter and grouping keys.

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

from typing import Any

from pydantic import BaseModel

from meshpilot.errors import InvalidArgumentError
from meshpilot.mesh.model import MeshRef
from meshpilot.mesh.store import MeshStore
from meshpilot.tools.lineage_graph import Edge, JobNode, LineageGraph

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
    mermaid: str
    citations: list[str]


def _hop_text(edge: Edge) -> str:
    if edge.kind == "JOB":
        return f"read by {edge.job}, which sends no column lineage for it"
    whole = " (all its rows)" if isinstance(edge.target, str) and edge.kind == "INDIRECT" else ""
    return f"{edge.kind} {edge.subtype} by {edge.job}{whole}".replace("  ", " ")


class Explained:
    """The path and status of every node a walk reached, each computed once from its predecessor's (a walk
    of a hundred thousand nodes a few hundred hops deep must not re-walk each path from its node)."""

    def __init__(self, seen: dict, graph: LineageGraph, downstream: bool = True, change: str | None = None):
        self.seen, self.graph, self.downstream, self.change = seen, graph, downstream, change
        self._paths: dict[Any, list[str]] = {}
        # node -> (started from a column, DIRECT column edges only so far, IDENTITY copies only so far)
        self._kinds: dict[Any, tuple[bool, bool, bool]] = {}

    def _chain(self, node: Any, known: dict) -> list[Any]:
        """`node` and its predecessors up to the first one whose answer is known (or the start)."""
        chain = []
        while node not in known:
            chain.append(node)
            previous = self.seen[node][0]
            if previous is None:
                break
            node = previous
        return chain

    def path(self, node: Any) -> list[str]:
        for step in reversed(self._chain(node, self._paths)):
            previous, edge, _ = self.seen[step]
            if previous is None:
                self._paths[step] = []
                continue
            a, b = (previous, step) if self.downstream else (step, previous)
            hop = f"{self.graph.name(a)} -[{_hop_text(edge)}]-> {self.graph.name(b)}"
            self._paths[step] = [*self._paths[previous], hop]
        return self._paths[node]

    def status(self, node: Any) -> str:
        if self.change is None:
            return "affected"
        for step in reversed(self._chain(node, self._kinds)):
            previous, edge, _ = self.seen[step]
            if previous is None:
                self._kinds[step] = (isinstance(step, tuple), True, True)
                continue
            from_column, direct, identity = self._kinds[previous]
            self._kinds[step] = (from_column, direct and edge.kind == "DIRECT" and isinstance(edge.target, tuple),
                                 identity and edge.subtype == "IDENTITY")
        from_column, direct, identity = self._kinds[node]
        # From a whole dataset, which columns its readers use is unknown; indirect uses and job hops may
        # change rows or fail the job: at risk. DIRECT chains lose their source (drop, rename) or carry
        # the new type through identity copies.
        if not from_column or not direct:
            return "at_risk"
        if self.change in ("drop", "rename"):
            return "broken"
        return "broken" if self.change == "type" and identity else "at_risk"


def _reason(edge: Edge, graph: LineageGraph, previous: Any) -> str:
    if edge.kind == "JOB":
        return f"{edge.job} reads {graph.name(previous)} and sends no column lineage"
    if isinstance(edge.target, str):
        return f"{edge.job} reads it ({edge.subtype.lower() or edge.kind.lower()})" if edge.kind != "INDIRECT" else \
            f"{edge.job} {edge.subtype.lower().replace('_', ' ')}s on {graph.name(previous)}: all its rows may change"
    return f"{edge.kind.lower()} {edge.subtype.lower()} use".replace("  ", " ")


def _starts(graph: LineageGraph, key: str, column: str | None) -> list[Any]:
    """A column; or a dataset's columns and the dataset itself (its readers that send no column lineage)."""
    return [(key, column)] if column else [*[(key, c) for c in graph.columns_of(key)], key]


def impact(urn: str, column: str | None = None, change: str | None = None, depth: int | None = None,
           workspace: Any = None, graph: LineageGraph | None = None) -> LineageResult:
    """Everything downstream of a dataset or column, classified for a proposed change."""
    if change is not None and change not in CHANGES:
        raise InvalidArgumentError(f"Unknown change '{change}'.", hint=f"Use one of: {', '.join(CHANGES)}.")
    graph = graph or _graph(workspace)
    key, column = graph.resolve(urn, column)
    seen = graph.walk(_starts(graph, key, column), downstream=True, depth=depth)
    items: dict[tuple[str, str], ImpactItem] = {}

    def note(item_ref: str, kind: str, status: str, reason: str, path: list[str]) -> None:
        current = items.get((kind, item_ref))
        if current is None or STATUS_ORDER[status] > STATUS_ORDER[current.status]:
            items[(kind, item_ref)] = ImpactItem(ref=item_ref, kind=kind, status=status, reason=reason, path=path)

    reached_datasets: dict[str, str] = {}
    whole: set[str] = set()  # datasets reached as a whole: none of their columns is known to be safe
    explained = Explained(seen, graph, change=change)
    for node, (previous, edge, _) in seen.items():
        if previous is None:
            continue
        status = explained.status(node)
        path = explained.path(node)
        if isinstance(node, JobNode):
            note(node.name, "job", status, f"reads {graph.name(previous)}; writes no dataset the events name", path)
            continue
        note(edge.job, "job", status, f"reads {graph.name(previous)}", path)
        dataset = node[0] if isinstance(node, tuple) else node
        if isinstance(node, tuple):
            note(graph.label(*node), "column", status, _reason(edge, graph, previous), path)
            note(graph.label(dataset), "dataset", status, "holds affected columns", path)
        else:
            whole.add(dataset)
            note(graph.label(dataset), "dataset", status, _reason(edge, graph, previous), path)
        if STATUS_ORDER[status] > STATUS_ORDER.get(reached_datasets.get(dataset, "unaffected"), 0):
            reached_datasets[dataset] = status
    for dataset, status in reached_datasets.items():
        if dataset not in whole:
            reached = {n[1] for n in seen if isinstance(n, tuple) and n[0] == dataset}
            for other in graph.columns_of(dataset):
                if other not in reached:
                    note(graph.label(dataset, other), "column", "unaffected", "not derived from the changed column", [])
        dataset_ref = graph.mesh_ref.get(dataset)
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
                         mermaid=_mermaid(explained, source), citations=[source] + [i.ref for i in ordered
                                                                                              if i.ref.startswith("mesh://")])


def upstream(urn: str, column: str | None = None, depth: int | None = None, workspace: Any = None) -> LineageResult:
    """Everything a dataset or column is derived from (for root causes)."""
    graph = _graph(workspace)
    key, column = graph.resolve(urn, column)
    seen = graph.walk(_starts(graph, key, column), downstream=False, depth=depth)
    items = {}
    explained = Explained(seen, graph, downstream=False)
    for node, (previous, edge, _) in seen.items():
        if previous is None:
            continue
        path = explained.path(node)
        dataset = node[0] if isinstance(node, tuple) else node
        if isinstance(node, tuple):
            items[graph.name(node)] = ImpactItem(ref=graph.name(node), kind="column", status="affected",
                                                 reason=f"{edge.kind.lower()} {edge.subtype.lower()} source".replace("  ", " "), path=path)
        dataset_label = graph.label(dataset)
        items.setdefault(dataset_label, ImpactItem(
            ref=dataset_label, kind="dataset", status="affected", path=path,
            reason=f"read by {edge.job}, which writes {graph.name(previous)}" if edge.kind == "JOB"
            else "an upstream source"))
        items.setdefault(f"job:{edge.job}", ImpactItem(ref=edge.job, kind="job", status="affected", path=path,
                                                       reason=f"writes {graph.name(previous)}"))
    ordered = sorted(items.values(), key=lambda i: (i.kind, i.ref))
    source = graph.label(key, column)
    return LineageResult(source=source, items=ordered, counts=_counts(ordered),
                         mermaid=_mermaid(explained, source),
                         citations=[source] + [i.ref for i in ordered if i.ref.startswith("mesh://")])


def paths(a: str, b: str, max_paths: int = 20, workspace: Any = None) -> LineageResult:
    """The lineage routes from `a` to `b` (datasets or columns), up to `max_paths` of them."""
    graph = _graph(workspace)
    start_key, start_column = graph.resolve(a, None)
    end_key, end_column = graph.resolve(b, None)
    found: list[list[tuple[str, str, str]]] = []  # each path: hops (from, to, how)

    def done(node: Any) -> bool:
        if isinstance(node, JobNode):
            return False
        dataset = node[0] if isinstance(node, tuple) else node
        return dataset == end_key and (end_column is None or (isinstance(node, tuple) and node[1] == end_column))

    def visit(node: Any, trail: list[tuple[str, str, str]], on_path: set) -> None:
        if len(found) >= max_paths:
            return
        if done(node) and trail:
            found.append(trail)
            return
        for edge in graph.neighbours(node, downstream=True):
            if edge.target not in on_path:
                hop = (graph.name(node), graph.name(edge.target), _hop_text(edge))
                visit(edge.target, [*trail, hop], on_path | {edge.target})

    for start in _starts(graph, start_key, start_column):
        graph.prefetch([start], downstream=True)
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


def _mermaid(explained: Explained, source: str) -> str:
    graph = explained.graph
    lines = ["graph LR", f'  {_id(source)}["{source}"]:::source']
    for node, (previous, edge, _) in explained.seen.items():
        if previous is None:
            continue
        a, b = (graph.name(previous), graph.name(node))
        if not explained.downstream:
            a, b = b, a
        lines.append(f'  {_id(a)}["{a}"] -->|{edge.subtype.lower() or edge.kind.lower()}| {_id(b)}["{b}"]')
        lines.append(f"  class {_id(graph.name(node))} {explained.status(node)}")
    lines += ["  classDef source fill:#cde,stroke:#357", "  classDef broken fill:#f99,stroke:#900",
              "  classDef at_risk fill:#fd8,stroke:#a60", "  classDef affected fill:#eee,stroke:#888"]
    return "\n".join(dict.fromkeys(lines))


def _graph(workspace: Any) -> LineageGraph:
    from meshpilot.mesh.workspace import Workspace

    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    with MeshStore.open(ws) as store:
        return LineageGraph.from_store(store)
