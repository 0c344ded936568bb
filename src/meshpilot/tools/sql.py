"""SQL the copilot can trust: validated against the catalog, transpiled by sqlglot, run read-only.

`validate_sql` parses in the caller's dialect, requires exactly one read-only statement, refuses
table functions that reach files or URLs, resolves every table and column against the catalog (with a
suggestion when a name is near one that exists) and applies the caller's access policy. `run_sql`
runs only validated SQL, on an engine that is read-only in its own right, with a row limit added
through the syntax tree, a timeout that interrupts the query and a memory limit.
"""

from __future__ import annotations

import difflib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sqlglot
from pydantic import BaseModel
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError
from sqlglot.optimizer.scope import Scope, traverse_scope

from meshpilot.errors import InvalidArgumentError, MeshpilotError
from meshpilot.mesh.model import DataProduct

# sqlglot logs a warning for each statement it can only parse as a bare command (LOAD, CALL...):
# the validator refuses those itself, with a reason, so the log line would only be noise.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

DIALECTS = ("duckdb", "postgres", "trino", "snowflake", "bigquery", "spark", "sqlite")

# Statements that are not queries. Looked up by name: sqlglot adds node types across versions.
_WRITE_NODES = tuple(filter(None, (getattr(exp, name, None) for name in (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "AlterTable", "TruncateTable", "Command",
    "Copy", "Set", "Pragma", "Use", "Transaction", "Commit", "Rollback", "LoadData", "Attach", "Detach",
    "Install", "Grant", "Revoke", "Analyze", "Describe", "Refresh", "Cache", "Uncache", "Export", "Summarize",
))))
# Table and scalar functions that read files, URLs or other databases, or run SQL given as text.
_OUTSIDE_FUNCTIONS = frozenset({
    "read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "parquet_metadata", "parquet_schema",
    "read_json", "read_json_auto", "read_json_objects", "read_json_objects_auto", "read_ndjson",
    "read_ndjson_auto", "read_ndjson_objects", "read_text", "read_blob", "glob", "sniff_csv", "read_xlsx",
    "st_read", "st_read_meta", "iceberg_scan", "iceberg_metadata", "delta_scan", "sqlite_scan", "sqlite_attach",
    "postgres_scan", "postgres_query", "postgres_attach", "mysql_scan", "mysql_query", "query", "query_table",
    "duckdb_secrets", "duckdb_settings", "duckdb_extensions", "load_aws_credentials", "httpfs", "read_file",
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "lo_import", "lo_export", "dblink", "file",
    "load_extension", "readfile", "writefile", "edit", "fts_main",
})


class Problem(BaseModel):
    code: str  # syntax, statements, read_only, outside, table, column, alias, policy
    message: str
    line: int | None = None
    col: int | None = None
    suggestion: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.col}: " if self.line else ""
        hint = f" (did you mean {self.suggestion}?)" if self.suggestion else ""
        return f"{where}{self.message}{hint}"


class Validation(BaseModel):
    ok: bool
    sql: str
    dialect: str
    problems: list[Problem]
    tables: list[str]  # mesh:// references of the datasets read (or table names when not from a mesh)
    columns: list[str]


class SqlRejectedError(MeshpilotError):
    """SQL that did not pass validation; `problems` says what and where."""


# --- the schema the SQL is checked against ----------------------------------------------------------


@dataclass
class Table:
    name: str  # as written in SQL: 'commerce.orders'
    columns: dict[str, str]  # lower-cased name -> name as declared
    ref: str | None = None  # the mesh:// dataset reference, for citations
    column_refs: dict[str, str] = field(default_factory=dict)  # lower-cased name -> mesh:// column
    classifications: dict[str, str] = field(default_factory=dict)  # lower-cased name -> PII type


class SqlSchema:
    """Tables by name; a table is found by its qualified name or, when unambiguous, its last part."""

    def __init__(self, tables: Iterable[Table]):
        self.tables = list(tables)
        self._by_name: dict[str, Table | None] = {}
        for table in self.tables:
            full = table.name.lower()
            self._by_name[full] = table
            short = full.rsplit(".", 1)[-1]
            if short != full:
                # Two schemas with the same table name: the short name is ambiguous and must be qualified.
                self._by_name[short] = None if short in self._by_name and self._by_name[short] is not table else table

    @classmethod
    def from_products(cls, products: Iterable[DataProduct]) -> SqlSchema:
        tables = []
        for product in products:
            for dataset in product.datasets:
                ref = product.dataset_ref(dataset.name)
                tables.append(Table(
                    name=dataset.qualified_name, ref=str(ref),
                    columns={c.name.lower(): c.name for c in dataset.columns},
                    column_refs={c.name.lower(): str(ref.with_column(c.name)) for c in dataset.columns},
                    classifications={c.name.lower(): c.classification for c in dataset.columns if c.classification},
                ))
        return cls(tables)

    def find(self, name: str) -> Table | None:
        return self._by_name.get(name.lower())

    def is_ambiguous(self, name: str) -> bool:
        return name.lower() in self._by_name and self._by_name[name.lower()] is None

    def names(self) -> list[str]:
        return [t.name for t in self.tables]


class AccessPolicy(Protocol):
    """What a caller may read; the guardrails fill it in. Each returns a reason to refuse, or None."""

    def check_table(self, table: Table) -> str | None: ...

    def check_column(self, table: Table, column: str) -> str | None: ...


# --- validation ------------------------------------------------------------------------------------------


def validate_sql(sql: str, schema: SqlSchema, dialect: str = "duckdb", caller: AccessPolicy | None = None) -> Validation:
    return _Validator(sql, schema, dialect, caller).run()


class _Validator:
    def __init__(self, sql: str, schema: SqlSchema, dialect: str, caller: AccessPolicy | None):
        if dialect not in DIALECTS:
            raise InvalidArgumentError(f"Unknown SQL dialect '{dialect}'.", hint=f"Use one of: {', '.join(DIALECTS)}.")
        self.sql, self.schema, self.dialect, self.caller = sql, schema, dialect, caller
        self.problems: list[Problem] = []
        self.tables: dict[str, None] = {}
        self.columns: dict[str, None] = {}

    def result(self) -> Validation:
        return Validation(ok=not self.problems, sql=self.sql, dialect=self.dialect, problems=self.problems,
                          tables=list(self.tables), columns=list(self.columns))

    def problem(self, code: str, message: str, node: exp.Expression | None = None, suggestion: str | None = None) -> None:
        line, col = _position(node)
        self.problems.append(Problem(code=code, message=message, line=line, col=col, suggestion=suggestion))

    def run(self) -> Validation:
        if not self.sql or not self.sql.strip():
            self.problem("syntax", "the SQL is empty")
            return self.result()
        try:
            statements = [s for s in sqlglot.parse(self.sql, read=self.dialect) if s is not None]
        except ParseError as exc:
            error = exc.errors[0] if exc.errors else {}
            self.problems.append(Problem(code="syntax", line=error.get("line"), col=error.get("col"),
                                         message=f"not valid {self.dialect} SQL: {error.get('description') or exc}"))
            return self.result()
        except sqlglot.errors.TokenError as exc:  # an unterminated string or comment
            self.problems.append(Problem(code="syntax", message=f"not valid {self.dialect} SQL: {exc}"))
            return self.result()
        if len(statements) != 1:
            self.problem("statements", f"expected exactly one statement, found {len(statements)}",
                         statements[1] if len(statements) > 1 else None)
            return self.result()
        tree = statements[0]
        if not self._read_only(tree):
            return self.result()
        self._resolve(tree)
        if not self.tables and not self.problems:
            # Nothing to ground an answer in; such queries only probe the engine (versions, settings).
            self.problem("no_table", "the query reads no catalog table", tree)
        return self.result()

    def _read_only(self, tree: exp.Expression) -> bool:
        if not isinstance(tree, exp.Query | exp.Values) or isinstance(tree, exp.Command):
            kind = tree.key.upper() if not isinstance(tree, exp.Command) else str(tree.this).upper()
            self.problem("read_only", f"only queries may run (SELECT, WITH, UNION, VALUES); this is a {kind} statement",
                         tree)
            return False
        for node in tree.walk():
            if isinstance(node, _WRITE_NODES):
                self.problem("read_only", f"a query may not contain a {node.key.upper()} statement", node)
                return False
            if isinstance(node, exp.Func):
                name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
                if name in _OUTSIDE_FUNCTIONS or isinstance(node, getattr(exp, "ReadCSV", ())):
                    self.problem("outside", f"{name}() reads files, URLs or other databases; only catalog tables may be queried",
                                 node)
                    return False
        for table in tree.find_all(exp.Table):
            if isinstance(table.this, exp.Literal) or (table.name and any(ch in table.name for ch in "/:\\")):
                self.problem("outside", f"'{table.name}' is a file or URL; only catalog tables may be queried", table)
                return False
        return True

    # --- resolution --------------------------------------------------------------------------------------

    def _resolve(self, tree: exp.Expression) -> None:
        try:
            scopes = traverse_scope(tree)
        except (OptimizeError, ValueError, KeyError) as exc:
            self.problem("syntax", f"cannot analyse the query's structure: {exc}")
            return
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        # Scopes come innermost first, and an outer scope also lists its subqueries' columns: each column
        # is resolved once, in the innermost scope that holds it.
        handled: set[int] = set()
        for scope in scopes:
            self._resolve_scope(scope, ctes, handled)

    def _resolve_scope(self, scope: Scope, ctes: set[str], handled: set[int]) -> None:
        sources = self._sources(scope, ctes)
        # Only explicit aliases: a bare column's own name must still resolve against the sources.
        select_aliases = {p.alias.lower() for p in getattr(scope.expression, "expressions", [])
                          if isinstance(p, exp.Alias)}
        for column in scope.columns:
            if id(column) in handled:
                continue
            handled.add(id(column))
            self._resolve_column(column, scope, sources, select_aliases)
        if self.caller is not None:
            self._check_stars(scope, sources)

    def _check_stars(self, scope: Scope, sources: dict[str, Any]) -> None:
        """`*` and `t.*` read every column of their tables: the policy checks each of them."""
        for projection in getattr(scope.expression, "expressions", []):
            if isinstance(projection, exp.Star):
                targets = list(sources.values())
            elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                targets = [sources.get(projection.table.lower())]
            else:
                continue
            for source in targets:
                if isinstance(source, Table):
                    for name in source.columns:
                        reason = self.caller.check_column(source, source.columns[name])
                        if reason:
                            self.problem("policy", reason + " (selected by *)", projection)

    def _sources(self, scope: Scope, ctes: set[str]) -> dict[str, Any]:
        """alias -> Table (catalog), a set of column names (derived), or None (columns unknown)."""
        resolved: dict[str, Any] = {}
        for alias, source in scope.sources.items():
            if isinstance(source, exp.Table):
                resolved[alias.lower()] = self._table(source, ctes)
            elif isinstance(source, Scope):
                names = _alias_columns(source.expression) or _output_names(source.expression)
                resolved[alias.lower()] = None if names is None else {n.lower() for n in names}
            else:
                resolved[alias.lower()] = None
        return resolved

    def _table(self, node: exp.Table, ctes: set[str]) -> Table | None:
        name = ".".join(p for p in (node.catalog, node.db, node.name) if p)
        if not node.db and node.name.lower() in ctes:
            return None
        table = self.schema.find(name)
        if table is None:
            if self.schema.is_ambiguous(name):
                options = [t.name for t in self.schema.tables if t.name.lower().endswith("." + name.lower())]
                self.problem("table", f"table '{name}' exists in several schemas; qualify it", node, " or ".join(options))
            else:
                close = _closest(name, self.schema.names() + [n.rsplit(".", 1)[-1] for n in self.schema.names()])
                self.problem("table", f"no table '{name}' in the catalog", node, close)
            return None
        if self.caller is not None:
            reason = self.caller.check_table(table)
            if reason:
                self.problem("policy", reason, node)
        self.tables[table.ref or table.name] = None
        return table

    def _resolve_column(self, column: exp.Column, scope: Scope, sources: dict[str, Any], aliases: set[str]) -> None:
        name = column.name.lower()
        if not name or isinstance(column.this, exp.Star):
            return
        qualifier = column.table.lower()
        if qualifier:
            chain = [sources, *self._outer_sources(scope)]
            source_sets = [s for s in chain if qualifier in s]
            if not source_sets:
                self.problem("alias", f"'{column.table}' is not a table or alias in this query", column,
                             _closest(qualifier, list(sources)))
                return
            source = source_sets[0][qualifier]
            self._check_in(column, name, source, qualifier)
            return
        for candidate_sources in [sources, *self._outer_sources(scope)]:
            for source in candidate_sources.values():
                if source is None or (isinstance(source, set) and name in source):
                    return
                if isinstance(source, Table) and name in source.columns:
                    self._use(source, name, column)
                    return
        if name in aliases:
            return
        if self.dialect == "sqlite" and column.this.quoted:
            # SQLite reads a double-quoted word that names no column as a string literal.
            return
        known = sorted({c for s in sources.values() if isinstance(s, Table) for c in s.columns.values()}
                       | {c for s in sources.values() if isinstance(s, set) for c in s})
        tables = ", ".join(s.name for s in sources.values() if isinstance(s, Table)) or "the query's sources"
        self.problem("column", f"no column '{column.name}' in {tables}", column, _closest(column.name, known))

    def _check_in(self, column: exp.Column, name: str, source: Any, qualifier: str) -> None:
        if source is None:
            return
        if isinstance(source, set):
            if name not in source:
                self.problem("column", f"no column '{column.name}' in the subquery '{qualifier}'", column,
                             _closest(column.name, sorted(source)))
            return
        if name not in source.columns:
            self.problem("column", f"no column '{column.name}' in {source.name}", column,
                         _closest(column.name, list(source.columns.values())))
            return
        self._use(source, name, column)

    def _use(self, table: Table, name: str, node: exp.Column) -> None:
        self.columns[table.column_refs.get(name) or f"{table.name}.{table.columns[name]}"] = None
        if self.caller is not None:
            reason = self.caller.check_column(table, table.columns[name])
            if reason:
                self.problem("policy", reason, node)

    def _outer_sources(self, scope: Scope) -> list[dict[str, Any]]:
        chain, parent = [], scope.parent
        while parent is not None:
            chain.append(self._quiet_sources(parent))
            parent = parent.parent
        return chain

    def _quiet_sources(self, scope: Scope) -> dict[str, Any]:
        """An enclosing scope's sources, for correlated references; its own problems are reported once, there."""
        saved = list(self.problems)
        try:
            return self._sources(scope, set())
        finally:
            self.problems = saved


def _alias_columns(query: exp.Expression) -> list[str]:
    """Column names given with the alias, as in `WITH r(n) AS (...)` or `(...) AS t(a, b)`."""
    holder = query.parent if isinstance(query.parent, exp.CTE | exp.Subquery) else None
    alias = holder.args.get("alias") if holder is not None else None
    return [c.name for c in alias.columns] if isinstance(alias, exp.TableAlias) and alias.columns else []


def _output_names(query: exp.Expression) -> list[str] | None:
    """The column names a (sub)query produces, or None when it selects `*` (unknown without expanding)."""
    if isinstance(query, exp.SetOperation):
        return _output_names(query.left)
    if not isinstance(query, exp.Select):
        return None
    names = []
    for projection in query.expressions:
        if isinstance(projection, exp.Star) or (isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)):
            return None
        names.append(projection.alias_or_name)
    return names


def _closest(name: str, options: list[str]) -> str | None:
    by_lower = {o.lower(): o for o in options}
    match = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def _position(node: exp.Expression | None) -> tuple[int | None, int | None]:
    if node is None:
        return None, None
    meta = getattr(node, "meta", None) or {}
    if "line" not in meta:
        identifier = node.find(exp.Identifier)
        meta = getattr(identifier, "meta", None) or {} if identifier is not None else {}
    return meta.get("line"), meta.get("col")


# --- transpiling -------------------------------------------------------------------------------------------


def transpile_sql(sql: str, to: str, read: str = "duckdb") -> str:
    for dialect in (to, read):
        if dialect not in DIALECTS:
            raise InvalidArgumentError(f"Unknown SQL dialect '{dialect}'.", hint=f"Use one of: {', '.join(DIALECTS)}.")
    try:
        statements = sqlglot.transpile(sql, read=read, write=to, unsupported_level=sqlglot.ErrorLevel.RAISE)
    except (ParseError, sqlglot.errors.UnsupportedError) as exc:
        raise InvalidArgumentError(f"Cannot transpile from {read} to {to}: {str(exc).splitlines()[0]}") from None
    return ";\n".join(statements)


# --- running -------------------------------------------------------------------------------------------------


class RunResult(BaseModel):
    sql: str  # exactly what ran
    engine: str
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    elapsed_ms: float
    citations: list[str]


class QueryTimeoutError(MeshpilotError):
    """The query ran past its time limit and was interrupted."""


def limited(tree: exp.Query, limit: int) -> exp.Query:
    """The query with at most `limit` + 1 rows (one more tells that there were more), via the AST."""
    existing = tree.args.get("limit")
    if existing is not None:
        value = existing.expression if isinstance(existing, exp.Limit) else existing
        if isinstance(value, exp.Literal) and value.is_int and int(value.this) <= limit:
            return tree
    if isinstance(tree, exp.Select):
        return tree.limit(limit + 1, copy=True)
    return exp.select("*").from_(tree.subquery("limited")).limit(limit + 1)


class DuckDBEngine:
    """The workspace warehouse, opened read-only with no way out: no files, no URLs, settings locked."""

    name = "duckdb"
    dialect = "duckdb"

    def __init__(self, path: Path, memory_limit: str = "1GB", threads: int = 2):
        self.path = path
        self.memory_limit = memory_limit
        self.threads = threads

    def execute(self, sql: str, timeout_s: float) -> tuple[list[str], list[list[Any]]]:
        import duckdb

        config = {
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": self.memory_limit,
            "threads": self.threads,
            "lock_configuration": True,
        }
        con = duckdb.connect(str(self.path), read_only=True, config=config)
        timer = threading.Timer(timeout_s, con.interrupt)
        timer.start()
        try:
            cursor = con.execute(sql)
            columns = [d[0] for d in cursor.description]
            rows = [list(r) for r in cursor.fetchall()]
            return columns, rows
        except duckdb.InterruptException:
            raise QueryTimeoutError(f"The query ran past {timeout_s:g} s and was stopped.",
                                    hint="Narrow it (filters, fewer joins) or raise --timeout.") from None
        except duckdb.Error as exc:
            raise SqlRejectedError(f"The warehouse refused the query: {str(exc).splitlines()[0]}") from None
        finally:
            timer.cancel()
            con.close()


class PostgresEngine:
    """A PostgreSQL database through SQLAlchemy: every session read-only, with a statement timeout."""

    name = "postgres"
    dialect = "postgres"

    def __init__(self, url: str):
        if not url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            raise InvalidArgumentError(f"'{url}' is not a PostgreSQL URL.",
                                       hint="Write postgresql+psycopg://user:password@host:5432/database.")
        self.url = url.replace("postgres://", "postgresql+psycopg://", 1).replace(
            "postgresql://", "postgresql+psycopg://", 1)

    def execute(self, sql: str, timeout_s: float) -> tuple[list[str], list[list[Any]]]:
        try:
            from sqlalchemy import create_engine, text
            from sqlalchemy.exc import DBAPIError, SQLAlchemyError
            from sqlalchemy.pool import NullPool
        except ImportError:
            raise InvalidArgumentError("The PostgreSQL engine needs the postgres extra.",
                                       hint="uv sync --extra postgres") from None
        # The server enforces both: a read-only transaction and a statement timeout it cancels itself.
        options = f"-c default_transaction_read_only=on -c statement_timeout={int(timeout_s * 1000)}"
        engine = create_engine(self.url, connect_args={"options": options, "connect_timeout": 10},
                               poolclass=NullPool)
        try:
            try:
                con = engine.connect()
            except SQLAlchemyError as exc:
                raise SqlRejectedError(f"Cannot reach PostgreSQL: {str(getattr(exc, 'orig', exc)).splitlines()[0]}",
                                       hint="Check the URL, that the server is up and that it accepts this user.") from None
            with con:
                cursor = con.execute(text(sql))
                return list(cursor.keys()), [list(r) for r in cursor.fetchall()]
        except DBAPIError as exc:
            if "statement timeout" in str(exc.orig):
                raise QueryTimeoutError(f"The query ran past {timeout_s:g} s and was stopped.",
                                        hint="Narrow it (filters, fewer joins) or raise --timeout.") from None
            raise SqlRejectedError(f"PostgreSQL refused the query: {str(exc.orig).splitlines()[0]}") from None
        except SQLAlchemyError as exc:
            raise SqlRejectedError(f"PostgreSQL failed: {str(exc).splitlines()[0]}") from None
        finally:
            engine.dispose()


def engine_for(url: str | None, workspace: Any) -> Any:
    """The engine a URL names (postgresql://...), or the workspace's DuckDB warehouse."""
    return PostgresEngine(url) if url else DuckDBEngine(_workspace(workspace).warehouse_path)


def run_validated(sql: str, schema: SqlSchema, engine: Any, dialect: str = "duckdb", limit: int = 1000,
                  timeout_s: float = 10.0, caller: AccessPolicy | None = None) -> RunResult:
    """Validate, bound and run one query; nothing that fails validation reaches the engine."""
    if limit < 1:
        raise InvalidArgumentError(f"The row limit must be at least 1 (got {limit}).")
    validation = validate_sql(sql, schema, dialect, caller)
    if not validation.ok:
        raise SqlRejectedError("The SQL was not run:", problems=[_as_error_problem(p) for p in validation.problems],
                               hint="Fix the problems above and try again.")
    tree = sqlglot.parse_one(sql, read=dialect)
    bounded = limited(tree, limit).sql(dialect=engine.dialect)
    started = time.perf_counter()
    columns, rows = engine.execute(bounded, timeout_s)
    elapsed = (time.perf_counter() - started) * 1000
    truncated = len(rows) > limit
    return RunResult(sql=bounded, engine=engine.name, columns=columns, rows=rows[:limit], row_count=min(len(rows), limit),
                     truncated=truncated, elapsed_ms=round(elapsed, 2), citations=validation.tables + validation.columns)


def _as_error_problem(problem: Problem):
    from meshpilot.errors import Problem as ErrorProblem

    return ErrorProblem(source="query", message=str(problem))


# --- the tool functions, over a workspace ---------------------------------------------------------------


def workspace_schema(workspace: Any) -> SqlSchema:
    from meshpilot.mesh.store import MeshStore

    with MeshStore.open(workspace) as store:
        return SqlSchema.from_products(store.product(r["ref"]) for r in store.list_products())


def validate(sql: str, dialect: str = "duckdb", caller: AccessPolicy | None = None, workspace: Any = None) -> Validation:
    """Validate SQL against the workspace's catalog: see `validate_sql`."""
    return validate_sql(sql, workspace_schema(_workspace(workspace)), dialect, caller)


def run_sql(sql: str, dialect: str = "duckdb", limit: int = 1000, timeout_s: float = 10.0,
            caller: AccessPolicy | None = None, workspace: Any = None, engine: Any = None) -> RunResult:
    """Validate and run one query on the workspace warehouse (or `engine`), read-only and bounded."""
    ws = _workspace(workspace)
    return run_validated(sql, workspace_schema(ws), engine or DuckDBEngine(ws.warehouse_path), dialect, limit,
                         timeout_s, caller)


def _workspace(workspace: Any) -> Any:
    from meshpilot.mesh.workspace import Workspace

    return workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
