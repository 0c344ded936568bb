"""Where validated SQL runs, and what the engine itself lets it read.

The validator is the first line of the access policy; the engine is the one that cannot be talked
around. A query for a restricted caller runs against a *relation set* built for the caller's role:
only the tables the role may read, only the columns it may see, PII columns it may only see masked
replaced by stable tokens. Anything else does not exist for the query, whatever its SQL looks like.

- DuckDB: the relation set is materialised once into its own database file (per relation set and
  warehouse version, under `.meshpilot/relations/`), and the query opens only that file, read-only,
  with external access off. DuckDB has no privileges to grant, so a view over the raw warehouse would
  leave the warehouse attached and reachable; a copy leaves nothing to reach.
- PostgreSQL: `provision_postgres` creates, per relation set, a login role that may use only a schema of
  views (masked columns computed with a salt the role cannot read); the query's table names are
  rewritten to that schema and it runs as that role. The server's privileges are the enforcement.

Masked values are `<CLASS>#<12 hex>`: the same input gives the same token within a workspace (joins,
counts and GROUP BY still work) and predicates see only tokens, so a filter cannot test the real value.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshpilot.errors import InvalidArgumentError, MeshpilotError
from meshpilot.tools.sql_schema import treatment_of

DEFAULT_MAX_RESULT_BYTES = 16 * 1024 * 1024
_FETCH_BATCH = 256


class SqlRejectedError(MeshpilotError):
    """SQL that did not pass validation, or that the engine refused; `problems` says what and where."""


class QueryTimeoutError(MeshpilotError):
    """The query ran past its time limit and was interrupted."""


class ResultTooLargeError(MeshpilotError):
    """The result is larger than the byte limit."""


# --- relation sets: what one role may read ------------------------------------------------------------


@dataclass(frozen=True)
class RelationColumn:
    name: str  # as declared
    treatment: str  # allow | mask
    classification: str | None = None


@dataclass(frozen=True)
class Relation:
    table: str  # qualified, as written in SQL: 'customer.customer_profile'
    columns: tuple[RelationColumn, ...]

    @property
    def schema_name(self) -> str:
        return self.table.rsplit(".", 1)[0] if "." in self.table else "main"

    @property
    def short_name(self) -> str:
        return self.table.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class RelationSet:
    """The tables and columns a caller's queries may read, and how each column is shown."""

    relations: tuple[Relation, ...]

    @property
    def fingerprint(self) -> str:
        spec = [[r.table, [[c.name, c.treatment, c.classification] for c in r.columns]] for r in self.relations]
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def masks(self) -> bool:
        return any(c.treatment == "mask" for r in self.relations for c in r.columns)

    def find(self, table: str) -> Relation | None:
        lowered = table.lower()
        return next((r for r in self.relations if r.table.lower() == lowered), None)

    @classmethod
    def for_caller(cls, tables: Any, caller: Any) -> RelationSet:
        """The relation set of `caller` (an AccessPolicy) over the catalog's tables (sql.Table)."""
        relations = []
        for table in sorted(tables, key=lambda t: t.name.lower()):
            if caller.check_table(table) is not None:
                continue
            columns = []
            for key, name in table.columns.items():
                treatment = treatment_of(caller, table, name)
                if treatment != "refuse":
                    columns.append(RelationColumn(name, treatment, table.classifications.get(key)))
            if columns:
                relations.append(Relation(table.name, tuple(columns)))
        return cls(tuple(relations))


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _qualified(table: str) -> str:
    return ".".join(_quote(part) for part in table.split("."))


def mask_token_sql(column_sql: str, classification: str | None, salt_sql: str, dialect: str) -> str:
    """SQL for the masked value of a column: the class, then 12 hex digits of a salted SHA-256."""
    prefix = re.sub(r"[^A-Z0-9_]", "", (classification or "PII").upper()) or "PII"
    if dialect == "postgres":
        digest = f"encode(sha256(convert_to({salt_sql} || CAST({column_sql} AS text), 'UTF8')), 'hex')"
    else:
        digest = f"sha256({salt_sql} || CAST({column_sql} AS VARCHAR))"
    return f"CASE WHEN {column_sql} IS NULL THEN NULL ELSE '{prefix}#' || left({digest}, 12) END"


def _relation_select(relation: Relation, source: str, salt_sql: str, dialect: str) -> str:
    parts = []
    for column in relation.columns:
        quoted = _quote(column.name)
        value = quoted if column.treatment == "allow" else mask_token_sql(quoted, column.classification, salt_sql,
                                                                           dialect)
        parts.append(f"{value} AS {quoted}")
    return f"SELECT {', '.join(parts)} FROM {source}"


# --- messages a caller may see ------------------------------------------------------------------------------

_PATH = re.compile(r"(?<![\w:])(?:/[\w.@+-]+){2,}/?|[A-Za-z]:\\[^\s'\"]+")


def scrub(message: str) -> str:
    """An engine's message without server paths (database files, temp folders, home directories)."""
    return _PATH.sub("<path>", message)


def _first_line(exc: BaseException) -> str:
    return scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _value_bytes(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    if isinstance(value, list | tuple):
        return sum(_value_bytes(v) for v in value) + 8
    if isinstance(value, dict):
        return sum(_value_bytes(k) + _value_bytes(v) for k, v in value.items()) + 8
    return 8


def _fetch_bounded(cursor: Any, max_bytes: int) -> list[list[Any]]:
    rows: list[list[Any]] = []
    size = 0
    while True:
        batch = cursor.fetchmany(_FETCH_BATCH)
        if not batch:
            return rows
        for row in batch:
            size += sum(_value_bytes(v) for v in row)
            if size > max_bytes:
                raise ResultTooLargeError(
                    f"The result is larger than {max_bytes // (1024 * 1024) or max_bytes} "
                    f"{'MB' if max_bytes >= 1024 * 1024 else 'bytes'}; it was not returned.",
                    hint="Select fewer or shorter columns, aggregate, or lower --limit "
                         "(or raise sql.max_result_bytes in meshpilot.yaml).")
            rows.append(list(row))


# --- DuckDB ------------------------------------------------------------------------------------------------


class DuckDBEngine:
    """The workspace warehouse, opened read-only with no way out: no files, no URLs, settings locked.
    With a relation set, the query opens the role's own database instead, never the warehouse."""

    name = "duckdb"
    dialect = "duckdb"

    def __init__(self, path: Path, memory_limit: str = "512MB", threads: int = 2,
                 max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES, state_dir: Path | None = None):
        self.path = Path(path)
        self.memory_limit = memory_limit
        self.threads = threads
        self.max_result_bytes = max_result_bytes
        self.state_dir = Path(state_dir) if state_dir else self.path.parent / ".meshpilot"

    @property
    def relations_dir(self) -> Path:
        return self.state_dir / "relations"

    def execute(self, sql: str, timeout_s: float, relations: RelationSet | None = None) -> tuple[list[str], list[list[Any]]]:
        import duckdb

        database = self.path if relations is None else self.relation_database(relations)
        config = {
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": self.memory_limit,
            "threads": self.threads,
            "lock_configuration": True,
        }
        try:
            con = duckdb.connect(str(database), read_only=True, config=config)
        except duckdb.Error as exc:
            raise SqlRejectedError(f"Cannot open the warehouse: {_first_line(exc)}",
                                   hint="Run `meshpilot validate`; rebuild the demo with `meshpilot demo --force`.") from None
        timer = threading.Timer(timeout_s, con.interrupt)
        timer.start()
        try:
            cursor = con.execute(sql)
            columns = [d[0] for d in cursor.description]
            return columns, _fetch_bounded(cursor, self.max_result_bytes)
        except duckdb.InterruptException:
            raise QueryTimeoutError(f"The query ran past {timeout_s:g} s and was stopped.",
                                    hint="Narrow it (filters, fewer joins) or raise --timeout.") from None
        except duckdb.OutOfMemoryException:
            raise ResultTooLargeError(f"The query needs more memory than its limit ({self.memory_limit}) and was stopped.",
                                      hint="Aggregate, filter, or select fewer or shorter columns.") from None
        except duckdb.Error as exc:
            raise SqlRejectedError(f"The warehouse refused the query: {_first_line(exc)}") from None
        finally:
            timer.cancel()
            con.close()

    def relation_database(self, relations: RelationSet) -> Path:
        """The database file holding exactly `relations` for the current warehouse, built when missing."""
        if not self.path.is_file():
            raise SqlRejectedError("This workspace has no warehouse to query yet.",
                                   hint="Import data, or build the demo with `meshpilot demo`.")
        stat = self.path.stat()
        stamp = hashlib.sha256(f"{stat.st_mtime_ns}:{stat.st_size}:{stat.st_ino}".encode()).hexdigest()[:10]
        target = self.relations_dir / f"{relations.fingerprint}-{stamp}.duckdb"
        if target.exists():
            return target
        self.relations_dir.mkdir(parents=True, exist_ok=True)
        with open(self.relations_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two processes building the same set: one builds, one waits
            if not target.exists():
                self._build(relations, target)
                for stale in self.relations_dir.glob(f"{relations.fingerprint}-*.duckdb"):
                    if stale != target:
                        stale.unlink(missing_ok=True)
        return target

    def _build(self, relations: RelationSet, target: Path) -> None:
        import duckdb

        from meshpilot.guardrails.pii import workspace_salt
        from meshpilot.mesh.files import replaced_atomically

        salt = "'" + workspace_salt(self.state_dir.parent).hex() + "'"
        with replaced_atomically(target) as tmp, duckdb.connect(str(tmp)) as con:
            con.execute(f"ATTACH {_literal(str(self.path))} AS warehouse (READ_ONLY)")
            present = {(s.lower(), t.lower()): {c.lower() for c in cols} for s, t, cols in con.execute(
                "SELECT schema_name, table_name, list(column_name) FROM duckdb_columns() "
                "WHERE database_name = 'warehouse' GROUP BY ALL").fetchall()}
            for relation in relations.relations:
                have = present.get((relation.schema_name.lower(), relation.short_name.lower()))
                if have is None:
                    continue  # declared in the catalog, not (yet) in the warehouse
                kept = Relation(relation.table, tuple(c for c in relation.columns if c.name.lower() in have))
                if not kept.columns:
                    continue
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(relation.schema_name)}")
                source = f"warehouse.{_quote(relation.schema_name)}.{_quote(relation.short_name)}"
                con.execute(f"CREATE TABLE {_qualified(relation.table)} AS "
                            + _relation_select(kept, source, salt, "duckdb"))
            con.execute("DETACH warehouse")
            con.execute("CHECKPOINT")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- PostgreSQL ------------------------------------------------------------------------------------------------

POSTGRES_ROLES_FILE = "postgres-roles.json"


def _postgres_url(url: str) -> str:
    if not url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        raise InvalidArgumentError(f"'{url}' is not a PostgreSQL URL.",
                                   hint="Write postgresql+psycopg://user:password@host:5432/database.")
    return url.replace("postgres://", "postgresql+psycopg://", 1).replace("postgresql://", "postgresql+psycopg://", 1)


def _server_key(url: str) -> str:
    """host:port/database of a URL, without credentials: provisioned roles belong to one database."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


class PostgresEngine:
    """A PostgreSQL database through SQLAlchemy: every session read-only, with a statement timeout.
    With a relation set, the query runs as the login role provisioned for it, over its schema of views."""

    name = "postgres"
    dialect = "postgres"

    def __init__(self, url: str, state_dir: Path | None = None, max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES):
        self.url = _postgres_url(url)
        self.state_dir = state_dir
        self.max_result_bytes = max_result_bytes

    def role_for(self, relations: RelationSet) -> dict[str, str]:
        entry = _load_roles(self.state_dir).get(_server_key(self.url), {}).get(relations.fingerprint)
        if entry is None:
            raise SqlRejectedError(
                "PostgreSQL has no database role for this access-policy role yet, so the query was not run.",
                hint="Provision the roles once with an administrator's URL: "
                     "meshpilot sql grant --engine-url postgresql://admin@host/db")
        return entry

    def prepare(self, tree: Any, relations: RelationSet | None) -> Any:
        """The query with each catalog table replaced by the role's view of it."""
        if relations is None:
            return tree
        from sqlglot import exp

        prefix = self.role_for(relations)["schema_prefix"]
        for table in tree.find_all(exp.Table):
            relation = relations.find(".".join(p for p in (table.db, table.name) if p))
            if relation is not None:
                table.set("db", exp.to_identifier(f"{prefix}{relation.schema_name}", quoted=True))
                table.set("catalog", None)
        return tree

    def execute(self, sql: str, timeout_s: float, relations: RelationSet | None = None) -> tuple[list[str], list[list[Any]]]:
        try:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import DBAPIError, SQLAlchemyError
            from sqlalchemy.pool import NullPool
        except ImportError:
            raise InvalidArgumentError("The PostgreSQL engine needs the postgres extra.",
                                       hint="uv sync --extra postgres") from None
        url = self.url
        if relations is not None:
            role = self.role_for(relations)
            url = make_url(url).set(username=role["login"], password=role["password"])
        # The server enforces both: a read-only transaction and a statement timeout it cancels itself.
        options = f"-c default_transaction_read_only=on -c statement_timeout={int(timeout_s * 1000)}"
        engine = create_engine(url, connect_args={"options": options, "connect_timeout": 10}, poolclass=NullPool)
        try:
            try:
                con = engine.connect()
            except SQLAlchemyError as exc:
                raise SqlRejectedError(f"Cannot reach PostgreSQL: {_first_line(getattr(exc, 'orig', exc))}",
                                       hint="Check the URL, that the server is up and that it accepts this user.") from None
            with con:
                cursor = con.execute(text(sql.replace(":", r"\:")))
                return list(cursor.keys()), _fetch_bounded(cursor, self.max_result_bytes)
        except DBAPIError as exc:
            if "statement timeout" in str(exc.orig):
                raise QueryTimeoutError(f"The query ran past {timeout_s:g} s and was stopped.",
                                        hint="Narrow it (filters, fewer joins) or raise --timeout.") from None
            raise SqlRejectedError(f"PostgreSQL refused the query: {_first_line(exc.orig)}") from None
        except SQLAlchemyError as exc:
            raise SqlRejectedError(f"PostgreSQL failed: {_first_line(exc)}") from None
        finally:
            engine.dispose()


def _roles_path(state_dir: Path | None) -> Path:
    if state_dir is None:
        raise InvalidArgumentError("PostgreSQL access roles need a workspace to keep their credentials in.")
    return Path(state_dir) / POSTGRES_ROLES_FILE


def _load_roles(state_dir: Path | None) -> dict[str, Any]:
    path = _roles_path(state_dir)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"{POSTGRES_ROLES_FILE} in the workspace state is unreadable: {exc}.",
                                   hint="Delete it and run `meshpilot sql grant` again.") from None


def provision_postgres(admin_url: str, relation_sets: dict[str, RelationSet], state_dir: Path,
                       salt: bytes) -> list[dict[str, Any]]:
    """Create (or replace) one login role and one schema of views per relation set on the server.

    Run with an administrator's URL (a role that owns the tables and may create roles). The login roles
    get USAGE on their own schemas and SELECT on their views only; masked columns read a salt kept in a
    schema they cannot use. Credentials are kept in the workspace state (0600), keyed by server."""
    import psycopg

    url = _postgres_url(admin_url)
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    key = _server_key(url)
    stored = _load_roles(state_dir)
    server_roles = stored.setdefault(key, {})
    report = []
    try:
        con = psycopg.connect(plain, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise SqlRejectedError(f"Cannot reach PostgreSQL: {_first_line(exc)}") from None
    with con:
        present = {(s, t): {c for c in cols} for s, t, cols in con.execute(
            "SELECT table_schema, table_name, array_agg(column_name::text) FROM information_schema.columns "
            "GROUP BY 1, 2").fetchall()}
        con.execute("CREATE SCHEMA IF NOT EXISTS meshpilot_private")
        con.execute("REVOKE ALL ON SCHEMA meshpilot_private FROM PUBLIC")
        con.execute("CREATE TABLE IF NOT EXISTS meshpilot_private.salt (value text NOT NULL)")
        con.execute("DELETE FROM meshpilot_private.salt")
        con.execute("INSERT INTO meshpilot_private.salt VALUES (%s)", [salt.hex()])
        for role_name, relations in sorted(relation_sets.items()):
            fingerprint = relations.fingerprint
            login = f"mp_{fingerprint[:12]}"
            prefix = f"{login}_"
            password = secrets.token_urlsafe(24)
            exists = con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [login]).fetchone()
            verb = "ALTER" if exists else "CREATE"
            con.execute(f"{verb} ROLE {_quote(login)} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                        f"NOINHERIT NOREPLICATION PASSWORD {_literal(password)}")
            views = 0
            for relation in relations.relations:
                have = present.get((relation.schema_name, relation.short_name))
                if have is None:
                    continue
                kept = Relation(relation.table, tuple(c for c in relation.columns if c.name in have))
                if not kept.columns:
                    continue
                schema = _quote(prefix + relation.schema_name)
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                con.execute(f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC")
                con.execute(f"GRANT USAGE ON SCHEMA {schema} TO {_quote(login)}")
                view = f"{schema}.{_quote(relation.short_name)}"
                con.execute(f"DROP VIEW IF EXISTS {view}")
                select = _relation_select(kept, _qualified(relation.table),
                                          "(SELECT value FROM meshpilot_private.salt LIMIT 1)", "postgres")
                con.execute(f"CREATE VIEW {view} AS {select}")
                con.execute(f"GRANT SELECT ON {view} TO {_quote(login)}")
                views += 1
            server_roles[fingerprint] = {"login": login, "password": password, "schema_prefix": prefix,
                                         "roles": sorted({*server_roles.get(fingerprint, {}).get("roles", []),
                                                          role_name})}
            report.append({"role": role_name, "login": login, "views": views, "masked": relations.masks})
    path = _roles_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(stored, handle, indent=2)
    os.replace(path.with_suffix(".tmp"), path)
    return report


def engine_for(url: str | None, workspace: Any) -> Any:
    """The engine a URL names (postgresql://...), or the workspace's DuckDB warehouse."""
    from meshpilot.mesh.workspace import Workspace

    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    limit = ws.load_manifest().sql.max_result_bytes
    if url:
        return PostgresEngine(url, state_dir=ws.state_dir, max_result_bytes=limit)
    return DuckDBEngine(ws.warehouse_path, max_result_bytes=limit, state_dir=ws.state_dir)
