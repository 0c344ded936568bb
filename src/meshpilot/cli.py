"""The `meshpilot` command line.

Every command takes `--workspace DIR` (default: $MESHPILOT_WORKSPACE, else ./meshpilot-workspace),
prints Rich tables for people and `--json` for machines, and turns a `MeshpilotError` into one clear
message on stderr with exit code 1 (usage errors: 2).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.exceptions import TyperException
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from meshpilot.errors import MeshpilotError
from meshpilot.mesh.workspace import ENV_VAR, MANIFEST, Workspace, resolve_path

app = typer.Typer(
    name="meshpilot",
    help="Meshpilot: a grounded copilot for data-mesh data products.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
products_app = typer.Typer(help="Browse data products.", no_args_is_help=True)
datasets_app = typer.Typer(help="Browse datasets (the tables behind output ports).", no_args_is_help=True)
import_app = typer.Typer(help="Import metadata from OpenMetadata, dbt or OpenLineage.", no_args_is_help=True)
app.add_typer(products_app, name="products")
app.add_typer(datasets_app, name="datasets")
app.add_typer(import_app, name="import")
contracts_app = typer.Typer(help="Data contracts (ODCS v3): lint, and diff joined with lineage.", no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
serve_app = typer.Typer(help="Run Meshpilot's servers.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")
lineage_app = typer.Typer(help="Lineage: what a change breaks downstream, where data comes from.", no_args_is_help=True)
app.add_typer(lineage_app, name="lineage")
sql_app = typer.Typer(help="Validate, transpile and run SQL against the catalog, read-only.", no_args_is_help=True)
app.add_typer(sql_app, name="sql")

out = Console()
err = Console(stderr=True)

WorkspaceOption = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", envvar=ENV_VAR, show_envvar=True,
                 help="Workspace folder (default: ./meshpilot-workspace)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
RoleOption = Annotated[str | None, typer.Option("--role", envvar="MESHPILOT_ROLE", show_envvar=True,
                                                help="Act as this role of the workspace's policy.yaml.")]
TeamOption = Annotated[str | None, typer.Option("--team", envvar="MESHPILOT_TEAM", show_envvar=True,
                                                help="Your team (for roles limited to their own domains).")]


# The tool call the running command makes; main() writes it to the audit log when the command ends.
_call: dict[str, Any] = {}


def _guard(ws: Workspace, role: str | None, team: str | None, tool: str) -> Any:
    """The SQL access guard for a caller, or None when the workspace has no policy or no role is given.
    Starts the audit record of this tool call."""
    import time

    from typer._click.globals import get_current_context  # typer 0.2x vendors click

    from meshpilot.guardrails.audit import AuditRecord
    from meshpilot.guardrails.policy import Caller, Policy

    arguments = {k: v for k, v in get_current_context().params.items()
                 if k not in ("workspace", "json_output", "role", "team") and v not in (None, [], ())}
    policy = Policy.load(ws)
    role = role or (policy.default_role if policy else None)
    record = AuditRecord(tool, {"role": role, "team": team}, arguments)
    _call.update(root=ws.root, record=record, t0=time.perf_counter())
    if policy is None:
        return None
    if role is None:
        record.verdict, record.reason = "refused", "no role given"
        raise MeshpilotError("This workspace has an access policy: say which role you act as.",
                             hint=f"Pass --role (or MESHPILOT_ROLE): {', '.join(sorted(policy.roles))}.")
    caller = Caller(role=role, team=team)
    if not policy.may_call(caller, tool):
        record.verdict, record.reason = "refused", f"role '{role}' may not use {tool}"
        raise MeshpilotError(f"Role '{role}' may not use {tool}.", hint="Ask governance to extend the role.")
    return policy.sql_guard(caller)


def _finish_call(error: BaseException | None) -> None:
    """Append the audit record of the command's tool call, with its outcome and duration."""
    import time

    from meshpilot.guardrails.audit import append

    if not _call:
        return
    record = _call["record"]
    record.duration_ms = round((time.perf_counter() - _call["t0"]) * 1000, 2)
    if error is not None:
        record.outcome = "refused" if record.verdict == "refused" else "error"
        record.error = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        refusals = [str(p) for p in getattr(error, "problems", []) if "may not" in str(p)]
        if record.verdict == "allowed" and refusals:
            record.verdict, record.reason, record.outcome = "refused", "; ".join(refusals), "refused"
    try:
        append(_call["root"], record)
    except OSError as exc:  # an unwritable log must not hide the command's own result
        err.print(f"[yellow]warning:[/yellow] could not write the audit log: {exc}", highlight=False)
    _call.clear()


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str), highlight=False)


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)


# --- workspace ---------------------------------------------------------------------------------------


@app.command()
def demo(
    workspace: WorkspaceOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing demo workspace.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Build the demo mesh (3 domains, 5 products, data, contracts, lineage, checks, incidents) and list it."""
    from meshpilot.mesh.demo import build_demo

    root = resolve_path(workspace)
    if (root / MANIFEST).exists():
        if not force:
            raise MeshpilotError(f"{root} already holds a workspace.",
                                 hint="Use it as it is, pass --force to rebuild the demo there, or choose another --workspace.")
        if Workspace.open(root).load_manifest().name != "meshpilot-demo":
            raise MeshpilotError(f"{root} holds a workspace that is not the demo; --force only replaces the demo.",
                                 hint="Choose another --workspace folder for the demo.")
        shutil.rmtree(root)
    steps = ["warehouse", "lineage", "quality", "index"]
    with _progress() as progress:
        task = progress.add_task("Building the demo mesh", total=len(steps))
        ws = build_demo(root, lambda step: progress.update(task, completed=steps.index(step),
                                                           description=f"Building the demo mesh: {step}"))
    if not json_output:
        err.print(f"[green]Demo mesh built in {ws.root}[/green]")
    _list_products(ws, None, json_output)


@app.command()
def init(
    workspace: WorkspaceOption = None,
    name: Annotated[str | None, typer.Option(help="Workspace name (default: the folder's name).")] = None,
) -> None:
    """Create an empty workspace, to fill with `meshpilot import`."""
    root = resolve_path(workspace)
    Workspace.create(root, name=name or root.resolve().name)
    err.print(f"[green]Empty workspace created in {root}[/green]. Fill it with `meshpilot import ...`.")


@app.command()
def validate(workspace: WorkspaceOption = None, json_output: JsonOption = False) -> None:
    """Check every file of the workspace and report each problem with its file and line."""
    from meshpilot.mesh.store import MeshStore

    ws = Workspace.open(workspace)
    with MeshStore.open(ws) as store:
        counts = store.counts()
    if json_output:
        _print_json({"workspace": str(ws.root), "valid": True, "counts": counts})
    else:
        summary = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items())
        out.print(f"[green]The workspace {ws.root} is valid:[/green] {summary}.")


# --- products and datasets ---------------------------------------------------------------------------


def _list_products(ws: Workspace, domain: str | None, json_output: bool) -> None:
    from meshpilot.mesh.store import MeshStore

    with MeshStore.open(ws) as store:
        rows = store.list_products(domain)
    if json_output:
        _print_json(rows)
        return
    table = Table(title=f"Data products in {ws.root}" + (f" (domain {domain})" if domain else ""))
    for column in ("domain", "product", "name", "owner", "status", "version", "datasets"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r["domain"], r["id"], r["name"], r["owner"] or "-", r["status"], r["version"], str(r["datasets"]))
    out.print(table)
    if not rows:
        err.print("No products yet: `meshpilot import ...` adds some.")


@products_app.command("list")
def products_list(
    workspace: WorkspaceOption = None,
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
    json_output: JsonOption = False,
) -> None:
    """List the data products."""
    _list_products(Workspace.open(workspace), domain, json_output)


@products_app.command("show")
def products_show(
    product: Annotated[str, typer.Argument(help="Product id, <domain>/<product> or mesh://<domain>/<product>.")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a product: owners, datasets and columns, SLOs, contract, checks, incidents, neighbours."""
    from meshpilot.mesh.store import MeshStore

    with MeshStore.open(Workspace.open(workspace)) as store:
        details = store.product_details(product)
    if json_output:
        _print_json(details)
        return
    _render_product(details)


def _render_product(details: dict[str, Any]) -> None:
    p = details["product"]
    team = details["owner_team"]
    owner = f"{team['name']} ({team['slack_channel'] or 'no channel'}, on call: {team['oncall'] or '-'})" if team else p.get("owner", "-")
    header = "\n".join([
        f"[bold]{p['name']}[/bold]  {details['ref']}",
        f"domain {p['domain']} · status {p.get('status', 'active')} · version {p.get('version', '')} · owner {owner}",
        f"tags: {', '.join(p.get('tags', [])) or '-'}" + (f" · contract: {p['contract']}" if p.get("contract") else ""),
        "",
        p.get("description") or "(no description)",
    ])
    out.print(Panel(header, expand=False))
    for port in p.get("output_ports", []):
        d = port["dataset"]
        table = Table(title=f"{port['kind'] if 'kind' in port else 'table'} {port['name']}: {d['qualified_name']}"
                      f" · {d.get('row_count', '?')} rows · updated {d.get('last_updated', '?')}")
        for column in ("column", "type", "null", "key", "classification", "description"):
            table.add_column(column, overflow="fold")
        for c in d.get("columns", []):
            key = "PK" if c.get("primary_key") else ("FK " + c["references"] if c.get("references") else "")
            table.add_row(c["name"], c.get("type", ""), "yes" if c.get("nullable", True) else "no", key,
                          c.get("classification") or "", c.get("description") or "")
        out.print(table)
    if p.get("slos"):
        out.print("[bold]SLOs[/bold]: " + "; ".join(
            f"{s['kind']} {s['target']}" + (f" on {s['dataset']}" if s.get("dataset") else "")
            + (f".{s['column']}" if s.get("column") else "") for s in p["slos"]))
    if details["latest_checks"]:
        table = Table(title="Quality checks (latest result)")
        for column in ("check", "kind", "column", "severity", "status", "observed", "run at"):
            table.add_column(column)
        for c in details["latest_checks"]:
            status = c["status"] or "never run"
            style = {"pass": "green", "fail": "red", "error": "red", "warn": "yellow"}.get(status, "")
            table.add_row(c["check_id"], c["kind"], c["column_name"] or "", c["severity"],
                          f"[{style}]{status}[/{style}]" if style else status, c["message"] or "", str(c["run_at"] or ""))
        out.print(table)
    for label in ("incidents",):
        for i in details[label]:
            out.print(f"[bold]Incident[/bold] {i['id']} [{i['severity']}] {i['status']}: {i['title']} (opened {i['opened_at']})")
    for label in ("upstream", "downstream"):
        names = [n["dataset_ref"] or f"{n['namespace']}/{n['name']}" for n in details[label]]
        out.print(f"[bold]{label.capitalize()}[/bold]: {', '.join(sorted(set(names))) or 'none known'}")
    if p.get("consumers"):
        out.print("[bold]Consumers[/bold]: " + ", ".join(
            c["name"] + (f" ({c['purpose']})" if c.get("purpose") else "") for c in p["consumers"]))


@datasets_app.command("list")
def datasets_list(
    workspace: WorkspaceOption = None,
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
    product: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    json_output: JsonOption = False,
) -> None:
    """List the datasets with their row counts, column counts and classified (PII) columns."""
    from meshpilot.mesh.store import MeshStore

    with MeshStore.open(Workspace.open(workspace)) as store:
        rows = store.list_datasets(domain, product)
    if json_output:
        _print_json(rows)
        return
    table = Table(title="Datasets")
    for column in ("reference", "qualified name", "kind", "rows", "columns", "classified", "updated"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r["ref"], r["qualified_name"], r["port_kind"], "" if r["row_count"] is None else str(r["row_count"]),
                      str(r["columns"]), str(r["classified_columns"]), str(r["last_updated"] or ""))
    out.print(table)


# --- search ------------------------------------------------------------------------------------------


@app.command()
def search(
    query: Annotated[str, typer.Argument(help='What you are looking for, e.g. "where do we keep customer emails".')],
    workspace: WorkspaceOption = None,
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only products owned by this team id.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only entities with this tag (repeatable: any of).")] = None,
    classification: Annotated[str | None, typer.Option(help="Only columns (and their tables) of this class, e.g. EMAIL_ADDRESS.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only products, datasets or columns.")] = None,
    k: Annotated[int, typer.Option("-k", "--limit", help="How many hits.")] = 10,
    role: RoleOption = None,
    team: TeamOption = None,
    json_output: JsonOption = False,
) -> None:
    """Search the catalog: ranked products, datasets and columns, each with its mesh:// citation."""
    from meshpilot.tools.catalog import Catalog

    ws = Workspace.open(workspace)
    guard = _guard(ws, role, team, "search_catalog")
    catalog = Catalog.open(ws)
    result = catalog.search(query, domain=domain, owner=owner, tags=tag, classification=classification, kind=kind, k=k,
                            visible_domains=guard.domains if guard else None,
                            visible_products=guard.products if guard else None)
    if json_output:
        _print_json(result.model_dump())
        return
    if "rebuilt" in result.index:
        err.print(f"[yellow]note:[/yellow] {result.index['rebuilt']}.", highlight=False)
    if not result.hits:
        err.print(f"No matches for '{query}'" + (f" with {result.filters}" if result.filters else "") + ".")
        return
    table = Table(title=f"Search: {query}")
    for column in ("#", "score", "kind", "reference", "matched", "snippet"):
        table.add_column(column, overflow="fold")
    for i, hit in enumerate(result.hits, start=1):
        matched = "; ".join(f"{f}: {', '.join(w)}" for f, w in hit.matched.items())
        table.add_row(str(i), f"{hit.score:.2f}", hit.kind, hit.ref, matched, hit.snippet)
    out.print(table)


@app.command("link-schema")
def link_schema_command(
    question: Annotated[str, typer.Argument(help="A question about the data.")],
    workspace: WorkspaceOption = None,
    k: Annotated[int, typer.Option("-k", "--limit", help="How many matched tables.")] = 5,
    json_output: JsonOption = False,
) -> None:
    """The tables, key columns and joins a question needs (what SQL generation starts from)."""
    from meshpilot.tools.catalog import Catalog

    link = Catalog.open(Workspace.open(workspace)).link_schema(question, k)
    if json_output:
        _print_json(link.model_dump())
        return
    for linked in link.tables:
        out.print(f"[bold]{linked.qualified_name}[/bold]  {linked.ref}  ({linked.role}, score {linked.score:.2f})",
                  highlight=False)
        for column in linked.columns:
            out.print(f"    {column.name} {column.type}: {column.reason}", highlight=False)
    for join in link.joins:
        out.print(f"join {join.left} = {join.right}", highlight=False)


@datasets_app.command("show")
def datasets_show(
    urn: Annotated[str, typer.Argument(help="mesh://<domain>/<product>/<dataset>")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a dataset: columns, owners, SLOs, freshness, latest checks, upstream and downstream."""
    from meshpilot.tools.catalog import get_dataset

    details = get_dataset(urn, Workspace.open(workspace))
    if json_output:
        _print_json(details)
        return
    d = details["dataset"]
    team = details["owner_team"]
    out.print(Panel("\n".join([
        f"[bold]{d['qualified_name']}[/bold]  {details['ref']}",
        f"product {details['product_ref']} · owner {team['name'] if team else '-'} · "
        f"{details['freshness']['row_count'] or '?'} rows · updated {details['freshness']['last_updated'] or '?'}",
        "", d.get("description") or "(no description)"]), expand=False))
    table = Table()
    for column in ("column", "type", "classification", "description"):
        table.add_column(column, overflow="fold")
    for c in d.get("columns", []):
        table.add_row(c["name"], c.get("type", ""), c.get("classification") or "", c.get("description") or "")
    out.print(table)
    for check in details["latest_checks"]:
        out.print(f"check {check['check_id']}: {check['status'] or 'never run'} ({check['message'] or ''})", highlight=False)
    for label in ("upstream", "downstream"):
        names = sorted({n["dataset_ref"] or f"{n['namespace']}/{n['name']}" for n in details[label]})
        out.print(f"[bold]{label.capitalize()}[/bold]: {', '.join(names) or 'none known'}")


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
    result = validate(sql, dialect=dialect, caller=_guard(ws, role, team, "validate_sql"), workspace=ws)
    if json_output:
        _print_json(result.model_dump())
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
    json_output: JsonOption = False,
    csv_output: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """Run a query on the warehouse, read-only, with a row limit and a timeout."""
    from meshpilot.tools.sql import engine_for, run_sql

    ws = Workspace.open(workspace)
    result = run_sql(sql, dialect=dialect, limit=limit, timeout_s=timeout, workspace=ws, engine=engine_for(engine_url, ws),
                     caller=_guard(ws, role, team, "run_sql"))
    if json_output:
        _print_json(result.model_dump())
        return
    if csv_output:
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
        return
    out.print(_result_table(result, caption=f"{result.row_count} row(s){' (truncated)' if result.truncated else ''} "
                                            f"in {result.elapsed_ms:.0f} ms · {result.sql}"))
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
    from meshpilot.agents.sql_loop import SqlLoop, chat_model
    from meshpilot.tools.catalog import Catalog
    from meshpilot.tools.sql import engine_for

    ws = Workspace.open(workspace)
    engine = engine_for(engine_url, ws)
    loop = SqlLoop(Catalog.open(ws), engine, model=chat_model(model), dialect="duckdb", limit=limit, timeout_s=timeout,
                   caller=_guard(ws, role, team, "ask_sql"))
    answer = loop.ask(question)
    if json_output:
        _print_json(answer.model_dump())
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


# --- lineage -----------------------------------------------------------------------------------------


def _print_lineage(result: Any, json_output: bool, mermaid: bool) -> None:
    if json_output:
        _print_json(result.model_dump())
        return
    if mermaid:
        out.print(result.mermaid, highlight=False, markup=False, soft_wrap=True)  # raw text: never wrapped
        return
    out.print(f"[bold]{result.source}[/bold]" + (f" · change: {result.change}" if result.change else ""), highlight=False)
    style = {"broken": "red", "at_risk": "yellow", "affected": "cyan", "unaffected": "dim"}
    table = Table()
    for column in ("status", "kind", "reference", "why", "path"):
        table.add_column(column, overflow="fold")
    for item in result.items:
        if item.status == "unaffected":
            continue
        colour = style.get(item.status, "")
        table.add_row(f"[{colour}]{item.status}[/{colour}]", item.kind, item.ref, item.reason, "\n".join(item.path))
    out.print(table)
    unaffected = [i.ref for i in result.items if i.status == "unaffected"]
    if unaffected:
        out.print(f"unaffected: {len(unaffected)} column(s)", highlight=False)


@lineage_app.command("impact")
def lineage_impact(
    urn: Annotated[str, typer.Argument(help="mesh://<domain>/<product>/<dataset>[#<column>]")],
    workspace: WorkspaceOption = None,
    column: Annotated[str | None, typer.Option(help="The column (or write it after # in the reference).")] = None,
    change: Annotated[str | None, typer.Option(help="drop, rename, type or semantics.")] = None,
    depth: Annotated[int | None, typer.Option(help="At most this many hops.")] = None,
    json_output: JsonOption = False,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Print the Mermaid diagram.")] = False,
) -> None:
    """Everything downstream of a dataset or column; with --change, what breaks and why."""
    from meshpilot.tools.lineage import impact

    result = impact(urn, column=column, change=change, depth=depth, workspace=Workspace.open(workspace))
    _print_lineage(result, json_output, mermaid)
    if change and any(i.status == "broken" for i in result.items):
        raise typer.Exit(2)  # a breaking change: non-zero, so it can gate CI


@lineage_app.command("upstream")
def lineage_upstream(
    urn: Annotated[str, typer.Argument(help="mesh://<domain>/<product>/<dataset>[#<column>]")],
    workspace: WorkspaceOption = None,
    column: Annotated[str | None, typer.Option(help="The column.")] = None,
    depth: Annotated[int | None, typer.Option(help="At most this many hops.")] = None,
    json_output: JsonOption = False,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Print the Mermaid diagram.")] = False,
) -> None:
    """Where a dataset or column comes from (for root causes)."""
    from meshpilot.tools.lineage import upstream

    _print_lineage(upstream(urn, column=column, depth=depth, workspace=Workspace.open(workspace)), json_output, mermaid)


@lineage_app.command("paths")
def lineage_paths(
    source: Annotated[str, typer.Argument(help="From: a mesh:// dataset or column.")],
    target: Annotated[str, typer.Argument(help="To: a mesh:// dataset or column.")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Print the Mermaid diagram.")] = False,
) -> None:
    """The lineage routes from one dataset or column to another."""
    from meshpilot.tools.lineage import paths

    _print_lineage(paths(source, target, workspace=Workspace.open(workspace)), json_output, mermaid)


@lineage_app.command("ingest")
def lineage_ingest(
    path: Annotated[Path, typer.Argument(help="A .json or .jsonl file of OpenLineage events.")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Store OpenLineage events (the same as `meshpilot import openlineage`)."""
    import_openlineage(path, workspace, json_output)


# --- contracts ---------------------------------------------------------------------------------------


@contracts_app.command("lint")
def contracts_lint(
    paths: Annotated[list[Path], typer.Argument(help="ODCS contract files.")],
    json_output: JsonOption = False,
) -> None:
    """Validate contracts (ODCS JSON schema of their apiVersion) and check owners, SLAs, PII, types."""
    from meshpilot.tools.contracts import lint_contract

    results = [lint_contract(p) for p in paths]
    if json_output:
        _print_json([r.model_dump() for r in results])
    else:
        for result in results:
            out.print(f"[{'green' if result.ok else 'red'}]{'ok' if result.ok else 'invalid'}[/] {result.source}",
                      highlight=False)
            for f in result.findings:
                where = f"{result.source}:{f.line}" if f.line else result.source
                out.print(f"  {f.severity}: {where}: {f.message}", highlight=False, markup=False)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@contracts_app.command("draft")
def contracts_draft(
    target: Annotated[str, typer.Argument(help="A product (id, domain/id, mesh://...) or one of its datasets (mesh://d/p/ds).")],
    workspace: WorkspaceOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the YAML here (refuses to overwrite).")] = None,
    model: Annotated[str | None, typer.Option(envvar="MESHPILOT_MODEL", show_envvar=True,
                                              help="A LiteLLM model to write missing column descriptions.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Draft an ODCS v3.1 contract from the catalog and a profile of the data (PII classified, rules proposed)."""
    from meshpilot.agents.sql_loop import chat_model
    from meshpilot.mesh import files
    from meshpilot.tools.contracts import draft_contract

    contract = draft_contract(target, Workspace.open(workspace), model=chat_model(model))
    if json_output:
        _print_json(contract)
        return
    text = files.dump_yaml(contract)
    if output is None:
        out.print(text, highlight=False, markup=False, end="", soft_wrap=True)
        return
    if output.exists():
        raise MeshpilotError(f"{output} exists; not overwriting it.", hint="Choose another --output path.")
    files.atomic_write_text(output, text)
    err.print(f"Draft contract written to {output}. Review it, then lint it: meshpilot contracts lint {output}")


@contracts_app.command("test")
def contracts_test(
    path: Annotated[Path, typer.Argument(help="An ODCS contract of a dataset in the workspace.")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run a contract's schema and quality rules on the data; failing rows shown with PII masked."""
    from meshpilot.tools.contracts import test_contract

    result = test_contract(path, Workspace.open(workspace))
    if json_output:
        _print_json(result.model_dump())
    else:
        style = {"pass": "green", "fail": "red", "error": "red", "skipped": "dim"}
        for r in result.results:
            where = r.object + (f".{r.property}" if r.property else "")
            detail = f"observed {r.observed}, expected {r.expected}" if r.expected else (r.message or "")
            out.print(f"[{style[r.status]}]{r.status:7}[/] {where} {r.rule}: {detail}", highlight=False)
            for row in r.failing_rows:
                out.print(f"          {row}", highlight=False, markup=False)
        out.print(", ".join(f"{n} {k}" for k, n in result.counts.items()), highlight=False)
    if not result.ok:
        raise typer.Exit(1)


@contracts_app.command("diff")
def contracts_diff(
    old: Annotated[Path, typer.Argument(help="The contract as it was.")],
    new: Annotated[Path, typer.Argument(help="The contract as proposed.")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """What a contract change means for consumers (ERROR / WARNING / INFO), with what each ERROR breaks."""
    from meshpilot.mesh.workspace import resolve_path
    from meshpilot.tools.contracts import diff_contract

    root = resolve_path(workspace)
    ws = Workspace.open(root) if (root / MANIFEST).exists() else None
    result = diff_contract(old, new, workspace=ws)
    if json_output:
        _print_json(result.model_dump())
    else:
        style = {"ERROR": "red", "WARNING": "yellow", "INFO": "dim"}
        for change in result.changes:
            out.print(f"[{style[change.severity]}]{change.severity:7}[/] {change.path}: {change.message}", highlight=False)
            for broken in change.breaks:
                out.print(f"          breaks {broken}", highlight=False)
        out.print(", ".join(f"{n} {level}" for level, n in result.counts.items()), highlight=False)
    if result.breaking:
        raise typer.Exit(2)  # breaking: non-zero so the diff can gate CI


# --- servers -----------------------------------------------------------------------------------------


@serve_app.command("lineage")
def serve_lineage(
    workspace: WorkspaceOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    token: Annotated[str | None, typer.Option(envvar="MESHPILOT_LINEAGE_TOKEN", show_envvar=True,
                                              help="Require Authorization: Bearer <token>.")] = None,
) -> None:
    """Receive OpenLineage events over HTTP (POST /api/v1/lineage, as Marquez serves it)."""
    import uvicorn

    from meshpilot.server.lineage_http import create_app

    ws = Workspace.open(workspace)
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise MeshpilotError(f"Refusing to listen on {host} without a token.",
                             hint="Pass --token (or MESHPILOT_LINEAGE_TOKEN), or listen on 127.0.0.1.")
    err.print(f"OpenLineage endpoint: http://{host}:{port}/api/v1/lineage -> {ws.root / 'lineage'}")
    uvicorn.run(create_app(ws, token), host=host, port=port, log_level="warning")


@serve_app.command("mcp")
def serve_mcp(
    workspace: WorkspaceOption = None,
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP (bearer tokens) instead of stdio.")] = False,
    host: Annotated[str, typer.Option(help="HTTP: address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP: port to listen on.")] = 8765,
    role: RoleOption = None,
    team: TeamOption = None,
) -> None:
    """Serve Meshpilot's tools, resources and prompts to MCP clients (Claude, VS Code, Cursor...)."""
    from meshpilot.guardrails.policy import Caller
    from meshpilot.server.mcp import build_server

    ws = Workspace.open(workspace)
    if not http:
        # stdout is the protocol channel: nothing else may be printed there.
        build_server(ws, Caller(role=role, team=team) if role else None).run("stdio")
        return
    import uvicorn

    if role:
        raise MeshpilotError("Over HTTP the caller's role comes from their bearer token, not --role.",
                             hint="Create tokens with `meshpilot tokens create --role ROLE --name NAME`.")
    server = build_server(ws, http=True, public_url=f"http://{host}:{port}")
    err.print("Loading the catalog and the PII models…", highlight=False)
    server.callers.warm()  # before listening: concurrent first calls would all wait on these
    err.print(f"MCP endpoint: http://{host}:{port}/mcp (bearer tokens from {ws.root / 'policy.yaml'})", highlight=False)
    uvicorn.run(server.streamable_http_app(stateless_http=True, json_response=True, host=host), host=host, port=port,
                log_level="warning")


@serve_app.command("web")
def serve_web(
    workspace: WorkspaceOption = None,
    port: Annotated[int, typer.Option(help="Port to listen on (loopback).")] = 8080,
    role: RoleOption = None,
    team: TeamOption = None,
    model: Annotated[str | None, typer.Option(help="A LiteLLM model; none: the offline model.")] = None,
) -> None:
    """The web chat (and product pages, and the OpenLineage endpoint) on http://127.0.0.1:PORT."""
    import uvicorn

    from meshpilot.server.web import create_app

    copilot = _copilot(workspace, role, team, model)
    err.print(f"Meshpilot web chat: http://127.0.0.1:{port}/ (role {copilot.caller.role if copilot.caller else 'unrestricted'})",
              highlight=False)
    uvicorn.run(create_app(copilot.workspace, copilot=copilot), host="127.0.0.1", port=port, log_level="warning")


@serve_app.command("slack")
def serve_slack(
    workspace: WorkspaceOption = None,
    socket: Annotated[bool, typer.Option("--socket", help="Socket Mode (needs SLACK_APP_TOKEN) instead of HTTP.")] = False,
    port: Annotated[int, typer.Option(help="HTTP mode: port for Slack's requests (POST /slack/events).")] = 3000,
    host: Annotated[str, typer.Option(help="HTTP mode: address to listen on.")] = "127.0.0.1",
    role: RoleOption = None,
) -> None:
    """The Slack bot: /meshpilot triage|ask, mentions, alert channels (docs/slack.md)."""
    from meshpilot.server.slack import create_app

    token, secret = os.environ.get("SLACK_BOT_TOKEN"), os.environ.get("SLACK_SIGNING_SECRET")
    if not token or not (secret or socket):
        raise MeshpilotError("The Slack bot needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (HTTP mode).",
                             hint="Create the app from the manifest in docs/slack.md and copy its credentials.")
    channels = tuple(c.strip() for c in os.environ.get("MESHPILOT_SLACK_ALERT_CHANNELS", "").split(",") if c.strip())
    bolt = create_app(Workspace.open(workspace), token=token, signing_secret=secret or "socket-mode",
                      alert_channels=channels, role=role)
    if socket:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        app_token = os.environ.get("SLACK_APP_TOKEN")
        if not app_token:
            raise MeshpilotError("Socket Mode needs SLACK_APP_TOKEN (an app-level token with connections:write).")
        SocketModeHandler(bolt, app_token).start()
        return
    import uvicorn
    from slack_bolt.adapter.starlette import SlackRequestHandler
    from starlette.applications import Starlette
    from starlette.routing import Route

    handler = SlackRequestHandler(bolt)

    async def events(request):
        return await handler.handle(request)

    err.print(f"Slack events: http://{host}:{port}/slack/events", highlight=False)
    uvicorn.run(Starlette(routes=[Route("/slack/events", events, methods=["POST"])]), host=host, port=port,
                log_level="warning")


tokens_app = typer.Typer(help="Bearer tokens for the HTTP servers (MCP, web chat).", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
def tokens_create(
    role: Annotated[str, typer.Option("--role", help="The role the token acts as.")],
    name: Annotated[str, typer.Option("--name", help="Whose token it is (shown in the audit log).")],
    team: TeamOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Create a token: its hash goes into policy.yaml; the token is printed once and stored nowhere."""
    from meshpilot.guardrails.policy import create_token

    token = create_token(Workspace.open(workspace), role, name, team)
    err.print(f"Token '{name}' for role {role} created; copy it now, it is not shown again:", highlight=False)
    out.print(token, highlight=False, markup=False)


# --- imports -----------------------------------------------------------------------------------------


def _report_import(summary: dict[str, Any], json_output: bool) -> None:
    if json_output:
        _print_json(summary)
        return
    counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in summary["imported"].items() if n)
    changed = summary["files_changed"]
    out.print(f"[green]Imported from {summary['source']}:[/green] {counts or 'nothing'}.", highlight=False)
    out.print(f"{len(changed)} file(s) written" + (": " + ", ".join(changed) if changed else " (nothing changed)."),
              highlight=False)
    for warning in summary["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


@import_app.command("openmetadata")
def import_openmetadata(
    path: Annotated[Path | None, typer.Argument(help="An OpenMetadata export folder (sample_data layout).")] = None,
    host: Annotated[str | None, typer.Option(help="A live OpenMetadata server, e.g. http://localhost:8585/api.")] = None,
    token: Annotated[str | None, typer.Option(envvar="OPENMETADATA_JWT_TOKEN", show_envvar=True,
                                              help="JWT token of a bot or user for --host.")] = None,
    domain: Annotated[str | None, typer.Option(help="Mesh domain for the imported products (default: the service name).")] = None,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Import tables, columns, lineage, test results, users and teams from OpenMetadata."""
    from meshpilot.mesh.connectors import openmetadata

    ws = Workspace.open(workspace)
    if (path is None) == (host is None):
        raise MeshpilotError("Give either an export folder PATH or --host (and --token) of a live server, not both.")
    with _progress() as progress:
        progress.add_task("Importing from OpenMetadata", total=None)
        if path is not None:
            summary = openmetadata.import_export(ws, path, domain=domain)
        else:
            summary = openmetadata.import_live(ws, host, token, domain=domain)
    _report_import(summary, json_output)


@import_app.command("dbt")
def import_dbt(
    path: Annotated[Path, typer.Argument(help="A dbt target folder or its manifest.json (catalog.json and run_results.json beside it are read too).")],
    domain: Annotated[str | None, typer.Option(help="Mesh domain (default: the dbt project name).")] = None,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Import a dbt project's models, seeds, snapshots, columns, tests and lineage."""
    from meshpilot.mesh.connectors import dbt

    ws = Workspace.open(workspace)
    with _progress() as progress:
        progress.add_task("Importing dbt artifacts", total=None)
        summary = dbt.import_artifacts(ws, path, domain=domain)
    _report_import(summary, json_output)


@import_app.command("openlineage")
def import_openlineage(
    path: Annotated[Path, typer.Argument(help="A JSON file (one event or a list) or a JSON Lines file of OpenLineage events.")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Import OpenLineage run, job and dataset events (column-level lineage included)."""
    from meshpilot.mesh.connectors import openlineage

    ws = Workspace.open(workspace)
    with _progress() as progress:
        progress.add_task("Importing OpenLineage events", total=None)
        summary = openlineage.import_events(ws, path)
    _report_import(summary, json_output)


# --- guardrails --------------------------------------------------------------------------------------

pii_app = typer.Typer(help="Find and anonymise personal data; classify columns.", no_args_is_help=True)
app.add_typer(pii_app, name="pii")
injection_app = typer.Typer(help="Detect prompt injection in a text.", no_args_is_help=True)
app.add_typer(injection_app, name="injection")
audit_app = typer.Typer(help="Read the audit log of tool calls.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def _text_argument(text: str) -> str:
    if text == "-":
        return sys.stdin.read()
    return text


@pii_app.command("scan")
def pii_scan(
    text: Annotated[str, typer.Argument(help="The text to scan, or - to read standard input.")],
    operator: Annotated[str, typer.Option(help="redact, mask, hash (salted per workspace) or pseudonymize.")] = "redact",
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """The PII in a text, and the text anonymised."""
    from meshpilot.guardrails import pii

    body = _text_argument(text)
    salt = pii.workspace_salt(Workspace.open(workspace).root) if operator == "hash" else None
    pseudonymizer = pii.Pseudonymizer() if operator == "pseudonymize" else None
    anonymized, findings = pii.anonymize(body, operator, salt=salt, pseudonymizer=pseudonymizer)
    if json_output:
        _print_json({"findings": [f.as_dict() for f in findings], "anonymized": anonymized})
        return
    for f in findings:
        err.print(f"{f.entity_type:<14} {f.start:>5}-{f.end:<5} score {f.score:.2f}  {f.text!r}", highlight=False,
                  markup=False)
    out.print(anonymized, highlight=False, markup=False, soft_wrap=True)


@pii_app.command("classify")
def pii_classify(
    workspace: WorkspaceOption = None,
    write: Annotated[bool, typer.Option("--write", help="Store the proposed classifications in the product files.")] = False,
    json_output: JsonOption = False,
) -> None:
    """The PII type of every column, from its name, description and sampled values."""
    from meshpilot.guardrails.classify import classify_workspace, write_classifications

    ws = Workspace.open(workspace)
    proposals = classify_workspace(ws)
    if not proposals:
        err.print("This workspace has no datasets to classify; import some first (meshpilot import ...).")
        return
    changed = write_classifications(ws, proposals) if write else []
    if json_output:
        _print_json({"columns": [p.as_dict() for p in proposals], "written": changed})
        return
    table = Table(title="Column classification")
    for column in ("dataset", "column", "current", "proposed", "evidence"):
        table.add_column(column, overflow="fold")
    for p in proposals:
        if p.proposed or p.current:
            mark = "[bold]" if p.changed else ""
            table.add_row(p.dataset, p.column, p.current or "", f"{mark}{p.proposed or ''}", p.evidence)
    out.print(table)
    pending = sum(p.changed for p in proposals)
    if write:
        err.print(f"Wrote {len(changed)} file(s): {', '.join(changed) or 'nothing changed'}.", highlight=False)
    elif pending:
        err.print(f"{pending} column(s) would change; run again with --write to store them.", highlight=False)


@injection_app.command("scan")
def injection_scan(
    text: Annotated[str, typer.Argument(help="The text to scan, or - to read standard input.")],
    json_output: JsonOption = False,
) -> None:
    """Score a text for prompt injection; exits 2 when it is one (so it can gate a pipeline)."""
    from meshpilot.guardrails.injection import scan

    verdict = scan(_text_argument(text))
    if json_output:
        _print_json(verdict.as_dict())
    else:
        label = "[bold red]injection[/bold red]" if verdict.injection else "[green]clean[/green]"
        out.print(f"{label} (score {verdict.score:.2f})")
        for signal in verdict.signals:
            out.print(f"  {signal}", highlight=False, markup=False)
    if verdict.injection:
        raise typer.Exit(2)


@audit_app.command("tail")
def audit_tail(
    workspace: WorkspaceOption = None,
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many records.")] = 20,
    tool: Annotated[str | None, typer.Option(help="Only this tool's calls.")] = None,
    role: Annotated[str | None, typer.Option(help="Only this role's calls.")] = None,
    json_output: JsonOption = False,
) -> None:
    """The latest tool calls: who, what (PII redacted), the policy verdict, outcome and duration."""
    from meshpilot.guardrails.audit import tail

    records = tail(Workspace.open(workspace).root, lines, tool=tool, role=role)
    if json_output:
        _print_json(records)
        return
    if not records:
        err.print("The audit log is empty" + (" for these filters." if tool or role else "."))
        return
    table = Table(title="Audit log")
    for column in ("time", "caller", "tool", "arguments", "verdict", "outcome", "ms"):
        table.add_column(column, overflow="fold")
    for r in records:
        caller = r.get("caller") or {}
        who = (caller.get("role") or "-") + (f"@{caller['team']}" if caller.get("team") else "")
        verdict = r.get("verdict", "") + (f": {r['reason']}" if r.get("reason") else "")
        outcome = r.get("outcome", "") + (f": {r['error']}" if r.get("error") else "")
        table.add_row(r.get("time", ""), who, r.get("tool", ""), json.dumps(r.get("arguments"), ensure_ascii=False),
                      verdict, outcome, str(r.get("duration_ms", "")))
    out.print(table)


# --- incidents ---------------------------------------------------------------------------------------

incidents_app = typer.Typer(help="Incidents: list, triage, update.", no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")


@incidents_app.command("list")
def incidents_list(
    workspace: WorkspaceOption = None,
    status: Annotated[str, typer.Option(help="all, unresolved, open, investigating, mitigated or resolved.")] = "all",
    product: Annotated[str | None, typer.Option(help="Only incidents of this product (mesh:// reference).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Incidents, newest first."""
    from meshpilot.tools.incidents import list_incidents

    rows = list_incidents(Workspace.open(workspace), status, product)
    if json_output:
        _print_json(rows)
        return
    table = Table(title="Incidents")
    for column in ("id", "status", "severity", "opened", "assignee", "title"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r["id"], r["status"], r["severity"], str(r["opened_at"])[:16], r["assignee"] or "", r["title"])
    out.print(table)


@incidents_app.command("triage")
def incidents_triage(
    ref: Annotated[str, typer.Argument(help="An incident id, a check id, a dataset, or the text of an alert.")],
    workspace: WorkspaceOption = None,
    role: RoleOption = None,
    team: TeamOption = None,
    json_output: JsonOption = False,
) -> None:
    """What broke, how bad, why (ranked root causes with evidence), the blast radius and who to call."""
    from meshpilot.agents.offline import compose_one
    from meshpilot.agents.tools import ToolContext, TriageArgs, _triage

    ws = Workspace.open(workspace)
    guard = _guard(ws, role, team, "triage_incident")
    context = ToolContext(ws, guard.caller if guard else None)
    report = _triage(context, TriageArgs(ref=ref))
    if json_output:
        _print_json(report)
        return
    from rich.markdown import Markdown

    out.print(Markdown(compose_one("triage_incident", report, {"ref": ref})))


@incidents_app.command("update")
def incidents_update(
    incident: Annotated[str, typer.Argument(help="The incident id.")],
    workspace: WorkspaceOption = None,
    status: Annotated[str | None, typer.Option(help="open, investigating, mitigated or resolved.")] = None,
    assignee: Annotated[str | None, typer.Option(help="Who takes it.")] = None,
    note: Annotated[str | None, typer.Option(help="A note for the timeline.")] = None,
    role: RoleOption = None,
    team: TeamOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change an incident's status or assignee, or add a note; earlier history is kept."""
    from meshpilot.tools.incidents import update_incident

    ws = Workspace.open(workspace)
    guard = _guard(ws, role, team, "update_incident")
    actor = os.environ.get("USER") or (guard.caller.role if guard else "cli")
    updated = update_incident(ws, incident, actor, status, assignee, note)
    if json_output:
        _print_json(updated.model_dump(mode="json", exclude_defaults=True))
        return
    out.print(f"{updated.id}: {updated.status.value}, assignee {updated.assignee or '-'}; "
              f"{len(updated.timeline)} timeline entries.", highlight=False)


# --- chat --------------------------------------------------------------------------------------------


def _copilot(workspace: Path | None, role: str | None, team: str | None, model: str | None):
    from meshpilot.agents.copilot import Copilot
    from meshpilot.guardrails.policy import Caller

    ws = Workspace.open(workspace)
    return Copilot(ws, Caller(role=role, team=team) if role else None, model_name=model)


def _render_answer(answer: Any) -> None:
    from rich.markdown import Markdown

    if answer.interrupt:
        pending = answer.interrupt
        out.print(Panel(f"{pending['reason']}\n\n{pending['tool']} {json.dumps(pending['args'], ensure_ascii=False)}",
                        title=f"Approval needed: {pending['action']}", border_style="yellow"), highlight=False)
        return
    out.print(Markdown(answer.text))
    meta = []
    if answer.prompts:
        meta.append("prompts " + ", ".join(answer.prompts))
    if answer.usage.get("model") != "offline":
        cost = answer.usage.get("cost_usd")
        meta.append(f"{answer.usage.get('prompt_tokens', 0)}+{answer.usage.get('completion_tokens', 0)} tokens"
                    + (f", ${cost:.4f}" if cost is not None else ""))
    if meta:
        err.print(f"[dim]{'; '.join(meta)}[/dim]", highlight=False)


def _turn(copilot: Any, text: str | None, thread: str, resume: dict | None, interactive: bool) -> Any:
    """One turn, streamed: tool events on stderr as they happen; approvals asked inline when interactive."""
    from rich.prompt import Confirm

    while True:
        answer = None
        for event in copilot.stream(text, thread, resume=resume):
            if event["type"] == "tool_call":
                err.print(f"[dim]→ {event['name']} {json.dumps(event['args'], ensure_ascii=False)}[/dim]", highlight=False)
            elif event["type"] == "tool_result":
                mark = "[red]✗[/red]" if event["status"] == "error" else "[green]✓[/green]"
                err.print(f"[dim]{mark} {event['name']}[/dim]", highlight=False)
            elif event["type"] == "answer":
                answer = event["answer"]
        if answer.interrupt and interactive:
            _render_answer(answer)
            approved = Confirm.ask("Approve?", console=err, default=False)
            text, resume = None, {"approved": approved, "by": os.environ.get("USER")}
            continue
        return answer


@app.command()
def chat(
    question: Annotated[str | None, typer.Argument(help="Ask one question and exit; without it, an interactive chat.")] = None,
    workspace: WorkspaceOption = None,
    role: RoleOption = None,
    team: TeamOption = None,
    thread: Annotated[str | None, typer.Option(help="Continue this conversation (threads survive restarts).")] = None,
    approve: Annotated[bool, typer.Option("--approve", help="Approve the action a --thread is waiting on.")] = False,
    deny: Annotated[bool, typer.Option("--deny", help="Deny the action a --thread is waiting on.")] = False,
    model: Annotated[str | None, typer.Option(help="A LiteLLM model (overrides MESHPILOT_MODEL); none: the offline model.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Talk to the copilot about the mesh: ownership, lineage, SQL, contracts, incidents, with citations."""
    import uuid

    if approve and deny:
        raise MeshpilotError("Give --approve or --deny, not both.")
    if (approve or deny) and not thread:
        raise MeshpilotError("--approve and --deny answer a pending approval: say which conversation with --thread.")
    copilot = _copilot(workspace, role, team, model)
    thread = thread or uuid.uuid4().hex[:12]
    interactive = sys.stdin.isatty() and not json_output
    if approve or deny or question is not None:
        resume = {"approved": approve, "by": os.environ.get("USER")} if (approve or deny) else None
        answer = _turn(copilot, None if resume else question, thread, resume, interactive)
        if json_output:
            _print_json(answer.as_dict())
        else:
            _render_answer(answer)
            if answer.interrupt:
                err.print(f"Resume with: meshpilot chat --thread {thread} --approve (or --deny)", highlight=False)
        return
    if not interactive:
        raise MeshpilotError("Interactive chat needs a terminal.", hint='Pass a question: meshpilot chat "who owns orders?"')
    err.print(f"[bold]Meshpilot[/bold] on {copilot.workspace.load_manifest().name} as "
              f"{copilot.caller.role if copilot.caller else 'unrestricted'}; conversation {thread}. "
              "Type 'help', or 'exit' to leave.", highlight=False)
    while True:
        try:
            text = out.input("[bold cyan]you>[/bold cyan] ")
        except EOFError:
            break
        if text.strip().lower() in ("exit", "quit", ":q"):
            break
        if not text.strip():
            continue
        try:
            _render_answer(_turn(copilot, text, thread, None, True))
        except MeshpilotError as exc:
            err.print(f"[bold red]error:[/bold red] {exc.message}", highlight=False)


# --- evals -------------------------------------------------------------------------------------------

evals_app = typer.Typer(help="Evaluation suites (Ragas) that gate CI.", no_args_is_help=True)
app.add_typer(evals_app, name="evals")


@evals_app.command("run")
def evals_run(
    suite: Annotated[list[str] | None, typer.Option("--suite", help="Run only this suite (repeatable).")] = None,
    model: Annotated[str | None, typer.Option(help="A LiteLLM model for the agent and SQL suites (default: offline).")] = None,
    judge: Annotated[str | None, typer.Option(help="A LiteLLM judge model for Faithfulness and ResponseRelevancy.")] = None,
    baseline: Annotated[Path | None, typer.Option(help="An earlier evals.json: fail on regressions beyond tolerance.")] = None,
    report: Annotated[Path, typer.Option(help="Where to write evals.json, evals.md and evals.html.")] = Path("eval-report"),
    changed_prompts: Annotated[bool, typer.Option("--changed-prompts", help="Only the suites gating prompts changed since --since.")] = False,
    since: Annotated[str, typer.Option(help="The git ref for --changed-prompts.")] = "origin/main",
    json_output: JsonOption = False,
) -> None:
    """Run the suites on the demo mesh, score them, check thresholds; exit 1 when any check fails."""
    from meshpilot.evals import report as reports
    from meshpilot.evals.runner import SUITES, changed_prompt_suites, judge as check, load_thresholds, run

    names = list(suite or SUITES)
    if changed_prompts:
        names = changed_prompt_suites(since)
        if not names:
            err.print(f"No governed prompt changed since {since}: nothing to run.", highlight=False)
            return
    before = None
    if baseline is not None:
        try:
            before = reports.baseline_of(json.loads(baseline.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise MeshpilotError(f"Cannot read the baseline {baseline}: {exc}",
                                 hint="Give an evals.json written by an earlier `meshpilot evals run`.") from exc
    model_object = None
    if model:
        from meshpilot.agents.llm import ModelConfig, litellm_model

        model_object = litellm_model(ModelConfig.from_env(name=model))
    with _progress() as progress:
        task = progress.add_task("evals", total=len(names))
        started: list[str] = []

        def step(name: str) -> None:
            progress.update(task, description=f"suite {name}", completed=len(started))
            started.append(name)

        results = run(names, model=model_object, judge_model=judge, progress=step)
        progress.update(task, completed=len(names))
    checks = check(results, load_thresholds(), before)
    paths = reports.write(report, results, checks)
    failed = [c for c in checks if c.status == "fail"]
    if json_output:
        _print_json(reports.as_json(results, checks))
    else:
        table = Table(title="Evals")
        for column in ("suite", "metric", "value", "threshold", "status", "note"):
            table.add_column(column, overflow="fold")
        for c in checks:
            colour = {"pass": "green", "fail": "red", "skipped": "yellow"}[c.status]
            table.add_row(c.suite, c.metric, "–" if c.value is None else f"{c.value:g}", c.threshold,
                          f"[{colour}]{c.status}[/{colour}]", c.reason)
        out.print(table)
        err.print("Reports: " + ", ".join(str(p) for p in paths), highlight=False)
    if failed:
        raise MeshpilotError(f"{len(failed)} eval check(s) failed.", problems=[f"{c.suite}.{c.metric}: {c.reason}" for c in failed],
                             hint=f"See {paths[1]} for every metric and the failing cases in {paths[0]}.")


# --- prompts -----------------------------------------------------------------------------------------

prompts_app = typer.Typer(help="Governed prompts: list, show, lint, diff and approve.", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")
PromptsDirOption = Annotated[Path | None, typer.Option("--dir", help="The prompts folder (default: the installed one).")]


def _registry(directory: Path | None):
    from meshpilot.prompts.registry import Registry

    return Registry(directory) if directory else Registry.default()


@prompts_app.command("list")
def prompts_list(directory: PromptsDirOption = None, json_output: JsonOption = False) -> None:
    """Every prompt with its version, status, owner and approval."""
    prompts = _registry(directory).all()
    if json_output:
        _print_json([p.model_dump(exclude={"template"}) | {"ref": p.ref} for p in prompts])
        return
    table = Table(title="Prompts")
    for column in ("id", "version", "status", "owner", "approved by", "gated by"):
        table.add_column(column, overflow="fold")
    for p in prompts:
        table.add_row(p.id, p.version, p.status, p.owner, f"{p.approved_by or ''} {p.approved_on or ''}".strip(),
                      ", ".join(p.gated_by))
    out.print(table)


@prompts_app.command("show")
def prompts_show(prompt_id: Annotated[str, typer.Argument(help="The prompt id.")], directory: PromptsDirOption = None,
                 json_output: JsonOption = False) -> None:
    """One prompt, whole."""
    registry = _registry(directory)
    prompt = registry.read(registry.path_of(prompt_id))
    if json_output:
        _print_json(prompt.model_dump() | {"ref": prompt.ref, "sha256": prompt.content_hash})
        return
    out.print(f"[bold]{prompt.ref}[/bold] ({prompt.status}) owner {prompt.owner}; approved by {prompt.approved_by or '-'} "
              f"on {prompt.approved_on or '-'}; variables {', '.join(prompt.variables) or 'none'}; gated by "
              f"{', '.join(prompt.gated_by) or 'nothing'}", highlight=False)
    out.print(prompt.template, highlight=False, markup=False, soft_wrap=True)


@prompts_app.command("lint")
def prompts_lint(directory: PromptsDirOption = None, json_output: JsonOption = False) -> None:
    """Check every prompt: schema, declared variables, and approved prompts against prompts.lock."""
    problems = _registry(directory).lint()
    if json_output:
        _print_json({"ok": not problems, "problems": [str(p) for p in problems]})
    else:
        for problem in problems:
            err.print(f"[red]✗[/red] {problem}", highlight=False)
        if not problems:
            out.print("All prompts are valid and every approved prompt matches its lock.")
    if problems:
        raise typer.Exit(1)


@prompts_app.command("diff")
def prompts_diff(prompt_id: Annotated[str, typer.Argument(help="The prompt id.")],
                 against: Annotated[str | None, typer.Option(help="An approved version (default: the latest).")] = None,
                 directory: PromptsDirOption = None) -> None:
    """What changed since an approved version."""
    text = _registry(directory).diff(prompt_id, against)
    out.print(text or "No changes since the approved version.", highlight=False, markup=False, soft_wrap=True)


@prompts_app.command("approve")
def prompts_approve(prompt_id: Annotated[str, typer.Argument(help="The prompt id.")],
                    by: Annotated[str, typer.Option("--by", help="Who approves it.")],
                    directory: PromptsDirOption = None) -> None:
    """Approve the prompt's current version: lock its content hash and archive its text."""
    prompt = _registry(directory).approve(prompt_id, by)
    out.print(f"Approved {prompt.ref} (sha256 {prompt.content_hash[:12]}…) by {by}.", highlight=False)


# --- entry point -------------------------------------------------------------------------------------


def main() -> None:
    error: BaseException | None = None
    try:
        code = app(standalone_mode=False)
    except BaseException as exc:
        error = exc
        code = None
    finally:
        _finish_call(error if not isinstance(error, SystemExit) else None)
    if error is None or isinstance(error, SystemExit):
        sys.exit(error.code if isinstance(error, SystemExit) else code if isinstance(code, int) else 0)
    try:
        raise error
    except MeshpilotError as exc:
        err.print(f"[bold red]error:[/bold red] {exc.message}", highlight=False)
        for problem in exc.problems:
            err.print(f"  {problem}", highlight=False, markup=False)
        if exc.hint:
            err.print(exc.hint, highlight=False, markup=False)
        sys.exit(1)
    except TyperException as exc:  # usage errors: typer prints them the way click does
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("Aborted.")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("Interrupted.")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("MESHPILOT_DEBUG"):
            raise
        err.print(f"[bold red]internal error:[/bold red] {type(exc).__name__}: {exc}", highlight=False)
        err.print("This is a bug in Meshpilot. Run again with MESHPILOT_DEBUG=1 for the traceback, and report it.")
        sys.exit(3)
