"""SQL the copilot can trust: validated against the catalog, transpiled by sqlglot, run read-only.

The public surface of the SQL capability. `validate_sql` (sql_validation.py) is the first line of the
access policy; `run_validated` runs only validated SQL, on an engine that is read-only in its own right,
with the row limit added through the syntax tree, a timeout that interrupts the query, memory and result
size limits, and, for a restricted caller, over the relation set of their role (sql_engines.py), so the
engine enforces the policy whatever the SQL looks like.
"""

from __future__ import annotations

import time
from typing import Any

import sqlglot
from pydantic import BaseModel
from sqlglot import exp
from sqlglot.errors import ParseError

from meshpilot.errors import InvalidArgumentError
from meshpilot.tools.sql_engines import (DuckDBEngine, PostgresEngine, QueryTimeoutError, RelationSet,
                                         ResultTooLargeError, SqlRejectedError, engine_for)
from meshpilot.tools.sql_schema import AccessPolicy, IndexedSqlSchema, SqlSchema, Table
from meshpilot.tools.sql_validation import DIALECTS, Problem, Validation, validate_sql

__all__ = ["DIALECTS", "AccessPolicy", "DuckDBEngine", "PostgresEngine", "Problem", "QueryTimeoutError",
           "RelationSet", "ResultTooLargeError", "RunResult", "SqlRejectedError", "SqlSchema", "Table", "Validation",
           "engine_for", "limited", "run_sql", "run_validated", "transpile_sql", "validate", "validate_sql",
           "workspace_schema"]


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
    masked: list[str] = []  # columns whose values came back as tokens (the role sees PII masked)
    pii_columns: list[str] = []  # classified columns the query read


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


def run_validated(sql: str, schema: SqlSchema, engine: Any, dialect: str = "duckdb", limit: int = 1000,
                  timeout_s: float = 10.0, caller: AccessPolicy | None = None, *, max_tokens: int | None = None,
                  max_depth: int | None = None) -> RunResult:
    """Validate, bound and run one query; nothing that fails validation reaches the engine, and for a
    restricted caller the engine holds only the caller's relation set."""
    if limit < 1:
        raise InvalidArgumentError(f"The row limit must be at least 1 (got {limit}).")
    bounds = {k: v for k, v in (("max_tokens", max_tokens), ("max_depth", max_depth)) if v}
    validation = validate_sql(sql, schema, dialect, caller, **bounds)
    if not validation.ok:
        raise SqlRejectedError("The SQL was not run:", problems=[_as_error_problem(p) for p in validation.problems],
                               hint="Fix the problems above and try again.")
    relations = schema.relation_set(caller) if caller is not None else None
    tree = limited(validation.tree, limit)
    prepare = getattr(engine, "prepare", None)
    if prepare is not None:
        tree = prepare(tree.copy(), relations)
    bounded = tree.sql(dialect=engine.dialect)
    started = time.perf_counter()
    columns, rows = engine.execute(bounded, timeout_s, relations=relations)
    elapsed = (time.perf_counter() - started) * 1000
    truncated = len(rows) > limit
    return RunResult(sql=bounded, engine=engine.name, columns=columns, rows=rows[:limit], row_count=min(len(rows), limit),
                     truncated=truncated, elapsed_ms=round(elapsed, 2), citations=validation.tables + validation.columns,
                     masked=validation.masked, pii_columns=validation.pii_columns)


def _as_error_problem(problem: Problem):
    from meshpilot.errors import Problem as ErrorProblem

    return ErrorProblem(source="query", message=str(problem))


# --- the tool functions, over a workspace ---------------------------------------------------------------


def workspace_schema(workspace: Any) -> SqlSchema:
    """The catalog's tables, read from the metadata index as queries name them (not by parsing every
    product, nor by reading every table)."""
    from meshpilot.mesh.store import MeshStore

    return IndexedSqlSchema(MeshStore.open(workspace).con)


def validate(sql: str, dialect: str = "duckdb", caller: AccessPolicy | None = None, workspace: Any = None) -> Validation:
    """Validate SQL against the workspace's catalog: see `validate_sql`."""
    ws = _workspace(workspace)
    return validate_sql(sql, workspace_schema(ws), dialect, caller, **bounds(ws))


def run_sql(sql: str, dialect: str = "duckdb", limit: int = 1000, timeout_s: float = 10.0,
            caller: AccessPolicy | None = None, workspace: Any = None, engine: Any = None) -> RunResult:
    """Validate and run one query on the workspace warehouse (or `engine`), read-only and bounded."""
    ws = _workspace(workspace)
    return run_validated(sql, workspace_schema(ws), engine or engine_for(None, ws), dialect, limit, timeout_s, caller,
                         **bounds(ws))


def bounds(workspace: Any) -> dict[str, int]:
    """The workspace's validation bounds (`sql:` in meshpilot.yaml)."""
    settings = workspace.load_manifest().sql
    return {"max_tokens": settings.max_tokens, "max_depth": settings.max_depth}


def _workspace(workspace: Any) -> Any:
    from meshpilot.mesh.workspace import Workspace

    return workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
