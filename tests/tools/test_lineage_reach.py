"""The in-memory lineage walk against a reference written here from the raw events and the documented
rules (tools/lineage_graph's docstring), on random event sets; and its file beside the index, `limit`,
and a broken chain found past a shorter indirect one."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pytest

from meshpilot.mesh.connectors import openlineage
from meshpilot.mesh.store import MeshStore
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools import lineage, lineage_reach
from meshpilot.tools.lineage_graph import LineageGraph

PRODUCER = "https://example.com/producer"
FACET = {"_producer": PRODUCER, "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json"}
ROW_DECIDING = {"JOIN", "FILTER", "GROUP_BY"}


def _field(dataset: str, column: str, kind: str, subtype: str) -> dict:
    return {"namespace": "db", "name": dataset, "field": column, "transformations": [{"type": kind, "subtype": subtype}]}


def _random_events(rng: random.Random, datasets: int = 14, jobs: int = 12) -> list[dict]:
    events = []
    for j in range(jobs):
        inputs = rng.sample(range(datasets), rng.randint(1, 3))
        outputs = rng.sample([d for d in range(datasets) if d not in inputs], rng.randint(0, 2))
        facets = []
        for out in outputs:
            if rng.random() < 0.3:  # no column lineage for this output: a job hop
                facets.append({"namespace": "db", "name": f"d{out}"})
                continue
            fields = {}
            for column in rng.sample(range(4), rng.randint(1, 3)):
                fields[f"c{column}"] = {"inputFields": [
                    _field(f"d{i}", f"c{rng.randrange(4)}", *rng.choice([
                        ("DIRECT", "IDENTITY"), ("DIRECT", "TRANSFORMATION"), ("DIRECT", "AGGREGATION"),
                        ("INDIRECT", "JOIN"), ("INDIRECT", "SORT"), ("INDIRECT", "FILTER")]))
                    for i in rng.sample(inputs, rng.randint(1, len(inputs)))]}
            dataset_level = [_field(f"d{i}", f"c{rng.randrange(4)}", "INDIRECT", rng.choice(["FILTER", "GROUP_BY", "SORT"]))
                             for i in inputs if rng.random() < 0.25]
            facets.append({"namespace": "db", "name": f"d{out}", "facets": {"columnLineage": {
                **FACET, "fields": fields, **({"dataset": dataset_level} if dataset_level else {})}}})
        events.append({
            "eventType": "COMPLETE", "eventTime": f"2026-11-02T06:{j:02d}:00Z", "producer": PRODUCER,
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": str(uuid.UUID(int=rng.getrandbits(128), version=4))},
            "job": {"namespace": "etl", "name": f"j{j}"},
            "inputs": [{"namespace": "db", "name": f"d{i}"} for i in inputs], "outputs": facets})
    return events


class Reference:
    """Reachability by the rules, straight from the events."""

    def __init__(self, events: list[dict]):
        self.reads: dict[str, set[str]] = {}  # dataset -> jobs reading it
        self.writes: dict[str, set[str]] = {}  # job -> datasets it writes
        self.precise: set[tuple[str, str]] = set()  # (job, output) with column lineage
        self.edges: list[tuple[str, str | None, str, str | None, str, str]] = []  # (src ds, src col, tgt ds, tgt col, type, subtype)
        for event in events:
            job = f"etl/{event['job']['name']}"
            for d in event["inputs"]:
                self.reads.setdefault(d["name"], set()).add(job)
            self.writes.setdefault(job, set())
            for out in event["outputs"]:
                self.writes[job].add(out["name"])
                facet = out.get("facets", {}).get("columnLineage")
                if facet is None:
                    continue
                self.precise.add((job, out["name"]))
                for column, spec in facet["fields"].items():
                    for source in spec["inputFields"]:
                        t = source["transformations"][0]
                        self.edges.append((source["name"], source["field"], out["name"], column, t["type"], t["subtype"]))
                for source in facet.get("dataset", []):
                    t = source["transformations"][0]
                    self.edges.append((source["name"], source["field"], out["name"], None, t["type"], t["subtype"]))

    def hops(self, node: tuple) -> set[tuple]:
        kind = node[0]
        found: set[tuple] = set()
        if kind == "column":
            _, dataset, column = node
            for s, sc, t, tc, typ, sub in self.edges:
                if (s, sc) == (dataset, column):
                    found.add(("column", t, tc) if tc else ("dataset", t))
                    if tc and typ == "INDIRECT" and sub in ROW_DECIDING:
                        found.add(("dataset", t))
            whole = False
        else:
            dataset, whole = node[1], True
            found |= {("dataset", t) for s, _, t, _, _, _ in self.edges if s == dataset}
        for job in self.reads.get(dataset, ()):
            outputs = self.writes.get(job, set())
            if not outputs:
                found.add(("job", job))
            for out in outputs:
                if whole or (job, out) not in self.precise:
                    found.add(("dataset", out))
        return found

    def sources(self, node: tuple) -> set[tuple]:
        """Upstream hops: where a column or a whole dataset comes from."""
        found: set[tuple] = set()
        if node[0] == "column":
            _, dataset, column = node
            found |= {("column", s, sc) for s, sc, t, tc, *_ in self.edges if t == dataset and tc in (column, None)}
        else:
            dataset = node[1]
            found |= {("dataset", s) for s, _, t, *_ in self.edges if t == dataset}
        inputs: dict[str, set[str]] = {}
        for source, jobs in self.reads.items():
            for job in jobs:
                inputs.setdefault(job, set()).add(source)
        for job, outputs in self.writes.items():
            if dataset in outputs and (node[0] == "dataset" or (job, dataset) not in self.precise):
                found |= {("dataset", i) for i in inputs.get(job, ())}
        return found

    def reach(self, starts: set[tuple], direct_only: bool = False, up: bool = False) -> set[tuple]:
        seen, frontier = set(starts), list(starts)
        while frontier:
            node = frontier.pop()
            if up:
                nxt = self.sources(node)
            elif direct_only:
                nxt = {("column", t, tc) for s, sc, t, tc, typ, _ in self.edges
                       if node[0] == "column" and (s, sc) == node[1:] and tc and typ == "DIRECT"}
            else:
                nxt = self.hops(node)
            for n in nxt - seen:
                seen.add(n)
                frontier.append(n)
        return seen - starts


def _label(node: tuple) -> str:
    return {"column": lambda: f"db/{node[1]}#{node[2]}", "dataset": lambda: f"db/{node[1]}",
            "job": lambda: node[1]}[node[0]]()


@pytest.mark.parametrize("seed", range(6))
def test_the_walk_reaches_what_the_rules_reach_from_the_raw_events(empty_workspace: Workspace, tmp_path: Path,
                                                                   seed: int) -> None:
    rng = random.Random(seed)
    events = _random_events(rng)
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events))
    openlineage.import_events(empty_workspace, path)
    reference = Reference(events)
    columns = sorted({(s, sc) for s, sc, *_ in reference.edges})
    for dataset, column in rng.sample(columns, min(6, len(columns))):
        start = ("column", dataset, column)
        result = lineage.impact(f"db/{dataset}#{column}", change="drop", workspace=empty_workspace)
        reached = reference.reach({start})
        # Columns are those column paths reach; from a dataset reached as a whole only datasets are.
        expected_columns = {_label(n) for n in reached if n[0] == "column"} - {_label(start)}
        got = {i.ref for i in result.items if i.status != "unaffected"}
        assert {r for r in got if "#" in r} == expected_columns
        assert {i.ref for i in result.items if i.kind == "dataset"} == {f"db/{n[1]}" for n in reached if n[0] != "job"}
        broken = {_label(n) for n in reference.reach({start}, direct_only=True)} & expected_columns
        assert {i.ref for i in result.items if i.status == "broken" and i.kind == "column"} == broken
        jobs = {i.ref for i in result.items if i.kind == "job"}
        assert {n[1] for n in reached if n[0] == "job"} <= jobs
    for dataset, column in rng.sample(columns, min(4, len(columns))):
        target = ("column", dataset, column)
        sources = lineage.upstream(f"db/{dataset}#{column}", workspace=empty_workspace)
        reached = reference.reach({target}, up=True)
        assert {i.ref for i in sources.items if i.kind == "column"} == {_label(n) for n in reached if n[0] == "column"}
        assert {i.ref for i in sources.items if i.kind == "dataset"} == {f"db/{n[1]}" for n in reached}
    for dataset in rng.sample(sorted(reference.reads), 3):
        named = {(s, sc) for s, sc, *_ in reference.edges} | {(t, tc) for _, _, t, tc, *_ in reference.edges if tc}
        starts = {("dataset", dataset)} | {("column", s, sc) for s, sc in named if s == dataset}
        result = lineage.impact(f"db/{dataset}", workspace=empty_workspace)
        reached = reference.reach(starts)
        assert {i.ref for i in result.items if i.kind == "dataset"} == {f"db/{n[1]}" for n in reached if n[0] != "job"}


def test_limit_lists_the_first_items_and_counts_them_all(empty_workspace: Workspace, tmp_path: Path) -> None:
    events = _random_events(random.Random(11), datasets=20, jobs=25)
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events))
    openlineage.import_events(empty_workspace, path)
    target = max((f"db/d{i}" for i in range(20)), key=lambda t: sum(
        lineage.impact(t, workspace=empty_workspace).counts.values()) if _named(empty_workspace, t) else -1)
    everything = lineage.impact(target, change="drop", workspace=empty_workspace)
    first = lineage.impact(target, change="drop", workspace=empty_workspace, limit=3)
    assert sum(everything.counts.values()) > 3 and everything.more == 0
    assert first.counts == everything.counts and len(first.items) == 3
    assert first.more == sum(everything.counts.values()) - 3
    # The first are the worst and, among them, the mesh-level and nearest.
    worst = max(lineage.STATUS_ORDER[i.status] for i in everything.items)
    assert all(lineage.STATUS_ORDER[i.status] == worst for i in first.items)


def _named(workspace: Workspace, target: str) -> bool:
    try:
        lineage.impact(target, workspace=workspace, limit=1)
        return True
    except Exception:
        return False


def _join_events(tmp_path: Path) -> Path:
    def run(job: str, inputs: list[str], output: str, fields: dict) -> dict:
        return {"eventType": "COMPLETE", "eventTime": "2026-11-02T06:00:00Z", "producer": PRODUCER,
                "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                "run": {"runId": "3f5e83fa-3480-44ff-99c5-ff943904e5e8"}, "job": {"namespace": "etl", "name": job},
                "inputs": [{"namespace": "db", "name": n} for n in inputs],
                "outputs": [{"namespace": "db", "name": output, "facets": {"columnLineage": {**FACET, "fields": fields}}}]}

    events = [
        # a.x reaches c.y in one INDIRECT hop (a sort key) and in two DIRECT copies through b.
        run("sort", ["a"], "c", {"y": {"inputFields": [_field("a", "x", "INDIRECT", "SORT")]}}),
        run("copy", ["a"], "b", {"x": {"inputFields": [_field("a", "x", "DIRECT", "IDENTITY")]}}),
        run("copy2", ["b"], "c", {"y": {"inputFields": [_field("b", "x", "DIRECT", "IDENTITY")]}}),
    ]
    path = tmp_path / "join.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events))
    return path


def test_a_column_a_direct_chain_reaches_is_broken_even_past_a_shorter_indirect_hop(empty_workspace: Workspace,
                                                                                    tmp_path: Path) -> None:
    openlineage.import_events(empty_workspace, _join_events(tmp_path))
    result = lineage.impact("db/a#x", change="drop", workspace=empty_workspace)
    y = next(i for i in result.items if i.ref == "db/c#y")
    assert y.status == "broken" and len(y.path) == 2 and "DIRECT IDENTITY by etl/copy2" in y.path[1]
    assert lineage.impact("db/a#x", change="semantics", workspace=empty_workspace).items[0].status == "at_risk"


def test_the_graph_is_saved_beside_its_index_read_back_and_removed_with_it(empty_workspace: Workspace,
                                                                           tmp_path: Path) -> None:
    openlineage.import_events(empty_workspace, _join_events(tmp_path))
    before = lineage.impact("db/a#x", change="drop", workspace=empty_workspace)
    with MeshStore.open(empty_workspace) as store:
        index = store.path
    saved = lineage_reach.saved_path(index)
    lineage_reach.saved()
    assert saved.exists()
    # Another process reads the file instead of the index: the same answers.
    lineage_reach._CACHE.clear()
    read = lineage_reach.LineageArrays.read(saved)
    assert read is not None and read.n > 0
    with MeshStore.open(empty_workspace) as store:
        graph = LineageGraph(store.cursor(), store.path)
        assert lineage.impact("db/a#x", change="drop", graph=graph) == before
    # A damaged file is rebuilt from the index, not trusted.
    saved.write_bytes(saved.read_bytes()[:100])
    lineage_reach._CACHE.clear()
    assert lineage_reach.LineageArrays.read(saved) is None
    assert lineage.impact("db/a#x", change="drop", workspace=empty_workspace) == before
    # A new state of the workspace is a new index: the old file goes with the old index.
    more = tmp_path / "more.jsonl"
    more.write_text(_join_events(tmp_path).read_text().replace("copy2", "copy3"))
    openlineage.import_events(empty_workspace, more)
    lineage.impact("db/a#x", workspace=empty_workspace)
    lineage_reach.saved()
    assert not saved.exists() and len(list(index.parent.glob(f"*{lineage_reach.SAVED_SUFFIX}"))) == 1
