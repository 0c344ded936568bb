"""Importers: OpenMetadata, dbt, OpenLineage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
import json

import typer

from meshpilot.errors import MeshpilotError
from meshpilot.mesh.workspace import Workspace
from meshpilot.cli.common import JsonOption, WorkspaceOption, err, import_app, out, print_json, progress_bar

# --- imports -----------------------------------------------------------------------------------------


def _report_import(summary: dict[str, Any], json_output: bool) -> None:
    if json_output:
        print_json(summary)
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
    with progress_bar() as progress:
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
    with progress_bar() as progress:
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
    with progress_bar() as progress:
        progress.add_task("Importing OpenLineage events", total=None)
        summary = openlineage.import_events(ws, path)
    _report_import(summary, json_output)
