"""The whole lineage graph of an index in memory, as integer arrays, for walks that reach far.

A walk that asks the index for one level of hops at a time (`LineageGraph.neighbours`) pays a query per
level. At a million column edges a join key's closure runs hundreds of levels deep and reaches a
hundred thousand nodes: tens of seconds. Here the graph is read once per index file (an index file never
changes: a new state of the workspace is a new file) into compressed sparse rows, and a walk is one
breadth-first search in C (scipy.sparse.csgraph), a few milliseconds.

Nodes, each an integer:
- columns `(dataset, field)` that column lineage names;
- whole datasets (a dataset reached as a whole: every column of it may change);
- job ends (a job that reads what was reached and writes nothing the events name);
- dataset starts: one per dataset, for a walk from a dataset (its columns and itself as a whole). Its
  hops to them are not lineage, so a walk from it drops them from paths and hop counts;
- bare columns: one per dataset, for a walk from a column no column lineage names (its dataset's job
  hops still reach on from it).
Hops (the rules of `lineage_graph`'s docstring):
- column edges between columns (DIRECT or INDIRECT), and from a column to its output dataset as a whole
  for a dataset-level use or a join, filter or grouping key;
- job hops from a column's dataset where the job sends no column lineage for that output;
- from a whole dataset, to every dataset a job that reads it writes (through its column lineage or its
  inputs and outputs), as a whole: once a dataset may change as a whole, so may everything written from
  it, and its columns are not walked one by one.
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, dijkstra

from meshpilot.errors import MeshpilotError

# Hop kinds, in the order a pair of nodes joined by several hops explains itself: the strongest first.
DIRECT, INDIRECT, JOB, START = 0, 1, 2, 3
KIND_NAMES = ("DIRECT", "INDIRECT", "JOB", "START")
ROW_DECIDING = ("JOIN", "FILTER", "GROUP_BY")
UNREACHED = -9999  # scipy's predecessor for a node the walk did not reach


@dataclass
class Hops:
    """One direction's hops as compressed sparse rows, with what each hop is."""

    matrix: csr_matrix
    kind: np.ndarray  # uint8, per stored hop
    subtype: np.ndarray  # int16, into LineageArrays.subtypes
    job: np.ndarray  # int32, into LineageArrays.jobs
    _pair: np.ndarray | None = None  # int64 row * n + column, sorted: where each hop (a -> b) is stored

    def find(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The position of the hop from each source to its target (both reached by a walk over it)."""
        n = self.matrix.shape[0]
        if self._pair is None:
            rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.matrix.indptr))
            self._pair = rows * n + self.matrix.indices
        return _search(self._pair, sources.astype(np.int64) * n + targets)


def _search(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """np.searchsorted, with the needles sorted first: they then walk the haystack in order, five times
    faster than random ones at 10^5 needles in 10^6."""
    if len(needles) < 64:
        return np.searchsorted(haystack, needles)
    order = np.argsort(needles)
    found = np.empty(len(needles), dtype=np.int64)
    found[order] = np.searchsorted(haystack, needles[order])
    return found


class CollisionError(MeshpilotError):
    exit_code = 3


def _hops(n: int, source: np.ndarray, target: np.ndarray, kind: np.ndarray, subtype: np.ndarray,
          job: np.ndarray) -> Hops:
    """Compressed rows of these hops; of several hops between the same two nodes, the strongest kind
    (then the first given) explains it."""
    pair = source.astype(np.int64) * n + target
    # One integer sort (pair, then kind); ties keep the order given, which is the index's row order.
    order = np.argsort(pair * 4 + kind, kind="stable")
    pair, kind, subtype, job = pair[order], kind[order], subtype[order], job[order]
    first = np.ones(len(pair), dtype=bool)
    first[1:] = pair[1:] != pair[:-1]
    pair, kind, subtype, job = pair[first], kind[first], subtype[first], job[first]
    rows, columns = np.divmod(pair, n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    # float64 data and int32 indices are what csgraph works on: anything else is copied at every walk.
    matrix = csr_matrix((np.ones(len(pair)), columns.astype(np.int32), indptr.astype(np.int32)), shape=(n, n))
    return Hops(matrix, kind.astype(np.uint8), subtype.astype(np.int16), job.astype(np.int32), pair)  # sorted


def _fetch(con: Any, sql: str, params: dict | None = None) -> dict[str, np.ndarray]:
    return con.execute(sql, params or {}).fetchnumpy()


def _strings(values: Any) -> dict[str, np.ndarray]:
    """An Arrow string column as two arrays (offsets, bytes), for a file numpy reads back whole."""
    array = pa.chunked_array([pc.fill_null(pa.array(values, pa.large_string()) if not isinstance(
        values, pa.ChunkedArray | pa.Array) else values.cast(pa.large_string()), "")]).combine_chunks()
    _, offsets, data = array.buffers()
    count = len(array) + 1
    return {"offsets": np.frombuffer(offsets, dtype=np.int64, count=count, offset=array.offset * 8).copy(),
            "data": np.frombuffer(data, dtype=np.uint8).copy() if data is not None else np.zeros(0, np.uint8)}


def _from_strings(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(pa.large_string(), len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


_SAVED_VERSION = 2  # of the file layout below: a file of another layout is rebuilt


class LineageArrays:
    """The nodes and hops of one index (see the module's docstring): `build` reads them from the index,
    `save` and `read` keep them in a file beside it."""

    # --- the file beside the index --------------------------------------------------------------------

    _HOPS = ("down", "up", "direct", "identity")
    _STRINGS = ("column_ns", "column_name", "column_field", "dataset_ns", "dataset_name", "jobs", "subtypes",
                "declared_field")
    _ARRAYS = ("column_keys", "dataset_keys", "column_dataset", "declared_dataset", "declared_node", "columns_by_dataset",
               "first_column", "writer")

    def save(self, path: Path) -> None:
        """Write the arrays to `path` (atomically: a reader sees the whole file or none)."""
        arrays: dict[str, Any] = {"version": np.array(_SAVED_VERSION), "sizes": np.array([self.c, self.d, self.j]),
                                  "mesh_refs": np.array(json.dumps(self.mesh_refs))}
        arrays.update((name, getattr(self, name)) for name in self._ARRAYS)
        strings = dict(zip(self._STRINGS, (*self.column_names, *self.dataset_names, self.jobs, self.subtypes,
                                           self.declared_field), strict=True))
        for name, values in strings.items():
            arrays.update((f"{name}.{part}", a) for part, a in _strings(values).items())
        for name in self._HOPS:
            hops: Hops = getattr(self, name)
            arrays.update({f"{name}.indptr": hops.matrix.indptr, f"{name}.indices": hops.matrix.indices,
                           f"{name}.kind": hops.kind, f"{name}.subtype": hops.subtype, f"{name}.job": hops.job})
        tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        with open(tmp, "wb") as out:
            np.savez(out, **arrays)
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> LineageArrays | None:
        """The arrays `save` wrote, or None when there is no such file (or one of another layout)."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                if int(saved["version"]) != _SAVED_VERSION:
                    return None
                self = cls.__new__(cls)
                self._by_name = None
                self.c, self.d, self.j = (int(x) for x in saved["sizes"])
                self.n = self.c + 3 * self.d + self.j
                self.mesh_refs = {int(k): v for k, v in json.loads(str(saved["mesh_refs"])).items()}
                self.in_mesh = np.isin(np.arange(self.d) + self.c, list(self.mesh_refs))
                for name in self._ARRAYS:
                    setattr(self, name, saved[name])
                strings = {name: _from_strings(saved[f"{name}.offsets"], saved[f"{name}.data"])
                           for name in self._STRINGS}
                self.column_names = (strings["column_ns"], strings["column_name"], strings["column_field"])
                self.dataset_names = (strings["dataset_ns"], strings["dataset_name"])
                self.jobs = strings["jobs"].to_pylist()
                self.subtypes = strings["subtypes"].to_pylist()
                self.declared_field = strings["declared_field"]
                for name in self._HOPS:
                    indptr, indices = saved[f"{name}.indptr"], saved[f"{name}.indices"]
                    matrix = csr_matrix((np.ones(len(indices)), indices, indptr), shape=(self.n, self.n))
                    setattr(self, name, Hops(matrix, saved[f"{name}.kind"], saved[f"{name}.subtype"],
                                             saved[f"{name}.job"]))
                return self
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            return None  # none, damaged or of another layout: built again from the index

    @classmethod
    def build(cls, con: Any) -> LineageArrays:
        self = cls.__new__(cls)
        self._by_name = None
        self._build(con)
        return self

    # --- building --------------------------------------------------------------------------------------

    def _build(self, con: Any) -> None:
        columns = con.sql(
            """SELECT k, min(ns) AS ns, min(name) AS name, min(field) AS field, any_value(d) AS d,
                      max(ns) > min(ns) OR max(name) > min(name) OR max(field) > min(field) AS shared FROM (
                 SELECT source_key AS k, source_namespace AS ns, source_name AS name, source_field AS field,
                        source_dataset AS d FROM column_edges
                 UNION ALL SELECT target_key, target_namespace, target_name, target_field, target_dataset
                        FROM column_edges WHERE target_field IS NOT NULL)
               GROUP BY k ORDER BY k""").to_arrow_table()
        datasets = con.sql(
            """SELECT k, min(ns) AS ns, min(name) AS name, max(ns) > min(ns) OR max(name) > min(name) AS shared FROM (
                 SELECT source_dataset AS k, source_namespace AS ns, source_name AS name FROM column_edges
                 UNION ALL SELECT target_dataset, target_namespace, target_name FROM column_edges
                 UNION ALL SELECT dataset, namespace, name FROM job_hops
                 UNION ALL SELECT hash(other_namespace, other_name), other_namespace, other_name FROM job_hops
                        WHERE other_name IS NOT NULL
                 UNION ALL SELECT hash(namespace, name), namespace, name FROM lineage_nodes WHERE kind = 'dataset')
               GROUP BY k ORDER BY k""").to_arrow_table()
        jobs = con.sql(
            """SELECT hash(job) AS k, min(job) AS job, max(job) > min(job) AS shared FROM (
                 SELECT job FROM column_edges UNION ALL SELECT job FROM job_hops) GROUP BY k ORDER BY k""").to_arrow_table()
        for table, what in ((columns, "columns"), (datasets, "datasets"), (jobs, "jobs")):
            if len(table) and table.column("shared").to_numpy(zero_copy_only=False).any():
                # 64-bit keys over names: about one workspace in 10^7 at ten million nodes.
                raise CollisionError(f"Two lineage {what} share one 64-bit key in this index, so lineage cannot "
                                     "be walked in memory.", hint="Report it with the workspace's lineage events.")
        self.column_keys = columns.column("k").to_numpy()
        self.column_names = (columns.column("ns"), columns.column("name"), columns.column("field"))
        self.dataset_keys = datasets.column("k").to_numpy()
        self.dataset_names = (datasets.column("ns"), datasets.column("name"))
        self.jobs = jobs.column("job").to_pylist()
        job_keys = jobs.column("k").to_numpy()
        self.c, self.d, self.j = len(self.column_keys), len(self.dataset_keys), len(self.jobs)
        self.n = self.c + 3 * self.d + self.j
        self.column_dataset = self._dataset(columns.column("d").to_numpy()) if self.c else np.zeros(0, np.int64)
        self._declared(con, datasets)

        subtypes = [""] + [s for (s,) in con.execute(
            "SELECT DISTINCT transformation_subtype FROM column_edges WHERE transformation_subtype IS NOT NULL "
            "ORDER BY 1").fetchall()] + ["READS"]
        self.subtypes = subtypes
        edges = _fetch(con, """SELECT source_key, source_dataset, target_key, target_dataset,
                                      target_field IS NULL AS to_dataset,
                                      CASE transformation_type WHEN 'INDIRECT' THEN 1 ELSE 0 END AS kind,
                                      list_position($subtypes, coalesce(transformation_subtype, '')) - 1 AS subtype,
                                      hash(job) AS job FROM column_edges""", {"subtypes": subtypes})
        hops = _fetch(con, """SELECT dataset, direction = 'down' AS down, hash(job) AS job,
                                     hash(other_namespace, other_name) AS other, other_name IS NULL AS job_end,
                                     precise FROM job_hops""")
        reads = len(subtypes) - 1
        row_deciding = np.isin(edges["subtype"], [subtypes.index(s) for s in ROW_DECIDING if s in subtypes])

        source = _search(self.column_keys, edges["source_key"])
        source_dataset = self._dataset(edges["source_dataset"])
        target_dataset = self._dataset(edges["target_dataset"])
        to_dataset = edges["to_dataset"].astype(bool)
        target = np.where(to_dataset, target_dataset,
                          _search(self.column_keys, edges["target_key"]).clip(0, max(self.c - 1, 0)))
        kind, subtype = edges["kind"].astype(np.uint8), edges["subtype"].astype(np.int16)
        job = _search(job_keys, edges["job"])
        whole = ~to_dataset & (kind == INDIRECT) & row_deciding  # a key: its output as a whole as well

        hop_dataset = self._dataset(hops["dataset"])
        job_end = hops["job_end"].astype(bool)
        hop_job = _search(job_keys, hops["job"])
        other = np.where(job_end, self.job_end(hop_job), self._dataset(np.where(job_end, hops["dataset"], hops["other"])))
        down = hops["down"].astype(bool)
        imprecise = ~hops["precise"].astype(bool)

        by_dataset = np.argsort(self.column_dataset, kind="stable")  # columns grouped by their dataset
        first_column = np.searchsorted(self.column_dataset[by_dataset], np.arange(self.d + 1) + self.c)
        self.columns_by_dataset, self.first_column = by_dataset, first_column

        def spread(datasets: np.ndarray, bare: bool = True) -> tuple[np.ndarray, np.ndarray]:
            """(index into `datasets`, column) for every column of each dataset (and its bare column)."""
            lo, hi = first_column[datasets - self.c], first_column[datasets - self.c + 1]
            counts = hi - lo
            which = np.repeat(np.arange(len(datasets)), counts)
            offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            columns = by_dataset[np.repeat(lo, counts) + offsets]
            if bare:
                which = np.concatenate([which, np.arange(len(datasets))])
                columns = np.concatenate([columns, self.bare(datasets)])
            return which, columns

        def job_hops(selected: np.ndarray) -> tuple[np.ndarray, ...]:
            n = int(selected.sum())
            return (np.full(n, JOB, np.uint8), np.full(n, reads, np.int16), hop_job[selected])

        starts = np.arange(self.d) + self.c
        start_of = self.start(starts)
        start_pairs = spread(starts, bare=False)
        start_hops = (np.concatenate([start_of[start_pairs[0]], start_of]),
                      np.concatenate([start_pairs[1], starts]))

        def with_starts(parts: list[tuple[np.ndarray, ...]], whole_too: bool = True) -> Hops:
            s, t = start_hops if whole_too else (start_hops[0][:-self.d or None], start_hops[1][:-self.d or None])
            parts = [*parts, (s, t, np.full(len(s), START, np.uint8), np.zeros(len(s), np.int16),
                              np.zeros(len(s), np.int32))]
            return _hops(self.n, *(np.concatenate([p[i] for p in parts]) for i in range(5)))

        # Downstream.
        sel = down & imprecise
        which, column = spread(hop_dataset[sel])
        column_job_hops = (column, other[sel][which], *(a[which] for a in job_hops(sel)))
        whole_edge = (source_dataset, target_dataset, np.full(len(kind), JOB, np.uint8),
                      np.full(len(kind), reads, np.int16), job)
        self.down = with_starts([
            (source, target, kind, subtype, job),
            (source[whole], target_dataset[whole], kind[whole], subtype[whole], job[whole]),
            column_job_hops, whole_edge,
            (hop_dataset[down], other[down], *job_hops(down)),
        ])
        direct = (kind == DIRECT) & ~to_dataset
        identity = direct & (edges["subtype"] == (subtypes.index("IDENTITY") if "IDENTITY" in subtypes else -2))
        self.direct = with_starts([(source[direct], target[direct], kind[direct], subtype[direct], job[direct])],
                                  whole_too=False)
        self.identity = with_starts([(source[identity], target[identity], kind[identity], subtype[identity],
                                      job[identity])], whole_too=False)

        # The one job that writes each dataset (-1: none, or several). Every hop into a dataset's nodes is
        # made by a job that writes it, so where one job does, a walk's hops need not be looked up.
        span = max(self.j, 1)
        written = np.unique((np.concatenate([target_dataset, other[down & ~job_end]]) - self.c).astype(np.int64) * span
                            + np.concatenate([job, hop_job[down & ~job_end]]))
        datasets_written, first, count = np.unique(written // span, return_index=True, return_counts=True)
        self.writer = np.full(self.d, -1, dtype=np.int32)
        self.writer[datasets_written[count == 1]] = written[first[count == 1]] % span

        # Upstream: each hop from the node a walk is at to the node it comes from.
        up = ~down & ~job_end
        which, column = spread(hop_dataset[up & imprecise])
        into_dataset = to_dataset  # a dataset-level use decides the rows of every column of its output
        which_use, column_use = spread(target_dataset[into_dataset])
        picked = np.flatnonzero(into_dataset)[which_use]
        self.up = with_starts([
            (target[~to_dataset], source[~to_dataset], kind[~to_dataset], subtype[~to_dataset], job[~to_dataset]),
            (column_use, source[picked], kind[picked], subtype[picked], job[picked]),
            (column, other[up & imprecise][which], *(a[which] for a in job_hops(up & imprecise))),
            (target_dataset, source_dataset, whole_edge[2], whole_edge[3], job),
            (hop_dataset[up], other[up], *job_hops(up)),
        ])

    def _declared(self, con: Any, datasets: Any) -> None:
        """The catalog dataset of each lineage dataset (the one of that name whose namespace matches, or that
        has none; of several, the last by reference) and the columns each declares: its catalog
        dataset's, else its newest schema facet's."""
        con.register("reach_datasets", datasets)
        try:
            con.execute("""CREATE OR REPLACE TEMP TABLE reach_mesh AS SELECT l.k, max(d.ref) AS ref
                           FROM reach_datasets l JOIN datasets d ON d.qualified_name = l.name
                             AND (d.namespace IS NULL OR d.namespace = l.ns) GROUP BY l.k""")
            self.mesh_refs = {int(self._dataset(np.array([k], dtype=np.uint64))[0]): ref for k, ref in
                              con.execute("SELECT k, ref FROM reach_mesh").fetchall()}
            self.in_mesh = np.isin(np.arange(self.d) + self.c, list(self.mesh_refs))
            declared = _fetch(con, """
                SELECT m.k AS d, hash(l.ns, l.name, c.name) AS k, c.name AS field, c.position AS pos
                  FROM reach_mesh m JOIN columns c ON c.dataset_ref = m.ref JOIN reach_datasets l ON l.k = m.k
                UNION ALL
                SELECT d, hash(ns, name, field), field, min(pos) FROM (
                  SELECT hash(namespace, name) AS d, namespace AS ns, name,
                         unnest(json_extract_string(facets, '$.schema.fields[*].name')) AS field,
                         generate_subscripts(json_extract_string(facets, '$.schema.fields[*].name'), 1) AS pos
                  FROM lineage_nodes WHERE kind = 'dataset' AND hash(namespace, name) NOT IN
                        (SELECT m.k FROM reach_mesh m JOIN columns c ON c.dataset_ref = m.ref))
                WHERE field IS NOT NULL GROUP BY ALL ORDER BY 1, 4""")
            con.execute("DROP TABLE reach_mesh")
        finally:
            con.unregister("reach_datasets")
        self.declared_dataset = self._dataset(declared["d"])
        at = _search(self.column_keys, declared["k"]).clip(0, max(self.c - 1, 0))
        known = (self.column_keys[at] == declared["k"]) if self.c else np.zeros(len(at), dtype=bool)
        self.declared_node = np.where(known, at, -1)
        self.declared_field = pa.array(declared["field"], pa.large_string())

    def _dataset(self, keys: np.ndarray) -> np.ndarray:
        return _search(self.dataset_keys, keys) + self.c

    # --- node ids --------------------------------------------------------------------------------------

    def start(self, dataset: Any) -> Any:
        return dataset + self.d

    def bare(self, dataset: Any) -> Any:
        return dataset + 2 * self.d

    def job_end(self, job: Any) -> Any:
        return job + self.c + 3 * self.d

    def kind_of(self, node: int) -> str:
        if node < self.c:
            return "column"
        if node < self.c + self.d:
            return "dataset"
        if node < self.c + 2 * self.d:
            return "start"
        return "bare" if node < self.c + 3 * self.d else "job"

    def dataset_of_node(self, node: int) -> int:
        """`dataset_of` for one node."""
        if node < self.c:
            return int(self.column_dataset[node])
        return self.c + (node - self.c) % self.d if node < self.c + 3 * self.d else -1

    def dataset_of(self, nodes: np.ndarray) -> np.ndarray:
        """The whole-dataset node of each column, dataset, dataset start or bare column node (-1 for job
        ends)."""
        nodes = np.asarray(nodes, dtype=np.int64)
        if not self.d:
            return np.full(nodes.shape, -1, dtype=np.int64)
        # Whole datasets, dataset starts and bare columns are three blocks of d nodes each, in one order.
        out = np.where(nodes < self.c, self.column_dataset[np.clip(nodes, 0, max(self.c - 1, 0))] if self.c else -1,
                       self.c + (nodes - self.c) % self.d)
        out[nodes >= self.c + 3 * self.d] = -1
        return out

    def find_dataset(self, namespace: str | None, name: str) -> int | None:
        """The whole-dataset node of a dataset as events name it."""
        if self._by_name is None:  # built at the first lookup: a dictionary of every dataset's name
            namespaces, names = (a.to_pylist() for a in self.dataset_names)
            self._by_name = {(ns or "", n): at + self.c for at, (ns, n) in enumerate(zip(namespaces, names,
                                                                                         strict=True))}
        return self._by_name.get((namespace or "", name))

    def find_column(self, dataset: int, field: str) -> int | None:
        """The node of a dataset's column that column lineage names."""
        at = dataset - self.c
        for column in self.columns_by_dataset[self.first_column[at]:self.first_column[at + 1]].tolist():
            if self.column_names[2][column].as_py() == field:
                return column
        return None

    def declared_columns(self, dataset: int) -> list[str]:
        """The columns a dataset node declares (its catalog dataset's, else its newest schema facet's)."""
        lo, hi = np.searchsorted(self.declared_dataset, [dataset, dataset + 1])
        return self.declared_field[int(lo):int(hi)].to_pylist()

    def label(self, node: int, field: str | None = None) -> str:
        """A column or dataset node (or a dataset's `field`) as a reader writes it: its mesh:// reference
        where it belongs to a product, else <namespace>/<name>[#<field>] as events name it."""
        namespace, name, own = self.names(node)
        field = field or own
        ref = self.mesh_refs.get(self.dataset_of_node(node))
        if ref:
            return f"{ref}#{field}" if field else ref
        key = f"{namespace or ''}/{name}"
        return f"{key}#{field}" if field else key

    def names(self, node: int) -> tuple[str, str, str | None]:
        """(namespace, dataset name, field or None) of a column or dataset node."""
        if node < self.c:
            return tuple(names[node].as_py() for names in self.column_names)  # type: ignore[return-value]
        at = node - self.c
        return self.dataset_names[0][at].as_py() or "", self.dataset_names[1][at].as_py(), None

    def job_name(self, node: int) -> str:
        return self.jobs[node - self.c - 3 * self.d]

    # --- walking ---------------------------------------------------------------------------------------

    def walk(self, hops: Hops, start: int, depth: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(reached nodes in breadth-first order, predecessor of every node) from `start`, at most
        `depth` hops of lineage (a dataset start's own hops are not counted)."""
        if depth is None:
            order, predecessors = breadth_first_order(hops.matrix, start, directed=True, return_predecessors=True)
            return order, predecessors
        distance, predecessors = self.distances(hops, start, depth, predecessors=True)
        reached = np.flatnonzero(np.isfinite(distance))
        order = reached[np.argsort(distance[reached], kind="stable")]
        return order, predecessors

    def distances(self, hops: Hops, start: int, depth: int | None = None, predecessors: bool = False) -> Any:
        """Hops from `start` to every node (inf: not reached within `depth` hops of lineage), and with
        `predecessors`, the walk's predecessor of each."""
        extra = 1 if self.kind_of(start) == "start" else 0
        return dijkstra(hops.matrix, directed=True, indices=start, unweighted=True, return_predecessors=predecessors,
                        limit=np.inf if depth is None else depth + extra + 0.5)


class Reach:
    """A walk from one node: the nodes it reached (breadth-first order, the start and a dataset start's
    columns left out), and for a downstream walk with a change, which of them break: those a chain of
    DIRECT column edges (for a type change, IDENTITY copies) reaches from a changed column. Each reached
    node is explained by the tree of the walk that decides its status."""

    def __init__(self, arrays: LineageArrays, start: int, downstream: bool, depth: int | None,
                 change: str | None = None):
        self.arrays, self.start, self.downstream = arrays, start, downstream
        self.hops = arrays.down if downstream else arrays.up
        order, self.predecessors = arrays.walk(self.hops, start, depth)
        self.nodes = self._lineage(order, self.predecessors)
        self.broken = np.zeros(len(self.nodes), dtype=bool)
        self._trees: dict[int, tuple[Hops, np.ndarray]] = {}
        strict = {"drop": arrays.direct, "rename": arrays.direct, "type": arrays.identity}.get(change or "")
        if downstream and strict is not None:
            chained, predecessors = arrays.walk(strict, start, depth)
            marked = np.zeros(arrays.n, dtype=bool)  # zeroed pages are free until touched
            marked[self._lineage(chained, predecessors)] = True
            self.broken = marked[self.nodes]
            self._trees.update((int(n), (strict, predecessors)) for n in self.nodes[self.broken])

    def _lineage(self, order: np.ndarray, predecessors: np.ndarray) -> np.ndarray:
        """The reached nodes but the start (and a dataset start's columns and whole dataset)."""
        if self.arrays.kind_of(self.start) == "start":
            return order[(order != self.start) & (predecessors[order] != self.start)]
        return order[order != self.start]

    def is_root(self, node: int) -> bool:
        return node == self.start or self.predecessors[node] == self.start and \
            self.arrays.kind_of(self.start) == "start"

    def jobs_of(self, nodes: np.ndarray, hops: Hops, predecessors: np.ndarray) -> np.ndarray:
        """The job (index into `arrays.jobs`) of the hop of the walk over `hops` into each of `nodes`."""
        arrays = self.arrays
        # Downstream, a hop into a node is made by a job that writes the node's dataset; upstream, by one
        # that writes the dataset the walk comes from.
        written = arrays.dataset_of(nodes if self.downstream else predecessors[nodes])
        jobs = np.where(written >= 0, arrays.writer[np.maximum(written - arrays.c, 0)], -1).astype(np.int64)
        unknown = jobs < 0
        if unknown.any():
            jobs[unknown] = hops.job[hops.find(predecessors[nodes[unknown]], nodes[unknown])]
        return jobs

    def tree(self, node: int) -> tuple[Hops, np.ndarray]:
        return self._trees.get(node, (self.hops, self.predecessors))

    def previous(self, node: int) -> tuple[int, int, str, str]:
        """(previous node, hop kind, subtype, job) of the hop that explains how the walk reached `node`."""
        hops, predecessors = self.tree(node)
        previous = int(predecessors[node])
        at = int(hops.find(np.array([previous]), np.array([node]))[0])
        arrays = self.arrays
        return previous, int(hops.kind[at]), arrays.subtypes[hops.subtype[at]], arrays.jobs[hops.job[at]]

    def chain(self, node: int) -> list[tuple[int, int, int, str, str]]:
        """The hops from the start to `node`: (from, to, kind, subtype, job), in the walk's direction."""
        hops = []
        while not self.is_root(node):
            previous, kind, subtype, job = self.previous(node)
            hops.append((previous, node, kind, subtype, job))
            node = previous
        return hops[::-1]


_CACHE: OrderedDict[str, LineageArrays] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_KEEP = 2  # a long-running server holds the current index and, while it is swapped, the previous one


_SAVING: list[threading.Thread] = []


def saved() -> None:
    """Wait until the files being written beside their indexes are written."""
    while _SAVING:
        _SAVING.pop().join()


def _save(arrays: LineageArrays, path: Path) -> None:
    try:
        arrays.save(path)
    except OSError:
        pass  # a read-only workspace: built again by the next process, still correct


def saved_path(index: Path) -> Path:
    """Where the arrays of an index file are kept (beside it; removed with it)."""
    return index.with_name(f"{index.stem}{SAVED_SUFFIX}")


SAVED_SUFFIX = ".lineage.npz"


def load(con: Any, path: Path | None) -> LineageArrays:
    """The arrays of the index at `path`: read once per process and index file, from the file beside it
    (built from the index, and saved there, by the first process that asks)."""
    if path is None:
        return LineageArrays.build(con)
    key = str(path)
    with _CACHE_LOCK:
        arrays = _CACHE.get(key)
        if arrays is None:
            saved = saved_path(path)
            arrays = LineageArrays.read(saved)
            if arrays is None:
                arrays = LineageArrays.build(con)
                # Written while the question is answered; a one-shot command's process waits for it at
                # exit (not a daemon), after its answer is out.
                saving = threading.Thread(target=_save, args=(arrays, saved), name="lineage-arrays-save")
                _SAVING.append(saving)
                saving.start()
            _CACHE[key] = arrays
            while len(_CACHE) > _KEEP:
                _CACHE.popitem(last=False)
        _CACHE.move_to_end(key)
        return arrays
