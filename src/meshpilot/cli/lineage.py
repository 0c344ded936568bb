"""Lineage commands: impact, upstream, paths, ingest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
import json

from rich.table import Table
import typer

from meshpilot.mesh.workspace import Workspace
from meshpilot.cli.common import JsonOption, WorkspaceOption, lineage_app, out, print_json
from meshpilot.cli.imports import import_openlineage

# --- lineage -----------------------------------------------------------------------------------------


def _print_lineage(result: Any, json_output: bool, mermaid: bool) -> None:
    if json_output:
        print_json(result.model_dump())
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
