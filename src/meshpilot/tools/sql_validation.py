"""SQL validation: the first line of the access policy, and the reason a refused query is refused.

`validate_sql` bounds the query (tokens, nesting) before parsing it, parses it in the caller's dialect,
requires exactly one read-only statement, refuses functions that reach files, URLs, settings or the
engine's own catalog, resolves every table against the catalog and every column in every scope with
sqlglot's `optimizer.qualify` (stars expanded, CTEs, subqueries, HAVING, QUALIFY, ORDER BY, correlated
references), and applies the caller's access policy to each column read. Whatever it cannot resolve
(`COLUMNS()`, `#n`, `*` inside an expression, a whole row used as a value) it refuses, with the reason
and a suggestion. The engine enforces the policy again on its own (tools/sql_engines.py): a query that
passes here still sees only what the role may read.
"""

from __future__ import annotations

import difflib
import logging
import re
from typing import Any

import sqlglot
from pydantic import BaseModel, PrivateAttr
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError, TokenError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.schema import MappingSchema
from sqlglot.tokens import TokenType

from meshpilot.errors import InvalidArgumentError
from meshpilot.tools.sql_schema import AccessPolicy, SqlSchema, Table, treatment_of

# sqlglot logs a warning for each statement it can only parse as a bare command (LOAD, CALL...):
# the validator refuses those itself, with a reason, so the log line would only be noise.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

DIALECTS = ("duckdb", "postgres", "trino", "snowflake", "bigquery", "spark", "sqlite")
DEFAULT_MAX_TOKENS = 5_000
DEFAULT_MAX_DEPTH = 24

# Statements that are not queries. Looked up by name: sqlglot adds node types across versions.
_WRITE_NODES = tuple(filter(None, (getattr(exp, name, None) for name in (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "AlterTable", "TruncateTable", "Command",
    "Copy", "Set", "Pragma", "Use", "Transaction", "Commit", "Rollback", "LoadData", "Attach", "Detach",
    "Install", "Grant", "Revoke", "Analyze", "Describe", "Refresh", "Cache", "Uncache", "Export", "Summarize",
))))
# Functions that read files, URLs or other databases, run SQL given as text, or show settings and paths.
_OUTSIDE_FUNCTIONS = frozenset({
    "read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "parquet_metadata", "parquet_schema",
    "read_json", "read_json_auto", "read_json_objects", "read_json_objects_auto", "read_ndjson",
    "read_ndjson_auto", "read_ndjson_objects", "read_text", "read_blob", "glob", "sniff_csv", "read_xlsx",
    "st_read", "st_read_meta", "iceberg_scan", "iceberg_metadata", "delta_scan", "sqlite_scan", "sqlite_attach",
    "postgres_scan", "postgres_query", "postgres_attach", "mysql_scan", "mysql_query", "query", "query_table",
    "load_aws_credentials", "httpfs", "read_file", "lo_import", "lo_export", "dblink", "file",
    "load_extension", "readfile", "writefile", "edit", "fts_main", "current_setting", "set_config", "getenv",
    "which_secret", "inet_server_addr", "inet_client_addr", "current_schemas", "checkpoint", "force_checkpoint",
    "enable_profiling", "enable_logging", "test_all_types", "repository", "pg_catalog",
})
# Families of functions over the engine's own catalog and settings (duckdb_tables(), pragma_*, pg_ls_dir...).
_OUTSIDE_PREFIXES = ("duckdb_", "pragma_", "pg_", "sqlite_", "information_schema")
_SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "system", "temp", "main.information_schema"})


class Problem(BaseModel):
    code: str  # syntax, too_large, statements, read_only, outside, table, column, alias, unsupported, policy
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
    masked: list[str] = []  # columns the caller sees as tokens
    pii_columns: list[str] = []  # classified columns the query reads (in the clear or masked)
    pending_approval: list[str] = []  # PII columns the caller may read in the clear once a human approves
    _tree: Any = PrivateAttr(None)  # the statement with every catalog table fully qualified: what runs

    @property
    def tree(self) -> exp.Expression | None:
        return self._tree


def validate_sql(sql: str, schema: SqlSchema, dialect: str = "duckdb", caller: AccessPolicy | None = None, *,
                 max_tokens: int = DEFAULT_MAX_TOKENS, max_depth: int = DEFAULT_MAX_DEPTH) -> Validation:
    validator = _Validator(sql, schema, dialect, caller, max_tokens, max_depth)
    try:
        return validator.run()
    except RecursionError:
        # A shape the bounds did not foresee (long chains of NOT, unary minus...): refused, never a crash.
        validator.problems = [Problem(code="too_large", message="the query is nested too deeply to analyse; "
                                      "simplify it (fewer nested expressions or subqueries)")]
        validator.tree = None
        return validator.result()


class _Validator:
    def __init__(self, sql: str, schema: SqlSchema, dialect: str, caller: AccessPolicy | None, max_tokens: int,
                 max_depth: int):
        if dialect not in DIALECTS:
            raise InvalidArgumentError(f"Unknown SQL dialect '{dialect}'.", hint=f"Use one of: {', '.join(DIALECTS)}.")
        self.sql, self.schema, self.dialect, self.caller = sql, schema, dialect, caller
        self.max_tokens, self.max_depth = max_tokens, max_depth
        self.problems: list[Problem] = []
        self.tables: dict[str, None] = {}
        self.columns: dict[str, None] = {}
        self.masked: dict[str, None] = {}
        self.pending: dict[str, None] = {}
        self.pii_columns: dict[str, None] = {}
        self.tree: exp.Expression | None = None

    def result(self) -> Validation:
        validation = Validation(ok=not self.problems, sql=self.sql, dialect=self.dialect, problems=self.problems,
                                tables=list(self.tables), columns=list(self.columns), masked=list(self.masked),
                                pending_approval=list(self.pending), pii_columns=list(self.pii_columns))
        validation._tree = self.tree if not self.problems else None
        return validation

    def problem(self, code: str, message: str, node: exp.Expression | None = None, suggestion: str | None = None) -> None:
        line, col = _position(node)
        self.problems.append(Problem(code=code, message=message, line=line, col=col, suggestion=suggestion))

    def run(self) -> Validation:
        if not self.sql or not self.sql.strip():
            self.problem("syntax", "the SQL is empty")
            return self.result()
        if not self._bounded():
            return self.result()
        try:
            statements = [s for s in sqlglot.parse(self.sql, read=self.dialect) if s is not None]
        except ParseError as exc:
            error = exc.errors[0] if exc.errors else {}
            self.problems.append(Problem(code="syntax", line=error.get("line"), col=error.get("col"),
                                         message=f"not valid {self.dialect} SQL: {error.get('description') or exc}"))
            return self.result()
        except TokenError as exc:  # an unterminated string or comment
            self.problems.append(Problem(code="syntax", message=f"not valid {self.dialect} SQL: {exc}"))
            return self.result()
        if len(statements) != 1:
            self.problem("statements", f"expected exactly one statement, found {len(statements)}",
                         statements[1] if len(statements) > 1 else None)
            return self.result()
        tree = statements[0]
        if not self._read_only(tree) or not self._supported(tree):
            return self.result()
        catalog_tables = self._tables(tree)
        if self.problems:
            return self.result()
        if not catalog_tables:
            # Nothing to ground an answer in; such queries only probe the engine (versions, settings).
            self.problem("no_table", "the query reads no catalog table", tree)
            return self.result()
        self._resolve(tree, catalog_tables)
        if not self.problems:
            self.tree = tree
        return self.result()

    # --- bounds, before any recursive work -------------------------------------------------------------------

    def _bounded(self) -> bool:
        try:
            tokens = sqlglot.Dialect.get_or_raise(self.dialect).tokenize(self.sql)
        except TokenError as exc:
            self.problems.append(Problem(code="syntax", message=f"not valid {self.dialect} SQL: {exc}"))
            return False
        if len(tokens) > self.max_tokens:
            self.problem("too_large", f"the query has {len(tokens):,} tokens, more than the limit of "
                                      f"{self.max_tokens:,}; split it, or use IN (...) or a join instead of long "
                                      "chains of OR")
            return False
        depth = deepest = 0
        for token in tokens:
            if token.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE, TokenType.CASE):
                depth += 1
                if depth > deepest:
                    deepest = depth
                    if deepest > self.max_depth:
                        self.problems.append(Problem(
                            code="too_large", line=token.line, col=token.col,
                            message=f"the query nests brackets, subqueries or CASE more than {self.max_depth} deep; "
                                    "flatten it (CTEs instead of nested subqueries)"))
                        return False
            elif token.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE, TokenType.END):
                depth = max(depth - 1, 0)
        return True

    # --- what may appear at all ---------------------------------------------------------------------------

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
                if name in _OUTSIDE_FUNCTIONS or name.startswith(_OUTSIDE_PREFIXES) or isinstance(
                        node, getattr(exp, "ReadCSV", ())):
                    self.problem("outside", f"{name}() reads files, URLs, settings or the engine's own catalog; "
                                            "only catalog tables may be queried", node)
                    return False
        for table in tree.find_all(exp.Table):
            if isinstance(table.this, exp.Literal) or (table.name and any(ch in table.name for ch in "/:\\")):
                self.problem("outside", f"'{table.name}' is a file or URL; only catalog tables may be queried", table)
                return False
        return True

    def _supported(self, tree: exp.Expression) -> bool:
        """Constructs whose columns cannot be told before running: refused, with what to write instead."""
        for node in tree.walk():
            if isinstance(node, exp.Columns):
                self.problem("unsupported", "COLUMNS(...) picks columns at run time, so they cannot be checked; "
                                            "name the columns", node)
            elif isinstance(node, exp.PositionalColumn):
                self.problem("unsupported", f"#{node.this} refers to a column by position; name the column", node)
            elif isinstance(node, exp.Star) and not _star_allowed(node):
                self.problem("unsupported", "* inside an expression reads every column at once; list the columns "
                                            "you need", node)
        return not self.problems

    # --- tables -----------------------------------------------------------------------------------------------

    def _tables(self, tree: exp.Expression) -> list[tuple[exp.Table, Table]]:
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        found = []
        for node in tree.find_all(exp.Table):
            if not isinstance(node.this, exp.Identifier):
                continue  # a table function (unnest, range...): its columns come from its arguments
            if not node.db and node.name.lower() in ctes:
                continue
            table = self._table(node)
            if table is not None:
                found.append((node, table))
        return found

    def _may_see(self, name: str) -> bool:
        """Whether a suggestion may name this table: never one the caller may not read."""
        table = self.schema.find(name)
        return table is not None and (self.caller is None or self.caller.check_table(table) is None)

    def _table(self, node: exp.Table) -> Table | None:
        name = ".".join(p for p in (node.catalog, node.db, node.name) if p)
        table = self.schema.find(name)
        if table is None:
            if self.schema.is_ambiguous(name):
                options = self.schema.named(name)
                self.problem("table", f"table '{name}' exists in several schemas; qualify it", node, " or ".join(options))
            elif (node.db or "").lower() in _SYSTEM_SCHEMAS or (node.catalog or "").lower() in _SYSTEM_SCHEMAS:
                self.problem("outside", f"'{name}' is the engine's own catalog; only catalog tables may be queried", node)
            else:
                close = _closest(name, [n for n in self.schema.similar_names(name) if self._may_see(n)])
                self.problem("table", f"no table '{name}' in the catalog", node, close)
            return None
        if self.caller is not None:
            reason = self.caller.check_table(table)
            if reason:
                self.problem("policy", reason, node)
        self.tables[table.ref or table.name] = None
        return table

    # --- columns ----------------------------------------------------------------------------------------------

    def _resolve(self, tree: exp.Expression, catalog_tables: list[tuple[exp.Table, Table]]) -> None:
        """Qualify every column of a working copy in which each catalog table has a neutral one-part name,
        then check each column against the table it resolved to. The original gets full table names."""
        work = tree.copy()
        work_nodes = [n for n in work.find_all(exp.Table) if isinstance(n.this, exp.Identifier)]
        originals = [n for n in tree.find_all(exp.Table) if isinstance(n.this, exp.Identifier)]
        by_original = {id(node): table for node, table in catalog_tables}
        mapping: dict[str, dict[str, str]] = {}
        by_key: dict[str, Table] = {}
        for i, (original, node) in enumerate(zip(originals, work_nodes, strict=True)):
            table = by_original.get(id(original))
            if table is None:
                continue
            key = f"_mp_t{i}"
            alias = original.alias or original.name
            node.set("this", exp.to_identifier(key))
            node.set("db", None)
            node.set("catalog", None)
            node.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
            # Lower-cased here, as qualify normalises the query's identifiers: letting MappingSchema normalise
            # parses every column name, which costs more than the rest of validation.
            mapping[key] = {name.lower(): "VARCHAR" for name in table.columns.values()}
            by_key[key] = table
            _set_full_name(original, table)
        for _ in range(50):  # SQLite: each double-quoted word that names no column is a string literal
            try:
                qualified = qualify(work.copy(), schema=MappingSchema(mapping, dialect=self.dialect, normalize=False),
                                    dialect=self.dialect, validate_qualify_columns=True,
                                    expand_stars=True, quote_identifiers=False, identify=False,
                                    infer_schema=False)
                break
            except OptimizeError as exc:
                if not self._literal_fallback(str(exc), work, tree):
                    self._explain(str(exc), work, by_key)
                    return
        else:
            self.problem("syntax", "too many double-quoted words that name no column")
            return
        self._check_columns(qualified, by_key)

    def _literal_fallback(self, message: str, work: exp.Expression, tree: exp.Expression) -> bool:
        if self.dialect != "sqlite":
            return False
        name = _unresolved_name(message)
        for root in (work, tree):
            for column in list(root.find_all(exp.Column)):
                ident = column.this
                start = (ident.meta or {}).get("start") if isinstance(ident, exp.Identifier) else None
                if (not column.table and ident.quoted and column.name.lower() == (name or "").lower()
                        and start is not None
                        and self.sql[start:start + 1] == '"'):
                    column.replace(exp.Literal.string(column.name))
                    if root is tree:
                        return True
        return False

    def _explain(self, message: str, work: exp.Expression, by_key: dict[str, Table]) -> None:
        """One clear problem for what qualify could not resolve, in our words, with a suggestion."""
        name = _unresolved_name(message)
        if name is None:
            self.problem("column", "cannot tell which table each column comes from: "
                         + re.sub(r"\s*Line: \d+, Col: \d+", "", message).strip().rstrip("."))
            return
        node = next((c for c in work.find_all(exp.Column) if c.name.lower() == name.lower()), None)
        if node is not None and node.table:
            self.problem("alias", f"'{node.table}' is not a table or alias in this query", node)
            return
        holders = [t for t in by_key.values() if name.lower() in t.columns]
        if len(holders) > 1:
            self.problem("column", f"column '{name}' is in several tables of the query "
                                   f"({', '.join(t.name for t in holders)}); qualify it with a table or alias", node)
            return
        if holders:
            self.problem("column", f"cannot tell where '{name}' comes from here; qualify it with a table or alias", node)
            return
        known = sorted({c for t in by_key.values() for c in t.columns.values()})
        tables = ", ".join(dict.fromkeys(t.name for t in by_key.values())) or "the query's sources"
        whole_row = any(name.lower() in (t.name.lower(), t.name.lower().rsplit(".", 1)[-1]) for t in by_key.values())
        if whole_row or (node is not None and name.lower() in _aliases(work)):
            self.problem("unsupported", f"'{name}' is a whole row, not a column; name the columns you need", node)
            return
        self.problem("column", f"no column '{name}' in {tables}", node, _closest(name, known))

    def _check_columns(self, qualified: exp.Expression, by_key: dict[str, Table]) -> None:
        seen: set[int] = set()
        for scope in traverse_scope(qualified):
            for column in scope.columns:
                if id(column) in seen:
                    continue
                seen.add(id(column))
                source = _source(scope, column.table)
                if isinstance(source, exp.Table):
                    table = by_key.get(source.name)
                    if table is not None:
                        self._use(table, column)
                elif source is None and column.table:
                    self.problem("column", f"cannot tell which table '{column.table}.{column.name}' comes from",
                                 column)
        for column in qualified.find_all(exp.Column):
            if id(column) not in seen and not _lambda_variable(column) and not isinstance(column.this, exp.Star) \
                    and not _projection_alias(column):
                self.problem("unsupported", f"cannot tell which table '{column.sql(self.dialect)}' comes from; "
                                            "qualify it with a table or alias", column)

    def _use(self, table: Table, column: exp.Column) -> None:
        name = column.name.lower()
        if name not in table.columns:
            self.problem("column", f"no column '{column.name}' in {table.name}", column,
                         _closest(column.name, list(table.columns.values())))
            return
        declared = table.columns[name]
        ref = table.column_refs.get(name) or f"{table.name}.{declared}"
        self.columns[ref] = None
        if name in table.classifications:
            self.pii_columns[ref] = None
        if self.caller is None:
            return
        reason = self.caller.check_column(table, declared)
        if reason:
            self.problem("policy", reason, column)
        elif treatment_of(self.caller, table, declared) == "mask":
            self.masked[ref] = None
            if getattr(self.caller, "pending_approval", lambda *_: False)(table, declared):
                self.pending[ref] = None


def _star_allowed(star: exp.Star) -> bool:
    parent = star.parent
    if isinstance(parent, exp.Column):  # t.*
        parent = parent.parent
    return isinstance(parent, exp.Select | exp.Count) or (
        isinstance(parent, exp.Alias) and isinstance(parent.parent, exp.Select))


def _set_full_name(node: exp.Table, table: Table) -> None:
    """Write the catalog's full name (keeping what the query called it as the alias)."""
    parts = table.name.split(".")
    written = node.name
    node.set("this", exp.to_identifier(parts[-1]))
    node.set("db", exp.to_identifier(parts[-2]) if len(parts) > 1 else None)
    node.set("catalog", exp.to_identifier(".".join(parts[:-2])) if len(parts) > 2 else None)
    if not node.alias and written.lower() != parts[-1].lower():
        node.set("alias", exp.TableAlias(this=exp.to_identifier(written)))


def _source(scope: Scope, name: str) -> Any:
    while scope is not None:
        if name in scope.sources:
            return scope.sources[name]
        scope = scope.parent
    return None


def _lambda_variable(column: exp.Column) -> bool:
    node = column.parent
    while node is not None:
        if isinstance(node, exp.Lambda) and any(
                getattr(v, "name", None) == column.name for v in node.expressions):
            return True
        node = node.parent
    return False


def _projection_alias(column: exp.Column) -> bool:
    """An unqualified name that refers to an output column of its SELECT (ORDER BY total, GROUP BY total):
    it reads that projection, whose own columns are checked."""
    if column.table:
        return False
    select = column.find_ancestor(exp.Select)
    return select is not None and column.name.lower() in {p.alias_or_name.lower() for p in select.expressions}


def _aliases(tree: exp.Expression) -> set[str]:
    return {a.name.lower() for a in tree.find_all(exp.TableAlias) if a.name}


def _unresolved_name(message: str) -> str | None:
    match = re.search(r"Column '(.+?)' could not be resolved", message)
    return match.group(1).split(".")[-1].strip('"') if match else None


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
