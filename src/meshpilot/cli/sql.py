"""SQL commands: validate, run, ask, transpile."""

from __future__ import annotations

from typing import Annotated, Any
import sys

from rich.table import Table
import typer

from meshpilot.mesh.workspace import Workspace
from meshpilot.cli.common import (JsonOption, RoleOption, TeamOption, WorkspaceOption, err, guard_for, out, print_json,
                                  record_pii, sql_app)

# --- sql ---------------------------------------------------------------------------------------------

def _result_table(result: Any, caption: str | None = None) -> Table:
    table = Table(caption=caption)
    for column in result.columns:
        table.add_column(column, overflow="fold")
    for row in result.rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


DialectOption = Annotated[str, typer.Option("--dialect", help="duckdb, postgres, trino, snowflake, bigquery, spark or sqlite.")]


@sql_app.command("validate")
def sql_validate(
    sql: Annotated[str, typer.Argument(help="One SQL query.")],
    workspace: WorkspaceOption = None,
    dialect: DialectOption = "duckdb",
    role: RoleOption = None,
    team: TeamOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check a query: syntax, one read-only statement, no files or URLs, every table and column known."""
    from meshpilot.tools.sql import validate

    ws = Workspace.open(workspace)
    result = validate(sql, dialect=dialect, caller=guard_for(ws, role, team, "validate_sql"), workspace=ws)
    if json_output:
        print_json(result.model_dump())
    elif result.ok:
        out.print("[green]valid[/green]: reads " + ", ".join(result.tables), highlight=False)
    else:
        for problem in result.problems:
            err.print(f"[red]{problem.code}[/red]: {problem}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


@sql_app.command("run")
def sql_run(
    sql: Annotated[str, typer.Argument(help="One SQL query (validated first; only catalog tables, read-only).")],
    workspace: WorkspaceOption = None,
    dialect: DialectOption = "duckdb",
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 100,
    timeout: Annotated[float, typer.Option(help="Stop the query after this many seconds.")] = 10.0,
    engine_url: Annotated[str | None, typer.Option("--engine-url", envvar="MESHPILOT_ENGINE_URL", show_envvar=True,
                                                   help="Run on PostgreSQL (postgresql://...) instead of the warehouse.")] = None,
    role: RoleOption = None,
    team: TeamOption = None,
    approve: Annotated[bool, typer.Option("--approve", help="Approve reading personal data in the clear, where the "
                                                            "policy reserves it for approval (audited).")] = False,
    json_output: JsonOption = False,
    csv_output: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """Run a query on the warehouse, read-only, with a row limit and a timeout, over what your role may read."""
    from meshpilot.tools.sql import engine_for, run_sql

    ws = Workspace.open(workspace)
    guard = guard_for(ws, role, team, "run_sql", approved=approve)
    result = run_sql(sql, dialect=dialect, limit=limit, timeout_s=timeout, workspace=ws, engine=engine_for(engine_url, ws),
                     caller=guard)
    record_pii(result.pii_columns)
    from meshpilot.guardrails.output import guard_data

    result.rows = guard_data(result.rows, guard)[0]
    if result.masked and not json_output and not csv_output:
        err.print("masked: " + ", ".join(c.rsplit("#", 1)[-1] for c in result.masked)
                  + (" (pass --approve to read them in the clear; approvals are audited)"
                     if guard is not None and guard.policy.pii_needs_approval() and not approve
                     and guard.may_read_pii else ""), highlight=False, markup=False)
    if json_output:
        print_json(result.model_dump())
        return
    if csv_output:
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
        return
    out.print(_result_table(result, caption=f"{result.row_count} row(s){' (truncated)' if result.truncated else ''} "
                                            f"in {result.elapsed_ms:.0f} ms"))
    out.print(f"ran: {result.sql}", highlight=False, markup=False, soft_wrap=True)
    out.print("sources: " + ", ".join(c for c in result.citations if "#" not in c), highlight=False)


@sql_app.command("ask")
def sql_ask(
    question: Annotated[str, typer.Argument(help='A question about the data, e.g. "how many orders were returned last month".')],
    workspace: WorkspaceOption = None,
    model: Annotated[str | None, typer.Option(envvar="MESHPILOT_MODEL", show_envvar=True,
                                              help="A LiteLLM model, e.g. openai/gpt-4o-mini; none: the offline writer.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 100,
    timeout: Annotated[float, typer.Option(help="Stop the query after this many seconds.")] = 10.0,
    engine_url: Annotated[str | None, typer.Option("--engine-url", envvar="MESHPILOT_ENGINE_URL",
                                                   help="Run on PostgreSQL instead of the warehouse.")] = None,
    role: RoleOption = None,
    team: TeamOption = None,
    json_output: JsonOption = False,
) -> None:
    """Answer a question with SQL: link the schema, write the query, validate (and repair) it, run it."""
    from meshpilot.agents.llm import configured_model
    from meshpilot.agents.sql_loop import SqlLoop
    from meshpilot.tools.catalog import Catalog
    from meshpilot.tools.sql import engine_for

    ws = Workspace.open(workspace)
    engine = engine_for(engine_url, ws)
    loop = SqlLoop(Catalog.open(ws), engine, model=configured_model(ws, model), dialect="duckdb", limit=limit, timeout_s=timeout,
                   caller=guard_for(ws, role, team, "ask_sql"))
    answer = loop.ask(question)
    if json_output:
        print_json(answer.model_dump())
    else:
        out.print(f"[bold]{answer.answer}[/bold]", highlight=False)
        if answer.sql:
            out.print(f"SQL ({answer.mode}, {answer.attempts} attempt(s)): {answer.sql}", highlight=False, markup=False)
        if answer.result is not None and not (answer.result.row_count == 1 and len(answer.result.columns) == 1):
            out.print(_result_table(answer.result))
        for problem in answer.problems:
            err.print(f"refused: {problem}", highlight=False, markup=False)
        out.print("sources: " + ", ".join(c for c in answer.citations if "#" not in c), highlight=False)
    if answer.result is None:
        raise typer.Exit(1)


@sql_app.command("transpile")
def sql_transpile(
    sql: Annotated[str, typer.Argument(help="SQL to translate.")],
    to: Annotated[str, typer.Option("--to", help="Target dialect.")],
    dialect: DialectOption = "duckdb",
) -> None:
    """Translate SQL between dialects (sqlglot)."""
    from meshpilot.tools.sql import transpile_sql

    out.print(transpile_sql(sql, to=to, read=dialect), highlight=False, markup=False, soft_wrap=True)


@sql_app.command("grant")
def sql_grant(
    engine_url: Annotated[str, typer.Option("--engine-url", envvar="MESHPILOT_ENGINE_URL", show_envvar=True,
                                            help="An administrator's PostgreSQL URL (owns the tables, may create roles).")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Give each role of policy.yaml its own PostgreSQL login over views of what it may read (run once, and
    again after the policy or the catalog changes)."""
    from meshpilot.guardrails.pii import workspace_salt
    from meshpilot.guardrails.policy import Policy
    from meshpilot.errors import InvalidWorkspaceError
    from meshpilot.tools.sql import workspace_schema
    from meshpilot.tools.sql_engines import provision_postgres

    ws = Workspace.open(workspace)
    policy = Policy.load(ws)
    if policy is None:
        raise InvalidWorkspaceError("This workspace has no access policy: there are no roles to give logins to.",
                                    hint="Write policy.yaml first (see docs/security.md).")
    schema = workspace_schema(ws)
    sets = {label: schema.relation_set(guard) for label, guard in policy.every_sql_guard()}
    report = provision_postgres(engine_url, sets, ws.state_dir, workspace_salt(ws.root))
    if json_output:
        print_json(report)
        return
    for row in report:
        out.print(f"{row['role']}: login {row['login']}, {row['views']} view(s){' (PII masked)' if row['masked'] else ''}",
                  highlight=False, markup=False)
