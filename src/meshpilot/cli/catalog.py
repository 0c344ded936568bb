"""Commands to browse and search the catalog."""

from __future__ import annotations

from typing import Annotated, Any

from rich.panel import Panel
from rich.table import Table
import typer

from meshpilot.mesh.workspace import Workspace
from meshpilot.cli.common import JsonOption, RoleOption, TeamOption, WorkspaceOption, app, datasets_app, err, guard_for, out, print_json, products_app

# --- products and datasets ---------------------------------------------------------------------------


def list_products_table(ws: Workspace, domain: str | None, json_output: bool) -> None:
    from meshpilot.mesh.store import MeshStore

    with MeshStore.open(ws) as store:
        rows = store.list_products(domain)
    if json_output:
        print_json(rows)
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
    list_products_table(Workspace.open(workspace), domain, json_output)


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
        print_json(details)
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
        print_json(rows)
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
    guard = guard_for(ws, role, team, "search_catalog")
    catalog = Catalog.open(ws)
    result = catalog.search(query, domain=domain, owner=owner, tags=tag, classification=classification, kind=kind, k=k,
                            visible_domains=guard.domains if guard else None,
                            visible_products=guard.products if guard else None)
    if json_output:
        print_json(result.model_dump())
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
        print_json(link.model_dump())
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
        print_json(details)
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
