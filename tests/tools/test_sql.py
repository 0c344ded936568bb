import json
import time

import pytest

from meshpilot.mesh.workspace import Workspace
from meshpilot.tools import sql
from meshpilot.tools.sql import DIALECTS, QueryTimeoutError, SqlRejectedError, SqlSchema, Table, validate_sql
from tests.conftest import shared

CRM = SqlSchema([Table(name="crm.customers", columns={"id": "id", "email": "email", "name": "name"},
                       ref="mesh://crm/customers/customers"),
                 Table(name="crm.orders", columns={"id": "id", "customer_id": "customer_id", "total": "total"})])


def test_a_misspelt_column_gets_position_explanation_and_suggestion() -> None:
    result = validate_sql("SELECT emial\nFROM crm.customers", CRM)
    assert not result.ok
    problem = result.problems[0]
    assert (problem.code, problem.line, problem.suggestion) == ("column", 1, "email")
    assert "no column 'emial' in crm.customers" in problem.message


def test_tables_and_columns_come_back_as_citations() -> None:
    result = validate_sql("SELECT c.email, count(o.id) FROM crm.customers c JOIN orders o ON o.customer_id = c.id "
                          "GROUP BY c.email", CRM)
    assert result.ok, result.problems
    assert result.tables == ["mesh://crm/customers/customers", "crm.orders"]
    assert "crm.orders.customer_id" in result.columns


@pytest.mark.parametrize(("query", "code"), [
    ("SELECT * FROM crm.custmers", "table"),
    ("SELECT x.id FROM crm.customers c", "alias"),
    ("SELECT id FROM crm.customers; SELECT 1", "statements"),
    ("DELETE FROM crm.customers", "read_only"),
    ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", "outside"),
    ("SELECT FROM WHERE", "syntax"),
    ("SELECT 1", "no_table"),
    ("", "syntax"),
])
def test_bad_sql_is_refused_with_the_reason(query: str, code: str) -> None:
    result = validate_sql(query, CRM)
    assert not result.ok and result.problems[0].code == code, result.problems


def test_sqlite_double_quoted_strings_are_literals_where_no_column_matches() -> None:
    query = 'SELECT name FROM crm.customers WHERE name = "Ann"'
    assert validate_sql(query, CRM, dialect="sqlite").ok
    assert not validate_sql(query, CRM, dialect="duckdb").ok  # in DuckDB "Ann" is an identifier


def test_correlated_subqueries_derived_tables_and_ctes_resolve() -> None:
    queries = [
        "SELECT name FROM crm.customers c WHERE EXISTS (SELECT 1 FROM crm.orders o WHERE o.customer_id = c.id)",
        "SELECT t.n FROM (SELECT count(*) AS n FROM crm.orders) t",
        "WITH big AS (SELECT customer_id, sum(total) AS s FROM crm.orders GROUP BY 1) SELECT s FROM big ORDER BY s",
        "SELECT name AS who FROM crm.customers ORDER BY who",
    ]
    for query in queries:
        assert validate_sql(query, CRM).ok, (query, validate_sql(query, CRM).problems)
    bad = validate_sql("SELECT t.missing FROM (SELECT count(*) AS n FROM crm.orders) t", CRM)
    assert bad.problems[0].code == "column" and bad.problems[0].suggestion is None


def test_an_ambiguous_short_table_name_must_be_qualified() -> None:
    schema = SqlSchema([Table(name="a.events", columns={"id": "id"}), Table(name="b.events", columns={"id": "id"})])
    problem = validate_sql("SELECT id FROM events", schema).problems[0]
    assert "several schemas" in problem.message and problem.suggestion == "a.events or b.events"


class DenyPII:
    def check_table(self, table: Table) -> str | None:
        return None

    def check_column(self, table: Table, column: str) -> str | None:
        return f"{table.name}.{column} holds personal data" if column == "email" else None


def test_the_callers_policy_is_applied() -> None:
    result = validate_sql("SELECT name, email FROM crm.customers", CRM, caller=DenyPII())
    assert [p.code for p in result.problems] == ["policy"]
    assert validate_sql("SELECT name FROM crm.customers", CRM, caller=DenyPII()).ok


def test_every_spider_gold_query_is_accepted() -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "sql_validation.py"
    spec = importlib.util.spec_from_file_location("sql_validation", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    spider = shared("spider_dev")
    schemas = bench.schemas_from_spider(spider / "tables.json")
    rejected = [q["query"] for q in json.loads((spider / "dev.json").read_text())
                if not validate_sql(q["query"], schemas[q["db_id"]], dialect="sqlite").ok]
    assert rejected == []


# --- running on the demo warehouse ----------------------------------------------------------------------


def test_run_returns_rows_citations_and_the_exact_sql(demo_workspace: Workspace) -> None:
    result = sql.run_sql("SELECT status, count(*) AS n FROM commerce.orders GROUP BY status ORDER BY n DESC",
                         workspace=demo_workspace)
    assert result.columns == ["status", "n"] and result.rows[0] == ["completed", 4863]
    assert not result.truncated and result.row_count == 4
    assert result.sql.endswith("LIMIT 1001")
    assert result.citations[0] == "mesh://commerce/orders/orders"


def test_the_row_limit_is_added_through_the_syntax_tree(demo_workspace: Workspace) -> None:
    result = sql.run_sql("SELECT order_id FROM commerce.orders -- LIMIT 100000", limit=5, workspace=demo_workspace)
    assert result.row_count == 5 and result.truncated and "LIMIT 6" in result.sql
    union = sql.run_sql("SELECT order_id FROM commerce.orders UNION ALL SELECT return_id FROM commerce.returns",
                        limit=3, workspace=demo_workspace)
    assert union.row_count == 3 and union.truncated
    small = sql.run_sql("SELECT order_id FROM commerce.orders LIMIT 2", limit=5, workspace=demo_workspace)
    assert small.row_count == 2 and not small.truncated


def test_a_runaway_query_is_interrupted(demo_workspace: Workspace) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError):
        sql.run_sql("SELECT count(*) FROM commerce.orders a, commerce.orders b, commerce.orders c",
                    timeout_s=0.5, workspace=demo_workspace)
    assert time.monotonic() - started < 5


def test_refused_sql_never_reaches_the_engine(demo_workspace: Workspace) -> None:
    class Recording:
        name = dialect = "duckdb"
        calls: list[str] = []

        def execute(self, query: str, timeout_s: float):
            self.calls.append(query)
            return [], []

    engine = Recording()
    with pytest.raises(SqlRejectedError) as info:
        sql.run_sql("SELECT * FROM commerce.orders; DROP TABLE commerce.orders", workspace=demo_workspace, engine=engine)
    assert engine.calls == [] and "exactly one statement" in str(info.value.problems[0])


def test_the_warehouse_connection_is_read_only_even_for_valid_looking_sql(demo_workspace: Workspace) -> None:
    engine = sql.DuckDBEngine(demo_workspace.warehouse_path)
    with pytest.raises(SqlRejectedError, match="read-only|external access|Permission"):
        engine.execute("CREATE TABLE x AS SELECT 1", timeout_s=5)
    with pytest.raises(SqlRejectedError):
        engine.execute("SELECT * FROM read_csv('/etc/passwd')", timeout_s=5)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_transpile_to_every_dialect(dialect: str) -> None:
    out = sql.transpile_sql("SELECT date_trunc('month', order_date) AS m, count(*) FROM commerce.orders GROUP BY 1",
                            to=dialect)
    assert "commerce.orders" in out or "commerce`.`orders" in out


def test_unknown_dialects_are_refused() -> None:
    from meshpilot.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="Unknown SQL dialect"):
        sql.transpile_sql("SELECT 1", to="oracle9")
    with pytest.raises(InvalidArgumentError):
        validate_sql("SELECT 1", CRM, dialect="mssql")


# --- PostgreSQL, a real server on loopback ----------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_with_demo(pristine_demo):
    import duckdb
    import psycopg

    from tests.tools.postgres_server import server_or_skip

    server = server_or_skip()
    url = server.start()
    try:
        with duckdb.connect(str(pristine_demo / "warehouse.duckdb"), read_only=True) as source, \
                psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as target:
            for table in ("commerce.orders", "commerce.returns"):
                schema = table.split(".")[0]
                target.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                columns = source.execute(f"DESCRIBE {table}").fetchall()
                target.execute(f"CREATE TABLE {table} ({', '.join(f'{c[0]} {c[1]}' for c in columns)})")
                with target.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    for row in source.execute(f"SELECT * FROM {table}").fetchall():
                        copy.write_row(row)
        yield url
    finally:
        server.stop()


def test_postgres_runs_the_same_query_transpiled(demo_workspace: Workspace, postgres_with_demo: str) -> None:
    query = ("SELECT date_trunc('month', o.order_date) AS month, count(*) AS returned FROM commerce.returns r "
             "JOIN commerce.orders o ON o.order_id = r.order_id GROUP BY 1 ORDER BY 1 DESC")
    on_duckdb = sql.run_sql(query, workspace=demo_workspace)
    on_postgres = sql.run_sql(query, workspace=demo_workspace, engine=sql.PostgresEngine(postgres_with_demo))
    assert on_postgres.engine == "postgres" and on_postgres.row_count == on_duckdb.row_count
    assert [r[1] for r in on_postgres.rows] == [r[1] for r in on_duckdb.rows]


def test_postgres_sessions_are_read_only_and_time_limited(postgres_with_demo: str) -> None:
    engine = sql.PostgresEngine(postgres_with_demo)
    with pytest.raises(SqlRejectedError, match="read-only"):
        engine.execute("CREATE TABLE commerce.stolen AS SELECT 1", timeout_s=5)
    with pytest.raises(QueryTimeoutError):
        engine.execute("SELECT pg_sleep(5)", timeout_s=0.5)


def test_an_unreachable_postgres_is_a_clear_error() -> None:
    from tests.tools.postgres_server import _free_port

    with pytest.raises(SqlRejectedError, match="Cannot reach PostgreSQL"):
        sql.PostgresEngine(f"postgresql://nobody@127.0.0.1:{_free_port()}/db").execute("SELECT 1", 2)


@pytest.mark.parametrize(("query", "ok"), [
    ('SELECT name FROM customers WHERE name = "Ada"', True),  # double quotes: a literal when no column is named so
    ("SELECT `nmae` FROM customers", False),  # backticks and brackets are always identifiers
    ("SELECT [nmae] FROM customers", False),
    ("SELECT `name` FROM customers", True),
])
def test_sqlite_quoting(query: str, ok: bool) -> None:
    schema = SqlSchema([Table(name="customers", columns={"id": "id", "name": "name"})])
    assert validate_sql(query, schema, dialect="sqlite").ok is ok


@pytest.mark.parametrize(("query", "code", "words"), [
    ("SELECT id FROM crm.customers, crm.orders", "column", "several tables"),
    ("SELECT COLUMNS('e.*') FROM crm.customers", "unsupported", "COLUMNS"),
    ("SELECT #2 FROM crm.customers", "unsupported", "position"),
    ("SELECT c FROM crm.customers c", "unsupported", "whole row"),
    ("SELECT to_json(*) FROM crm.customers", "unsupported", "inside an expression"),
    ("SELECT id FROM crm.customers WHERE " + " OR ".join(f"id = {i}" for i in range(3000)), "too_large", "tokens"),
    ("SELECT id FROM crm.customers WHERE id = " + "(" * 40 + "1" + ")" * 40, "too_large", "nests"),
    ("SELECT * FROM information_schema.tables", "outside", "engine's own catalog"),
])
def test_what_cannot_be_resolved_is_refused_with_the_reason(query: str, code: str, words: str) -> None:
    result = validate_sql(query, CRM)
    assert not result.ok and result.problems[0].code == code and words in result.problems[0].message, result.problems
    assert "sqlglot" not in str(result.problems[0]).lower()


def test_every_column_in_every_scope_is_checked_against_the_policy() -> None:
    class NoEmail:
        def check_table(self, table):
            return None

        def check_column(self, table, column):
            return "no e-mail" if column == "email" else None

    for query in ("SELECT count(*) FROM crm.customers HAVING max(email) LIKE 'a%'",
                  "SELECT id FROM crm.customers QUALIFY row_number() OVER (ORDER BY email) = 1",
                  "SELECT id FROM crm.customers ORDER BY email",
                  "WITH c AS (SELECT * FROM crm.customers) SELECT id FROM c",
                  "SELECT id FROM (SELECT * FROM crm.customers) s",
                  "SELECT o.id FROM crm.orders o WHERE EXISTS (SELECT 1 FROM crm.customers c WHERE c.email = o.id)"):
        result = validate_sql(query, CRM, caller=NoEmail())
        assert [p.code for p in result.problems] == ["policy"] * len(result.problems) and result.problems, query


def test_short_table_names_run_as_the_catalogs_full_name(demo_workspace: Workspace) -> None:
    result = sql.run_sql("SELECT count(*) FROM orders", workspace=demo_workspace)
    assert "commerce.orders" in result.sql and result.rows[0][0] > 0
