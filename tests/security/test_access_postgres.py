"""The same attacks on a real PostgreSQL server: the roles `meshpilot sql grant` provisions are what the
server enforces (login roles over views, masked columns computed with a salt they cannot read)."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from meshpilot.agents.tools import ToolContext, ToolRunner
from meshpilot.errors import MeshpilotError
from meshpilot.evals import access
from meshpilot.guardrails.policy import Caller, Policy
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools import sql
from tests.tools.postgres_server import load_warehouse, server_or_skip

ATTACKS = access.attacks()


@pytest.fixture(scope="module")
def postgres(pristine_demo: Path, tmp_path_factory):
    root = tmp_path_factory.mktemp("pg-access") / "demo"
    shutil.copytree(pristine_demo, root, ignore=shutil.ignore_patterns(".meshpilot"))
    workspace = Workspace(root)
    server = server_or_skip()
    url = server.start()
    try:
        load_warehouse(url, workspace.warehouse_path)
        yield workspace, url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def granted(postgres, cli_module):
    workspace, url = postgres
    result = cli_module("sql", "grant", "--engine-url", url, "--workspace", workspace.root, "--json")
    assert result.code == 0, result.stderr
    return workspace, url


@pytest.fixture(scope="module")
def cli_module():
    import subprocess

    from tests.conftest import CliResult
    from tests.server.test_mcp import meshpilot_command

    def run(*args: str) -> CliResult:
        done = subprocess.run([meshpilot_command(), *map(str, args)], capture_output=True, text=True, timeout=300)
        return CliResult(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture(scope="module")
def values(pristine_demo: Path) -> dict[str, set[str]]:
    warehouse = pristine_demo / "warehouse.duckdb"
    return {"pii": access.sensitive_values(warehouse), "foreign": access.foreign_values(warehouse, {"commerce"})}


def _run(workspace: Workspace, url: str, role: str, query: str, approved: bool = False):
    guard = Policy.load(workspace).sql_guard(Caller(role), approved=approved)
    engine = sql.engine_for(url, workspace)
    try:
        return sql.run_sql(query, workspace=workspace, engine=engine, caller=guard, limit=50).model_dump()
    except MeshpilotError as exc:
        return str(exc)


@pytest.mark.parametrize("role", ["analyst", "pseudonymous-analyst", "governance"])
def test_postgres_never_returns_pii(granted, values, role: str) -> None:
    workspace, url = granted
    for _, query in access.pii_payloads():
        result = _run(workspace, url, role, query)
        assert access.leaks(result, values["pii"]) == [], query


def test_postgres_domain_restriction(granted, values) -> None:
    workspace, url = granted
    for query in ATTACKS["cross_domain"]:
        result = _run(workspace, url, "commerce-analyst", query)
        assert isinstance(result, str) and access.leaks(result, values["foreign"]) == [], query
    assert isinstance(_run(workspace, url, "commerce-analyst", "SELECT count(*) FROM commerce.orders"), dict)


@pytest.mark.parametrize("pair", ATTACKS["oracle"], ids=lambda p: p[0][-40:])
def test_postgres_predicates_on_masked_pii_tell_nothing(granted, pair: list[str]) -> None:
    workspace, url = granted
    true, false = (_run(workspace, url, "pseudonymous-analyst", q) for q in pair)
    assert type(true) is type(false)
    if isinstance(true, dict):
        assert true["rows"] == false["rows"]


def test_postgres_tokens_match_duckdb_and_approval_unlocks(granted) -> None:
    workspace, url = granted
    query = "SELECT customer_id, email FROM customer.customer_profile ORDER BY customer_id LIMIT 3"
    on_postgres = _run(workspace, url, "governance", query)
    on_duckdb = sql.run_sql(query, workspace=workspace, caller=Policy.load(workspace).sql_guard(Caller("governance")))
    assert on_postgres["rows"] == on_duckdb.rows and on_postgres["rows"][0][1].startswith("EMAIL_ADDRESS#")
    approved = _run(workspace, url, "governance", query, approved=True)
    assert "@" in approved["rows"][0][1]


def test_the_provisioned_login_cannot_read_raw_tables_or_the_salt(granted) -> None:
    """Connected as the role's own login, with no validator in between, the server refuses."""
    workspace, url = granted
    relations = sql.workspace_schema(workspace).relation_set(Policy.load(workspace).sql_guard(Caller("analyst")))
    role = sql.PostgresEngine(url, state_dir=workspace.state_dir).role_for(relations)
    plain = url.replace("+psycopg", "").replace("meshpilot@", f"{role['login']}:{role['password']}@")
    with psycopg.connect(plain, autocommit=True) as con:
        for query in ("SELECT email FROM customer.customer_profile", "SELECT * FROM meshpilot_private.salt",
                      f'SELECT email FROM "{role["schema_prefix"]}customer".customer_profile'):
            with pytest.raises(psycopg.Error):
                con.execute(query)
        assert con.execute(f'SELECT count(*) FROM "{role["schema_prefix"]}commerce".orders').fetchone()[0] > 0


def test_postgres_without_grant_is_a_clear_error(postgres) -> None:
    workspace, url = postgres
    other = Path(str(workspace.root) + "-nogrant")
    shutil.copytree(workspace.root, other, ignore=shutil.ignore_patterns(".meshpilot"))
    result = _run(Workspace(other), url, "analyst", "SELECT count(*) FROM commerce.orders")
    assert isinstance(result, str) and "meshpilot sql grant" in result


def test_runner_uses_the_engine_with_approval(granted) -> None:
    workspace, _ = granted
    runner = ToolRunner(ToolContext(workspace).for_caller(Caller("governance")))
    outcome = runner.call("run_sql", {"sql": "SELECT email FROM customer.customer_profile LIMIT 1"}, channel="python")
    assert outcome.result["rows"][0][0].startswith("EMAIL_ADDRESS#")
