"""The metadata index: the workspace's files, validated and loaded into DuckDB.

Tools answer with queries over this index rather than re-reading YAML. It is derived state, one file
per state of the source files (`.meshpilot/index/<fingerprint>.duckdb`, the fingerprint of their paths,
sizes and modification times): written whole to a temporary file and then renamed, so readers never
see a half-built one, and never changed afterwards, so a process may keep it open across calls.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import secrets
import shutil
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from meshpilot.errors import NotFoundError
from meshpilot.mesh import files
from meshpilot.mesh.lineage import (
    LineageEvent,
    NodeRecord,
    column_edges,
    job_io,
    node_records,
    output_schema,
    schema_versions,
)
from meshpilot.mesh.model import CheckResult, DataProduct, MeshRef, column_ref_text
from meshpilot.mesh.workspace import Mesh, Workspace, parse_event_line

INDEX_DIR = "index"
SCHEMA_VERSION = "10"

_DDL = """
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR);
-- digest: of a lineage log's bytes, so that events appended to it are indexed without a rebuild.
CREATE TABLE sources (path VARCHAR PRIMARY KEY, size BIGINT, mtime_ns BIGINT, digest VARCHAR);
CREATE TABLE teams (id VARCHAR PRIMARY KEY, name VARCHAR, domain VARCHAR, description VARCHAR,
    slack_channel VARCHAR, oncall VARCHAR, parent VARCHAR);
CREATE TABLE team_members (team_id VARCHAR, name VARCHAR, email VARCHAR, role VARCHAR);
-- A product's JSON is in the documents file the meta table names, at document_at (document_size bytes):
-- see `_Documents`. digest: the md5 of that JSON, for change detection. Consumers and SLOs (as in it)
-- are here too, for the lineage and triage reports that read them for many products at once.
CREATE TABLE products (ref VARCHAR PRIMARY KEY, domain VARCHAR, id VARCHAR, name VARCHAR, owner VARCHAR,
    description VARCHAR, status VARCHAR, version VARCHAR, tags VARCHAR[], contract VARCHAR, source VARCHAR,
    consumers JSON, slos JSON, document_at BIGINT, document_size BIGINT, digest VARCHAR, file VARCHAR);
CREATE TABLE datasets (ref VARCHAR PRIMARY KEY, product_ref VARCHAR, name VARCHAR, qualified_name VARCHAR,
    namespace VARCHAR, description VARCHAR, port VARCHAR, port_kind VARCHAR, location VARCHAR,
    row_count BIGINT, last_updated TIMESTAMPTZ, tags VARCHAR[]);
CREATE TABLE columns (ref VARCHAR, dataset_ref VARCHAR, position INTEGER, name VARCHAR, type VARCHAR,
    description VARCHAR, nullable BOOLEAN, primary_key BOOLEAN, "references" VARCHAR, tags VARCHAR[],
    classification VARCHAR);
CREATE TABLE foreign_keys (dataset_ref VARCHAR, column_name VARCHAR, other_ref VARCHAR, other_column VARCHAR);
CREATE TABLE checks (dataset_ref VARCHAR, id VARCHAR, kind VARCHAR, column_name VARCHAR, description VARCHAR,
    params JSON, severity VARCHAR);
CREATE TABLE check_results (dataset_ref VARCHAR, check_id VARCHAR, status VARCHAR, run_at TIMESTAMPTZ,
    observed JSON, message VARCHAR);
CREATE TABLE incidents (id VARCHAR PRIMARY KEY, title VARCHAR, status VARCHAR, severity VARCHAR,
    opened_at TIMESTAMPTZ, resolved_at TIMESTAMPTZ, products VARCHAR[], datasets VARCHAR[], check_id VARCHAR,
    assignee VARCHAR, summary VARCHAR, root_cause VARCHAR, document JSON);
CREATE TABLE lineage_events (event_id VARCHAR PRIMARY KEY, kind VARCHAR, event_type VARCHAR,
    event_time TIMESTAMPTZ, run_id VARCHAR, job VARCHAR, payload JSON);
-- Which datasets each job read and wrote, over all its events (a set): dataset-level lineage, which needs
-- no column lineage. A dataset edge is an input and an output of the same job.
CREATE TABLE job_io (job VARCHAR, direction VARCHAR, namespace VARCHAR, name VARCHAR);
CREATE VIEW dataset_edges AS
    SELECT DISTINCT i.namespace AS source_namespace, i.name AS source_name, o.namespace AS target_namespace,
           o.name AS target_name, i.job
    FROM job_io i JOIN job_io o ON o.job = i.job AND o.direction = 'output'
    WHERE i.direction = 'input' AND (i.namespace <> o.namespace OR i.name <> o.name);
-- The (job, output) pairs the job sent column lineage for: there column edges say exactly what it uses;
-- elsewhere a job is taken to use all of what it reads.
CREATE TABLE column_lineage_outputs (job VARCHAR, namespace VARCHAR, name VARCHAR);
-- Every dataset and job events name (kind 'dataset' or 'job'), with the newest value of each facet
-- (see mesh.lineage.NodeRecord): datasets exist once an event names them, in a product or not.
CREATE TABLE lineage_nodes (kind VARCHAR, namespace VARCHAR, name VARCHAR, first_seen TIMESTAMPTZ,
    last_seen TIMESTAMPTZ, facets JSON, facet_times JSON);
CREATE VIEW runs AS
    SELECT run_id, any_value(job) AS job, min(event_time) AS started_at, max(event_time) AS ended_at,
           arg_max(event_type, event_time) AS state,
           max(json_extract_string(payload, '$.run.facets.errorMessage.message')) AS error
    FROM lineage_events WHERE run_id IS NOT NULL GROUP BY run_id;
-- Each dataset's schema each time it changed (from schema facets), with what changed: computed once per
-- build, not by every process that asks what changed upstream.
CREATE TABLE schema_versions (namespace VARCHAR, name VARCHAR, event_time TIMESTAMPTZ, job VARCHAR, fields JSON,
    change VARCHAR);
-- *_key: hash(namespace, name, field) of a column, *_dataset: hash(namespace, name) of its dataset: a walk
-- joins its frontier on one integer instead of three strings (twice as fast at a million edges); rows
-- are stored in source_key order, so a lookup reads few row groups.
CREATE TABLE column_edges (source_namespace VARCHAR, source_name VARCHAR, source_field VARCHAR,
    target_namespace VARCHAR, target_name VARCHAR, target_field VARCHAR, transformation_type VARCHAR,
    transformation_subtype VARCHAR, description VARCHAR, job VARCHAR, source_key UBIGINT, source_dataset UBIGINT,
    target_key UBIGINT, target_dataset UBIGINT);
-- For each dataset (hash(namespace, name)), the hops its jobs make: 'down' to each output of a job that
-- reads it, 'up' to each input of a job that writes it; precise: the job sent column lineage for the
-- output. other_name NULL: a job that reads it and writes nothing. Kept per job (replaced when new
-- events name the job), so a walk reads one table on one integer.
CREATE TABLE job_hops (dataset UBIGINT, direction VARCHAR, job VARCHAR, namespace VARCHAR, name VARCHAR,
    other_namespace VARCHAR, other_name VARCHAR, precise BOOLEAN);
"""


def fingerprint(workspace: Workspace, stamps: dict[str, tuple[int, int]] | None = None) -> str:
    digest = hashlib.sha256(SCHEMA_VERSION.encode())
    for relative, (size, mtime) in sorted((stamps or workspace.source_stamps()).items()):
        digest.update(f"{relative}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()


def index_path(workspace: Workspace, workspace_fingerprint: str) -> Path:
    return workspace.state_dir / INDEX_DIR / f"{workspace_fingerprint[:32]}.duckdb"


class _Documents:
    """The products' JSON of an index, outside DuckDB, in a file that is only ever appended to.

    In the database, one product's JSON changed meant its whole row group rewritten when the new state was
    checkpointed (the 32 MB of 1,000 products at 10k datasets: 0.1-0.15 s of every one-product change), and
    copied with the rest for each state. Here a new state appends its changed products to the file of the
    state it came from and points at them; earlier states never read past what they wrote, so the file is
    shared, not copied. A full build starts a new file. Reads are positioned (no seek), safe across threads.
    """

    def __init__(self, path: Path):
        self.path = path
        self._handle = path.open("rb")  # opened once: a later state's clean-up may unlink the file

    @staticmethod
    def append(path: Path, texts: Iterable[str]) -> list[tuple[int, int, str]]:
        """Append the texts; returns each one's (offset, size, md5). Encoded as they are written, a
        megabyte a write: a full build at 100k datasets has 320 MB of them."""
        placed: list[tuple[int, int, str]] = []

        def chunks() -> Iterator[bytes]:
            pending, position = [], 0
            for text in texts:
                data = text.encode("utf-8")
                placed.append((position, len(data), hashlib.md5(data).hexdigest()))
                position += len(data)
                pending.append(data)
                if position - placed[-len(pending)][0] >= 1 << 20:
                    yield b"".join(pending)
                    pending = []
            yield b"".join(pending)

        start = files.append_shared(path, chunks())
        return [(start + at, size, digest) for at, size, digest in placed]

    def read(self, offset: int, size: int) -> str:
        data = os.pread(self._handle.fileno(), size, offset)
        if len(data) != size:
            raise OSError(f"{self.path} ends before a product's document: the index is damaged")
        return data.decode("utf-8")

    def mostly_replaced(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Whether most of the file is documents that no product of this state has any more (replaced
        ones): then a full build starts a new file rather than appending to it."""
        (live,) = con.execute("SELECT coalesce(sum(document_size), 0) FROM products").fetchone()
        return os.fstat(self._handle.fileno()).st_size > 2 * live + (1 << 20)


def _documents_path(index: Path, con: duckdb.DuckDBPyConnection) -> Path | None:
    row = con.execute("SELECT value FROM meta WHERE key = 'documents'").fetchone()
    return index.parent / row[0] if row else None


# Open index databases of this process (and their documents), by path. Opening a DuckDB database costs
# 15-30 ms (its catalog of functions is built per instance), more than a whole query: a server reuses them,
# handing out one cursor per store. Safe because an index file never changes once written (a new state is
# a new file).
_DATABASES: dict[str, tuple[duckdb.DuckDBPyConnection, _Documents]] = {}
_DATABASES_LOCK = threading.Lock()
_KEEP_OPEN = 4


def _opened(path: Path) -> tuple[duckdb.DuckDBPyConnection, _Documents] | None:
    key = str(path)
    with _DATABASES_LOCK:
        opened = _DATABASES.get(key)
        if opened is None:
            try:
                database = duckdb.connect(key, read_only=True)
                database.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                documents = _documents_path(path, database)
                if documents is None:
                    return None
                opened = (database, _Documents(documents))
            except (duckdb.Error, OSError):
                return None  # unreadable, half-written by a crashed build, or its documents gone: built again
            while len(_DATABASES) >= _KEEP_OPEN:
                _DATABASES.pop(next(iter(_DATABASES)))  # the oldest: its open cursors keep it alive
            _DATABASES[key] = opened
        return opened[0].cursor(), opened[1]


def _cursor(path: Path) -> duckdb.DuckDBPyConnection | None:
    opened = _opened(path)
    return opened[0] if opened is not None else None


def _forget(path: Path) -> None:
    with _DATABASES_LOCK:
        _DATABASES.pop(str(path), None)


class MeshStore:
    """Read access to the index of one workspace."""

    def __init__(self, workspace: Workspace, connection: duckdb.DuckDBPyConnection, documents: _Documents,
                 workspace_fingerprint: str = "", path: Path | None = None):
        self.workspace = workspace
        self.con = connection
        self.documents = documents
        self.fingerprint = workspace_fingerprint
        self.path = path

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """Another connection to the same index, for a reader that outlives this store (a lazily read
        graph); it stays valid when the store is closed."""
        cursor = _cursor(self.path) if self.path is not None else None
        return cursor if cursor is not None else self.con.cursor()

    @classmethod
    def open(cls, workspace: Workspace) -> MeshStore:
        """Open the index read-only, building it first if the workspace's files have changed (only the
        changed products when that gives the same index)."""
        stamps = workspace.source_stamps()
        wanted = fingerprint(workspace, stamps)
        path = index_path(workspace, wanted)
        opened = _opened(path) if path.exists() else None
        if opened is None:
            _forget(path)
            previous = _newest_index(workspace, besides=path)
            if previous is None or not update_index(workspace, previous, path, wanted, stamps):
                build_index(workspace.load(), path, wanted, stamps, workspace.root)
            opened = _opened(path)
            if opened is None:
                raise OSError(f"the metadata index {path} could not be opened after it was built")
            _remove_older(workspace, keep=path, documents=opened[1].path)
        return cls(workspace, opened[0], opened[1], wanted, path)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> MeshStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # --- products -----------------------------------------------------------------------------------

    def list_products(self, domain: str | None = None) -> list[dict[str, Any]]:
        return self._rows(
            """
            SELECT p.ref, p.domain, p.id, p.name, p.owner, p.status, p.version, p.tags, p.source,
                   count(d.ref) AS datasets
            FROM products p LEFT JOIN datasets d ON d.product_ref = p.ref
            WHERE ? IS NULL OR p.domain = ?
            GROUP BY ALL ORDER BY p.domain, p.id
            """,
            [domain, domain],
        )

    def product_names(self) -> list[tuple[str, str]]:
        """(ref, name) of every product, by reference: `list_products` without its per-product counts."""
        return self.con.execute("SELECT ref, name FROM products ORDER BY ref").fetchall()

    def resolve_product(self, text: str) -> MeshRef:
        """A product from `mesh://d/p`, `d/p` or a bare id that is unique across domains."""
        text = text.strip()
        if text.startswith("mesh://"):
            ref = MeshRef.parse(text).product_ref()
            candidates = self._rows("SELECT ref FROM products WHERE ref = ?", [str(ref)])
        elif "/" in text:
            domain, _, product = text.partition("/")
            candidates = self._rows("SELECT ref FROM products WHERE domain = ? AND id = ?", [domain, product])
        else:
            candidates = self._rows("SELECT ref FROM products WHERE id = ? OR lower(name) = lower(?)", [text, text])
        if len(candidates) == 1:
            return MeshRef.parse(candidates[0]["ref"])
        if len(candidates) > 1:
            refs = ", ".join(c["ref"] for c in candidates)
            raise NotFoundError(f"'{text}' names more than one product: {refs}", hint="Name it as <domain>/<product>.")
        known = [f"{r['domain']}/{r['id']}" for r in self._rows("SELECT domain, id FROM products ORDER BY ALL")]
        close = difflib.get_close_matches(text, known + [k.split("/")[1] for k in known], n=3)
        hint = f"Did you mean {', '.join(close)}?" if close else "List them with `meshpilot products list`."
        raise NotFoundError(f"No product '{text}' in this workspace.", hint=hint)

    def product_digests(self) -> list[tuple[str, str, str | None]]:
        """(ref, digest of its stored JSON, contract path) of every product: change detection without
        fetching 10k documents (1 GB at 100k datasets)."""
        return self.con.execute("SELECT ref, digest, contract FROM products ORDER BY ref").fetchall()

    def product_json(self, ref: str) -> str:
        """A product's stored JSON, by its exact reference (a point lookup)."""
        row = self.con.execute("SELECT document_at, document_size FROM products WHERE ref = ?", [ref]).fetchone()
        if row is None:
            raise NotFoundError(f"No product '{ref}' in this workspace.")
        return self.documents.read(*row)

    def products_json(self, refs: list[str] | None = None) -> Iterator[tuple[str, str]]:
        """(ref, stored JSON) of these products (unknown ones left out), or of every product, in
        reference order: one query for many."""
        rows = self.con.execute("SELECT ref, document_at, document_size FROM products "
                                "WHERE $refs IS NULL OR list_contains($refs, ref) ORDER BY ref", {"refs": refs}).fetchall()
        return ((ref, self.documents.read(at, size)) for ref, at, size in rows)

    def product(self, text: str) -> DataProduct:
        return DataProduct.model_validate_json(self.product_json(str(self.resolve_product(text))))

    def product_details(self, text: str) -> dict[str, Any]:
        """A product with what surrounds it: owner team, checks' latest results, incidents, neighbours."""
        product = self.product(text)
        ref = str(product.ref)
        return {
            "ref": ref,
            "product": product.model_dump(mode="json", exclude_none=True),
            "owner_team": self._owner_team(product.owner),
            "latest_checks": self._latest_checks("product_ref", ref),
            "incidents": self._rows(
                """SELECT id, title, status, severity, opened_at, resolved_at FROM incidents
                   WHERE list_contains(products, ?) ORDER BY opened_at DESC""",
                [ref],
            ),
            "upstream": self._neighbours("product_ref", ref, upstream=True),
            "downstream": self._neighbours("product_ref", ref, upstream=False),
        }

    def _neighbours(self, scope: str, ref: str, upstream: bool) -> list[dict[str, Any]]:
        """Datasets one lineage edge away from a product's datasets (scope 'product_ref') or one dataset ('ref')."""
        _check_scope(scope)
        mine, other = ("target", "source") if upstream else ("source", "target")
        return self._rows(
            f"""
            SELECT DISTINCT e.{other}_namespace AS namespace, e.{other}_name AS name, o.ref AS dataset_ref,
                   o.product_ref, e.job
            FROM dataset_edges e
            JOIN datasets m ON m.qualified_name = e.{mine}_name
                 AND (m.namespace IS NULL OR m.namespace = e.{mine}_namespace)
            LEFT JOIN datasets o ON o.qualified_name = e.{other}_name
                 AND (o.namespace IS NULL OR o.namespace = e.{other}_namespace)
            WHERE m.{scope} = ? AND (o.{scope} IS NULL OR o.{scope} <> ?)
            ORDER BY ALL
            """,
            [ref, ref],
        )

    def _latest_checks(self, scope: str, ref: str) -> list[dict[str, Any]]:
        _check_scope(scope)
        return self._rows(
            f"""
            SELECT c.dataset_ref, c.id AS check_id, c.kind, c.column_name, c.severity,
                   r.status, r.run_at, r.observed, r.message
            FROM checks c JOIN datasets d ON d.ref = c.dataset_ref
            LEFT JOIN (SELECT * FROM check_results
                       QUALIFY row_number() OVER (PARTITION BY dataset_ref, check_id
                                                  ORDER BY run_at DESC NULLS LAST) = 1) r
              ON r.dataset_ref = c.dataset_ref AND r.check_id = c.id
            WHERE d.{scope} = ? ORDER BY c.dataset_ref, c.id
            """,
            [ref],
        )

    def _owner_team(self, team_id: str | None) -> dict[str, Any] | None:
        team = self._rows("SELECT * FROM teams WHERE id = ?", [team_id])
        members = self._rows("SELECT name, email, role FROM team_members WHERE team_id = ?", [team_id])
        return {**team[0], "members": members} if team else None

    def dataset_details(self, ref: str) -> dict[str, Any]:
        """A dataset with its product's owners and SLOs, freshness, latest checks and lineage neighbours."""
        rows = self._rows("SELECT * FROM datasets WHERE ref = ?", [ref])
        if not rows:
            known = [r["ref"] for r in self._rows("SELECT ref FROM datasets ORDER BY ref")]
            close = difflib.get_close_matches(ref, known, n=3)
            raise NotFoundError(f"No dataset {ref} in this workspace.",
                                hint=f"Did you mean {', '.join(close)}?" if close else "List them with `meshpilot datasets list`.")
        row = rows[0]
        product = self.product(row["product_ref"])
        dataset = product.dataset(row["name"])
        return {
            "ref": ref,
            "product_ref": row["product_ref"],
            "dataset": dataset.model_dump(mode="json", exclude_none=True),
            "port": {"name": row["port"], "kind": row["port_kind"], "location": row["location"]},
            "owner_team": self._owner_team(product.owner),
            "slos": [s.model_dump(mode="json", exclude_none=True) for s in product.slos
                     if s.dataset in (None, dataset.name)],
            "contract": product.contract,
            "freshness": {"last_updated": row["last_updated"], "row_count": row["row_count"]},
            "latest_checks": self._latest_checks("ref", ref),
            "upstream": self._neighbours("ref", ref, upstream=True),
            "downstream": self._neighbours("ref", ref, upstream=False),
        }

    # --- datasets -----------------------------------------------------------------------------------

    def list_datasets(self, domain: str | None = None, product: str | None = None) -> list[dict[str, Any]]:
        product_ref = str(self.resolve_product(product)) if product else None
        return self._rows(
            """
            SELECT d.ref, d.product_ref, d.name, d.qualified_name, d.port_kind, d.row_count, d.last_updated,
                   count(c.ref) AS columns, count(c.classification) AS classified_columns
            FROM datasets d JOIN products p ON p.ref = d.product_ref
            LEFT JOIN columns c ON c.dataset_ref = d.ref
            WHERE (? IS NULL OR p.domain = ?) AND (? IS NULL OR d.product_ref = ?)
            GROUP BY ALL ORDER BY d.ref
            """,
            [domain, domain, product_ref, product_ref],
        )

    def foreign_keys(self) -> dict[str, list[tuple[str, str, str]]]:
        """dataset ref -> [(column, other dataset ref, other column)], both directions: computed once per
        index build, so a call never walks the whole catalog."""
        graph: dict[str, list[tuple[str, str, str]]] = {}
        for here, column, there, other in self.con.execute("SELECT * FROM foreign_keys ORDER BY ALL").fetchall():
            graph.setdefault(here, []).append((column, there, other))
            graph.setdefault(there, []).append((other, here, column))
        return graph

    def foreign_keys_of(self, dataset_refs: list[str]) -> dict[str, list[tuple[str, str, str]]]:
        """The foreign keys of these datasets, both directions, as in `foreign_keys` (one query)."""
        found: dict[str, list[tuple[str, str, str]]] = {ref: [] for ref in dataset_refs}
        for here, column, there, other in self.con.execute(
                """SELECT dataset_ref, column_name, other_ref, other_column FROM foreign_keys
                   WHERE list_contains($refs, dataset_ref)
                   UNION ALL
                   SELECT other_ref, other_column, dataset_ref, column_name FROM foreign_keys
                   WHERE list_contains($refs, other_ref)
                   ORDER BY ALL""", {"refs": dataset_refs}).fetchall():
            found[here].append((column, there, other))
        return found

    def counts(self) -> dict[str, int]:
        tables = ["products", "datasets", "columns", "teams", "checks", "check_results", "incidents",
                  "lineage_events", "dataset_edges", "column_edges", "lineage_nodes"]
        return {t: self.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def _check_scope(scope: str) -> None:
    # The scope is interpolated into SQL: only these two column names may get there.
    if scope not in ("product_ref", "ref"):
        raise ValueError(f"unknown scope {scope!r}")


def index_loaded(workspace: Workspace, mesh: Mesh) -> None:
    """Index a mesh just loaded and validated from the workspace's files as they are now (an import
    has it in hand): the next command then finds its index built, without parsing every file again."""
    stamps = workspace.source_stamps()
    wanted = fingerprint(workspace, stamps)
    path = index_path(workspace, wanted)
    if not path.exists():
        _remove_older(workspace, keep=path, documents=build_index(mesh, path, wanted, stamps, workspace.root))


def _newest_index(workspace: Workspace, besides: Path) -> Path | None:
    folder = workspace.state_dir / INDEX_DIR
    candidates = [p for p in folder.glob("*.duckdb") if p != besides] if folder.is_dir() else []
    return max(candidates, key=lambda p: p.stat().st_mtime_ns, default=None)


def _remove_older(workspace: Workspace, keep: Path, documents: Path) -> None:
    """Indexes of earlier states, and documents files other than the kept index's. A process still
    reading one keeps its open files (POSIX semantics)."""
    folder = workspace.state_dir / INDEX_DIR
    for old in folder.glob("*.duckdb"):
        if old != keep:
            _forget(old)
            old.unlink(missing_ok=True)
    for old in folder.glob("*.documents"):
        if old != documents:
            old.unlink(missing_ok=True)
    for old in folder.glob("*.lineage.npz"):  # the lineage graph of an index, kept beside it (tools.lineage_reach)
        if old.name != f"{keep.stem}.lineage.npz":
            old.unlink(missing_ok=True)
    (workspace.state_dir / "index.duckdb").unlink(missing_ok=True)  # the single index of schema 4 and before


def build_index(mesh: Mesh, path: Path, workspace_fingerprint: str,
                stamps: dict[str, tuple[int, int]] | None = None, root: Path | None = None) -> Path:
    """The whole index of `mesh`, whose files (under `root`) had these `stamps` when it was read.
    Returns the path of its (new) documents file."""
    stamps = stamps or {}
    digests = {relative: _digest(root / relative, size) for relative, (size, _) in stamps.items()
               if root is not None and relative.startswith(_APPEND_ONLY)}
    # Named apart from any other build's: two processes may build the same state at once.
    documents = path.with_name(f"{path.stem}-{secrets.token_hex(4)}.documents")
    try:
        with files.collection_paused(), files.replaced_atomically(path) as tmp, duckdb.connect(str(tmp)) as con:
            con.execute(_DDL)
            _fill(con, mesh, documents)
            _finish(con, workspace_fingerprint, stamps, digests, documents)
    except BaseException:
        documents.unlink(missing_ok=True)
        raise
    return documents


def _digest(path: Path, size: int) -> str | None:
    try:
        with path.open("rb") as handle:
            return hashlib.sha256(handle.read(size)).hexdigest()
    except OSError:
        return None


def _finish(con: duckdb.DuckDBPyConnection, workspace_fingerprint: str, stamps: dict[str, tuple[int, int]],
            digests: dict[str, str | None], documents: Path) -> None:
    con.execute("DELETE FROM meta")
    con.execute("DELETE FROM sources")
    con.execute("INSERT INTO meta VALUES ('fingerprint', ?), ('schema', ?), ('documents', ?)",
                [workspace_fingerprint, SCHEMA_VERSION, documents.name])
    _insert(con, "sources", [(relative, size, mtime, digests.get(relative))
                             for relative, (size, mtime) in sorted(stamps.items())])


def update_index(workspace: Workspace, previous: Path, path: Path, workspace_fingerprint: str,
                 stamps: dict[str, tuple[int, int]]) -> bool:
    """Write the index at `path` from the `previous` one, re-indexing only the product files that
    changed or were added and the lineage events appended to lineage logs.

    Done only when it gives exactly what a full build would: nothing but product files and lineage logs
    changed; no product was removed or renamed, and each changed one keeps every dataset, column and
    check it had (so what other files refer to still exists); each changed log only grew by whole,
    valid events, later than what the index knows of the datasets whose schemas they carry. Returns
    False otherwise: then build it whole."""
    opened = _opened(previous)
    if opened is None:
        return False
    con, documents = opened
    with con:
        old = _indexed_sources(con)
        if old is None or documents.mostly_replaced(con):
            return False
        changed = sorted(p for p in set(old) | set(stamps) if old.get(p, (None, None))[:2] != stamps.get(p))
        if not changed or any(p not in stamps for p in changed):
            return False
        contents = {}
        for relative in changed:
            if relative.startswith(_APPEND_ONLY):
                data = _read_bytes(workspace.root / relative, stamps[relative][0])
                if data is None:
                    return False
                contents[relative] = data
        changes = _Changes.judged(workspace, con, documents, old, changed, contents)
    return changes is not None and changes.applied(previous, path, workspace_fingerprint, stamps)


def apply_incrementally(workspace: Workspace, changes: dict[str, str], parsed: dict[str, Any]) -> list[str] | None:
    """Write `changes` (relative path -> text; `parsed`: what some of them hold) and re-index only them,
    when the workspace's index is current and they are what `update_index` re-indexes alone (product
    files, lines appended to lineage and quality logs), each valid against the index. Returns the paths
    written, or None, having written nothing: then validate the whole workspace with them instead.

    An import of one product into a workspace of 10k datasets then validates and indexes that product,
    not the whole catalog."""
    stamps = workspace.source_stamps()
    current = index_path(workspace, fingerprint(workspace, stamps))
    differing = workspace.differing(changes)
    opened = _opened(current) if current.exists() else None
    if opened is None:
        return None
    con, documents = opened
    if not differing:
        con.close()
        return []  # the files, indexed as they are, are valid: nothing to write
    with con:
        old = _indexed_sources(con)
        if old is None or documents.mostly_replaced(con):
            return None
        contents = {relative: text.encode("utf-8") for relative, text in differing.items()
                    if relative.startswith(_APPEND_ONLY)}
        judged = _Changes.judged(workspace, con, documents, old, sorted(differing), contents, differing, parsed)
    if judged is None:
        return None
    written = workspace.write(differing)
    stamps = workspace.source_stamps()
    wanted = fingerprint(workspace, stamps)
    path = index_path(workspace, wanted)
    if not path.exists() and judged.applied(current, path, wanted, stamps):
        _remove_older(workspace, keep=path, documents=documents.path)
    return written


def _indexed_sources(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int, str | None]] | None:
    """(size, mtime, digest) of each source file the index was built from; None for an index of another
    schema version (it can only be rebuilt)."""
    if con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() != (SCHEMA_VERSION,):
        return None
    return {p: (size, mtime, digest) for p, size, mtime, digest in con.execute("SELECT * FROM sources").fetchall()}


# Logs that grow by appended lines: an index update parses only the new ones (each log's digest is kept).
_APPEND_ONLY = ("lineage/", "quality/")


def _read_bytes(path: Path, size: int) -> bytes | None:
    try:
        with path.open("rb") as handle:
            data = handle.read(size)
    except OSError:
        return None
    return data if len(data) == size else None


@dataclass
class _Changes:
    """What changed files add to an index, judged against it: products to replace, events and check
    results to add, and the digests of the logs as they are now."""

    products: dict[str, DataProduct]
    events: list[LineageEvent]
    versions: list[tuple]
    results: list[CheckResult]
    digests: dict[str, str | None]

    @classmethod
    def judged(cls, workspace: Workspace, con: duckdb.DuckDBPyConnection, documents: _Documents,
               old: dict[str, tuple[int, int, str | None]], changed: list[str], contents: dict[str, bytes],
               overlay: dict[str, str] | None = None, parsed: dict[str, Any] | None = None) -> _Changes | None:
        """None unless every changed file is a product file or a log that only grew by valid lines;
        `contents` holds each changed log's bytes now, `overlay`/`parsed` product files not yet written."""
        products = [p for p in changed if p.startswith("products/") and p.endswith(".yaml")]
        logs = [p for p in changed if p.startswith("lineage/") and p.endswith(".jsonl")]
        quality = [p for p in changed if p.startswith("quality/") and p.endswith(".jsonl")]
        if len(products) + len(logs) + len(quality) != len(changed):
            return None
        found = _changed_products(workspace, con, documents, products, overlay, parsed) if products else {}
        if found is None:
            return None
        digests = {p: digest for p, (_, _, digest) in old.items()}
        events: dict[str, LineageEvent] = {}
        for relative in logs:
            appended = _appended_lines(contents[relative], old.get(relative))
            batch = _events_of(relative, *appended[1:]) if appended is not None else None
            if batch is None:
                return None
            digests[relative] = appended[0]
            events.update((e.event_id, e) for e in batch)
        known = {i for (i,) in con.execute("SELECT event_id FROM lineage_events WHERE list_contains($ids, event_id)",
                                           {"ids": list(events)}).fetchall()} if events else set()
        new_events = [e for i, e in events.items() if i not in known]
        versions = _appended_versions(con, new_events)
        if versions is None:
            return None
        results: list[CheckResult] = []
        for relative in quality:
            appended = _appended_lines(contents[relative], old.get(relative))
            batch = _results_of(con, found, relative, *appended[1:]) if appended is not None else None
            if batch is None:
                return None
            digests[relative] = appended[0]
            results += batch
        return cls(found, new_events, versions, results, digests)

    def applied(self, previous: Path, path: Path, workspace_fingerprint: str,
                stamps: dict[str, tuple[int, int]]) -> bool:
        digests = {p: d for p, d in self.digests.items() if p in stamps}
        try:
            _apply_changes(previous, path, self, workspace_fingerprint, stamps, digests)
        except (duckdb.Error, OSError):
            # The previous index is untouched (the copy is dropped), or another process removed it:
            # the next command builds this one whole instead.
            return False
        return True


def _changed_products(workspace: Workspace, con: duckdb.DuckDBPyConnection, documents: _Documents, changed: list[str],
                      overlay: dict[str, str] | None = None, parsed: dict[str, Any] | None = None,
                      ) -> dict[str, DataProduct] | None:
    """The changed product files (from `overlay` where it has them), read and checked against the indexed
    products; None when only a full build gives the right index."""
    by_file = dict(con.execute("SELECT file, ref FROM products").fetchall())
    team_ids = {t for (t,) in con.execute("SELECT id FROM teams").fetchall()}

    def indexed(domain: str, product_id: str) -> DataProduct | None:
        """An indexed product, read only when a changed product refers to it."""
        row = con.execute("SELECT document_at, document_size FROM products WHERE domain = ? AND id = ?",
                          [domain, product_id]).fetchone()
        return DataProduct.model_validate_json(documents.read(*row)) if row else None

    found = workspace.load_products(changed, indexed, team_ids, overlay, parsed)
    if found is None:
        return None
    for relative, product in found.items():
        before_ref = by_file.get(relative)
        before = indexed(product.domain, product.id)
        if before_ref is None:
            if before is not None:
                return None  # a second file for an existing product: the full load reports it
            continue
        if before_ref != str(product.ref) or not _keeps(before, product):
            return None
    return found


def _appended_lines(data: bytes, old: tuple[int, int, str | None] | None) -> tuple[str, str, int] | None:
    """(digest of the log now, the text appended since the index read it, the line number it starts at),
    when the log only grew by whole lines; None otherwise."""
    start = 0
    if old is not None:
        old_size, _, old_digest = old
        if old_digest is None or len(data) <= old_size or hashlib.sha256(data[:old_size]).hexdigest() != old_digest \
                or (old_size and data[old_size - 1:old_size] != b"\n"):
            return None
        start = old_size
    if not data.endswith(b"\n"):
        return None  # a torn last line: the full load decides what to make of it
    try:
        tail = data[start:].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return hashlib.sha256(data).hexdigest(), tail, data[:start].count(b"\n") + 1


def _events_of(relative: str, text: str, first_line: int) -> list[LineageEvent] | None:
    """The events of appended lines; None when one is not a valid event."""
    events = []
    for number, raw in enumerate(text.splitlines(), start=first_line):
        if raw.strip():
            event, problems = parse_event_line(raw, relative, number)
            if problems or event is None:
                return None
            events.append(event)
    return events


def _results_of(con: duckdb.DuckDBPyConnection, products: dict[str, DataProduct], relative: str, text: str,
                first_line: int) -> list[CheckResult] | None:
    """The check results of appended lines; None when one is invalid or names a check that neither the
    index nor a changed product has (the full load reports it)."""
    results = []
    for number, raw in enumerate(text.splitlines(), start=first_line):
        if not raw.strip():
            continue
        doc, problems = files.parse_json_line(raw, relative, number)
        result, invalid = doc.validate(CheckResult) if doc is not None else (None, problems)
        if problems or invalid or result is None:
            return None
        results.append(result)
    if not results:
        return results
    wanted = {(r.dataset, r.check_id) for r in results}
    changed = {str(p.ref) for p in products.values()}
    have = {(str(p.dataset_ref(d.name)), c.id) for p in products.values() for d in p.datasets for c in d.checks}
    have |= set(con.execute(
        """SELECT c.dataset_ref, c.id FROM checks c JOIN datasets d ON d.ref = c.dataset_ref
           JOIN (SELECT unnest($datasets) AS ref, unnest($ids) AS id) w ON w.ref = c.dataset_ref AND w.id = c.id
           WHERE NOT list_contains($changed, d.product_ref)""",
        {"datasets": [d for d, _ in wanted], "ids": [i for _, i in wanted], "changed": list(changed)}).fetchall())
    return results if wanted <= have else None


def _appended_versions(con: duckdb.DuckDBPyConnection, events: list[LineageEvent]) -> list[tuple] | None:
    """The schema versions new events add, continuing from each dataset's newest indexed schema; None
    when one of them is not later than that (a full build orders all events by time)."""
    named = {(d.namespace, d.name) for e in events for d in e.datasets if output_schema(d)}
    if not named:
        return []
    last, newest = {}, {}
    for namespace, name, fields, when in con.execute(
            """SELECT v.namespace, v.name, arg_max(v.fields, v.event_time), max(v.event_time) FROM schema_versions v
               JOIN (SELECT unnest($ns) AS ns, unnest($name) AS name) f ON v.namespace = f.ns AND v.name = f.name
               GROUP BY ALL""", {"ns": [n[0] for n in named], "name": [n[1] for n in named]}).fetchall():
        last[(namespace, name)], newest[(namespace, name)] = json.loads(fields), when
    for event in events:
        for dataset in event.datasets:
            when = newest.get((dataset.namespace, dataset.name))
            if output_schema(dataset) and when is not None and event.eventTime <= when:
                return None
    return schema_versions(events, last)


def _apply_changes(previous: Path, path: Path, changes: _Changes, workspace_fingerprint: str,
                   stamps: dict[str, tuple[int, int]], digests: dict[str, str | None]) -> None:
    """Replace the rows of changed products and add the new events' and results' rows, in a copy of the
    previous index, then give the copy its name."""
    found, events, versions = changes.products, changes.events, changes.versions
    products = list(found.values())
    refs = [str(p.ref) for p in products]
    with files.replaced_atomically(path) as tmp:
        shutil.copyfile(previous, tmp)
        with duckdb.connect(str(tmp)) as con:
            # The copy's products are in the previous state's documents file: the changed ones are appended.
            documents = _documents_path(previous, con)
            if documents is None:
                raise OSError(f"{previous} names no documents file")
            con.execute("BEGIN")
            if products:
                for table, key in (("columns", "dataset_ref"), ("checks", "dataset_ref"), ("foreign_keys", "dataset_ref")):
                    con.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT ref FROM datasets WHERE list_contains(?, product_ref))",
                                [refs])
                con.execute("DELETE FROM datasets WHERE list_contains(?, product_ref)", [refs])
                con.execute("DELETE FROM products WHERE list_contains(?, ref)", [refs])
                known = {r for (r,) in con.execute("SELECT ref FROM datasets").fetchall()}
                for table, rows in _product_rows(products, {str(p.ref): f for f, p in found.items()},
                                                 documents).items():
                    _insert(con, table, rows)
                known |= {str(p.dataset_ref(d.name)) for p in products for d in p.datasets}
                _insert(con, "foreign_keys", foreign_keys(products, known))
            if events:
                rows = _event_rows(events)
                _insert(con, "lineage_events", rows["lineage_events"])
                _add_lineage(con, rows, incremental=True)
                _insert(con, "schema_versions", versions)
                _merge_nodes(con, events)
            _insert(con, "check_results", _result_rows(changes.results))
            _finish(con, workspace_fingerprint, stamps, digests, documents)
            con.execute("COMMIT")


def _keeps(before: DataProduct, after: DataProduct) -> bool:
    """Whether `after` still has every dataset, column and check of `before` (what other files may name)."""
    for dataset in before.datasets:
        now = after.dataset(dataset.name)
        if now is None or {c.name for c in dataset.columns} - {c.name for c in now.columns} or \
                {c.id for c in dataset.checks} - {c.id for c in now.checks}:
            return False
    return True


# Above this many rows a table is loaded from Arrow. Below it, one statement of unnested list parameters:
# pyarrow's first conversion imports pandas (0.5 s), which an incremental update of one product must not pay.
ARROW_ROWS = 20_000


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> None:
    """All rows in one statement. executemany went row by row (a minute for a thousand tables); list
    parameters cost 2 us a value (5 s for 200k columns), Arrow columns are converted in C."""
    if not rows:
        return
    if len(rows) >= ARROW_ROWS:
        import pyarrow as pa

        try:
            arrays = [pa.array(values) for values in zip(*rows, strict=True)]
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays = None  # a column whose values Arrow cannot give one type: see below
        if arrays is not None:
            names = [f"c{i}" for i in range(len(arrays))]
            con.from_arrow(pa.Table.from_arrays(arrays, names=names)).insert_into(table)
            return
    columns = {f"c{i}": list(values) for i, values in enumerate(zip(*rows, strict=True))}
    try:
        con.execute(f"INSERT INTO {table} SELECT {', '.join(f'unnest(${name})' for name in columns)}", columns)
    except (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.BinderException):
        # A column whose values DuckDB cannot give one type (aware and naive times mixed): row by row.
        con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)


def _product_rows(products: list[DataProduct], product_files: dict[str, str], documents: Path,
                  ) -> dict[str, list[tuple]]:
    """The rows of products, datasets, columns and checks for these products, whose JSON is appended to
    the `documents` file."""
    rows: dict[str, list[tuple]] = {"products": [], "datasets": [], "columns": [], "checks": []}
    placed = _Documents.append(documents, (p.model_dump_json(exclude_none=True) for p in products))
    for p, (at, size, digest) in zip(products, placed, strict=True):
        listed = p.model_dump(mode="json", exclude_none=True, include={"consumers", "slos"})
        rows["products"].append((str(p.ref), p.domain, p.id, p.name, p.owner, p.description, p.status.value,
                                 p.version, p.tags, p.contract, p.source, json.dumps(listed["consumers"]),
                                 json.dumps(listed["slos"]), at, size, digest, product_files.get(str(p.ref))))
        for port in p.output_ports:
            d = port.dataset
            ref = str(p.dataset_ref(d.name))
            rows["datasets"].append((ref, str(p.ref), d.name, d.qualified_name, d.namespace, d.description,
                                     port.name, port.kind.value, port.location, d.row_count, d.last_updated, d.tags))
            rows["columns"] += [
                (column_ref_text(ref, c.name), ref, i, c.name, c.type, c.description, c.nullable, c.primary_key,
                 c.references, c.tags, c.classification)
                for i, c in enumerate(d.columns, start=1)
            ]
            rows["checks"] += [(ref, c.id, c.kind.value, c.column, c.description, json.dumps(c.params),
                                c.severity.value) for c in d.checks]
    return rows


def _fill(con: duckdb.DuckDBPyConnection, mesh: Mesh, documents: Path) -> None:
    _insert(con, "teams", [(t.id, t.name, t.domain, t.description, t.slack_channel, t.oncall, t.parent) for t in mesh.teams])
    _insert(con, "team_members", [(t.id, m.name, m.email, m.role) for t in mesh.teams for m in t.members])
    for table, rows in _product_rows(mesh.products, mesh.product_files, documents).items():
        _insert(con, table, rows)
    _insert(con, "foreign_keys", foreign_keys(mesh.products))
    _insert(con, "check_results", _result_rows(mesh.results))
    _insert(con, "incidents", [
        (i.id, i.title, i.status.value, i.severity.value, i.opened_at, i.resolved_at, i.products, i.datasets,
         i.check_id, i.assignee, i.summary, i.root_cause, i.model_dump_json(exclude_none=True))
        for i in mesh.incidents
    ])
    events = {e.event_id: e for e in mesh.events}
    rows = _event_rows(list(events.values()))
    _insert(con, "lineage_events", rows["lineage_events"])
    _add_lineage(con, rows, incremental=False)
    _insert(con, "schema_versions", schema_versions(events.values()))
    _insert(con, "lineage_nodes", _node_rows(node_records(events.values()).values()))


_EDGE_COLUMNS = ("source_namespace, source_name, source_field, target_namespace, target_name, target_field, "
                 "transformation_type, transformation_subtype, description, job")


def _add_lineage(con: duckdb.DuckDBPyConnection, rows: dict[str, list[tuple]], incremental: bool) -> None:
    """Add events' job inputs and outputs, column-lineage outputs and column edges (each a set: only rows
    no earlier event gave), then the job hops of every job they name."""
    for table, columns in (("job_io", "*"), ("column_lineage_outputs", "*"), ("column_edges", _EDGE_COLUMNS)):
        con.execute(f"CREATE TEMP TABLE new_{table} AS SELECT {columns} FROM {table} LIMIT 0")
        _insert(con, f"new_{table}", rows[table])
        new = f"SELECT * FROM new_{table}" + (f" EXCEPT SELECT {columns} FROM {table}" if incremental else "")
        if table == "column_edges":
            con.execute(f"""INSERT INTO column_edges
                SELECT *, hash(source_namespace, source_name, source_field), hash(source_namespace, source_name),
                       hash(target_namespace, target_name, target_field), hash(target_namespace, target_name)
                FROM ({new}) ORDER BY 11""")
        else:
            con.execute(f"INSERT INTO {table} {new}")
        con.execute(f"DROP TABLE new_{table}")
    jobs = sorted({r[0] for r in rows["job_io"]} | {r[-1] for r in rows["column_edges"]})
    if not jobs:
        return
    con.execute("CREATE TEMP TABLE touched_jobs AS SELECT unnest($jobs) AS job", {"jobs": jobs})
    if incremental:
        con.execute("DELETE FROM job_hops WHERE job IN (SELECT job FROM touched_jobs)")
    for direction, mine, other, output in (("down", "input", "output", "o"), ("up", "output", "input", "m")):
        con.execute(f"""INSERT INTO job_hops
            SELECT hash(m.namespace, m.name), '{direction}', m.job, m.namespace, m.name, o.namespace, o.name,
                   c.job IS NOT NULL
            FROM job_io m JOIN touched_jobs t ON t.job = m.job
            LEFT JOIN job_io o ON o.job = m.job AND o.direction = '{other}'
            LEFT JOIN column_lineage_outputs c ON c.job = m.job AND c.namespace = {output}.namespace
                 AND c.name = {output}.name
            WHERE m.direction = '{mine}' ORDER BY 1""")
    con.execute("DROP TABLE touched_jobs")


def _node_rows(nodes: Iterable[NodeRecord]) -> list[tuple]:
    return [(n.kind, n.namespace, n.name, n.first_seen, n.last_seen, json.dumps(n.facets), json.dumps(n.facet_times))
            for n in nodes]


def _merge_nodes(con: duckdb.DuckDBPyConnection, events: list[LineageEvent]) -> None:
    """Bring the records of the datasets and jobs new events name up to date (read, merged, replaced)."""
    named = {("job", e.job.namespace, e.job.name) for e in events if e.job} | \
        {("dataset", d.namespace, d.name) for e in events for d in e.datasets}
    frontier = {"kind": [k[0] for k in named], "ns": [k[1] for k in named], "name": [k[2] for k in named]}
    wanted = """(SELECT unnest($kind) AS kind, unnest($ns) AS ns, unnest($name) AS name) f
                ON n.kind = f.kind AND n.namespace = f.ns AND n.name = f.name"""
    known = {
        (kind, namespace, name): NodeRecord(kind, namespace, name, first, last, json.loads(facets), json.loads(times))
        for kind, namespace, name, first, last, facets, times in con.execute(
            f"SELECT n.* FROM lineage_nodes n JOIN {wanted}", frontier).fetchall()}
    touched = node_records(events, known)
    con.execute(f"DELETE FROM lineage_nodes n USING {wanted.replace(' ON ', ' WHERE ', 1)}", frontier)
    _insert(con, "lineage_nodes", _node_rows(touched.values()))


def _result_rows(results: list[CheckResult]) -> list[tuple]:
    return [(r.dataset, r.check_id, r.status.value, r.run_at, json.dumps(r.observed, default=str), r.message)
            for r in results]


def _event_rows(events: list[LineageEvent]) -> dict[str, list[tuple]]:
    """The rows of lineage_events, job_io, column_lineage_outputs and column_edges for these events (all
    but the events as sets)."""
    return {
        "lineage_events": [
            (e.event_id, e.kind, e.eventType.value if e.eventType else None, e.eventTime,
             str(e.run.runId) if e.run else None, f"{e.job.namespace}/{e.job.name}" if e.job else None,
             json.dumps(e.to_json()))
            for e in events],
        "job_io": sorted({row for e in events for row in job_io(e)}),
        "column_lineage_outputs": sorted({(x.job, x.target_namespace, x.target_name)
                                          for e in events for x in column_edges(e)}),
        "column_edges": sorted({
            (x.source_namespace, x.source_name, x.source_field, x.target_namespace, x.target_name, x.target_field,
             x.transformation_type, x.transformation_subtype, x.description, x.job)
            for e in events for x in column_edges(e)}, key=str),
    }


def foreign_keys(products: list[DataProduct], known: set[str] | None = None) -> list[tuple[str, str, str, str]]:
    """(dataset ref, column, referenced dataset ref, referenced column) for each foreign key whose target
    dataset exists (among `known`, by default these products' datasets)."""
    known = known if known is not None else {str(p.dataset_ref(d.name)) for p in products for d in p.datasets}
    keys = []
    for product in products:
        for dataset in product.datasets:
            here = str(product.dataset_ref(dataset.name))
            for column in dataset.columns:
                target = product.resolve_reference(column.references) if column.references else None
                if target is not None and str(target.dataset_ref()) in known:
                    keys.append((here, column.name, str(target.dataset_ref()), target.column))
    return keys
