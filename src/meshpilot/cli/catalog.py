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
    lineage: Annotated[bool, typer.Option("--lineage", help="The datasets lineage events name, in a product or not.")] = False,
    unassigned: Annotated[bool, typer.Option("--unassigned", help="Only datasets events name that no product holds.")] = False,
    namespace: Annotated[str | None, typer.Option(help="With --lineage/--unassigned: only this namespace.")] = None,
    json_output: JsonOption = False,
) -> None:
    """List the datasets with their row counts, column counts and classified (PII) columns; with --lineage
    or --unassigned, the datasets OpenLineage events name."""
    from meshpilot.mesh.store import MeshStore
    from meshpilot.tools.lineage_datasets import list_event_datasets

    ws = Workspace.open(workspace)
    if lineage or unassigned:
        _print_event_datasets(list_event_datasets(ws, unassigned=unassigned, namespace=namespace), json_output)
        return
    with MeshStore.open(ws) as store:
        rows = store.list_datasets(domain, product)
        outside = store.cursor().execute(
            """SELECT count(*) FROM lineage_nodes n WHERE n.kind = 'dataset' AND NOT EXISTS (
                 SELECT 1 FROM datasets d WHERE d.qualified_name = n.name
                   AND (d.namespace IS NULL OR d.namespace = n.namespace))""").fetchone()[0]
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
    if outside:
        err.print(f"{outside} dataset(s) named by lineage events are in no product: "
                  "`meshpilot datasets list --unassigned`, then `meshpilot datasets assign`.", highlight=False)


def _print_event_datasets(rows: list[dict], json_output: bool) -> None:
    if json_output:
        print_json(rows)
        return
    table = Table(title="Datasets named by lineage events")
    for column in ("namespace/name", "product dataset", "columns", "owners", "description", "last seen"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(f"{r['namespace']}/{r['name']}", r["assigned_to"] or "(unassigned)", str(len(r["fields"])),
                      ", ".join(r["owners"]), r["description"] or "", str(r["last_seen"]))
    out.print(table)


@datasets_app.command("assign")
def datasets_assign(
    dataset: Annotated[str, typer.Argument(help="A dataset as events name it: <namespace>/<name>, dataset:<namespace>:<name> or its name.")],
    product: Annotated[str, typer.Argument(help="mesh://<domain>/<product> (created if it does not exist).")],
    workspace: WorkspaceOption = None,
    name: Annotated[str | None, typer.Option("--as", help="Its name in the product (default: the last part of its name).")] = None,
    owner: Annotated[str | None, typer.Option(help="The owner team of a product this creates.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Attach a dataset lineage events name to a data product, with its schema facet's columns."""
    from meshpilot.tools.lineage_datasets import assign

    result = assign(dataset, product, dataset_name=name, owner=owner, workspace=Workspace.open(workspace))
    if json_output:
        print_json(result)
        return
    created = " (new product)" if result["created_product"] else ""
    out.print(f"{result['dataset']} is now {result['ref']}{created}; written: {result['file']}", highlight=False)

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
    urn: Annotated[str, typer.Argument(help="mesh://<domain>/<product>/<dataset>, or a dataset as events name it.")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a dataset: columns, owners, SLOs, freshness, latest checks, upstream and downstream. A dataset
    in no product (named by lineage events): its schema, owners, jobs and schema versions."""
    from meshpilot.tools.catalog import get_dataset
    from meshpilot.tools.lineage_datasets import event_dataset

    if not urn.startswith("mesh://"):
        _print_event_dataset(event_dataset(urn, Workspace.open(workspace)), json_output)
        return
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


def _print_event_dataset(d: dict, json_output: bool) -> None:
    if json_output:
        print_json(d)
        return
    out.print(Panel("\n".join([
        f"[bold]{d['namespace']}/{d['name']}[/bold]  {d['id']}",
        f"product dataset: {d['assigned_to'] or '(unassigned: `meshpilot datasets assign`)'} · source {d['source'] or '-'}"
        f" · owners {', '.join(d['owners']) or '-'} · seen {d['first_seen']} .. {d['last_seen']}",
        "", d["description"] or "(no description)"]), expand=False), highlight=False)
    table = Table()
    for column in ("column", "type", "description"):
        table.add_column(column, overflow="fold")
    for f in d["fields"]:
        table.add_row(f["name"], str(f["type"] or ""), f["description"] or "")
    out.print(table)
    for label, key in (("Written by", "written_by"), ("Read by", "read_by"), ("Upstream", "upstream"),
                       ("Downstream", "downstream")):
        out.print(f"[bold]{label}[/bold]: {', '.join(d[key]) or 'none known'}", highlight=False)
    for v in d["versions"]:
        out.print(f"schema version {v['event_time']} by {v['job'] or '-'}: {v['change']}", highlight=False)
