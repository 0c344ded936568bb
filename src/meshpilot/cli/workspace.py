"""Commands for the workspace: demo, init, validate."""

from __future__ import annotations

from typing import Annotated
import shutil

import typer

from meshpilot.errors import MeshpilotError
from meshpilot.mesh.workspace import MANIFEST, Workspace, resolve_path
from meshpilot.cli.common import JsonOption, WorkspaceOption, app, err, out, print_json, progress_bar
from meshpilot.cli.catalog import list_products_table

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
    with progress_bar() as progress:
        task = progress.add_task("Building the demo mesh", total=len(steps))
        ws = build_demo(root, lambda step: progress.update(task, completed=steps.index(step),
                                                           description=f"Building the demo mesh: {step}"))
    if not json_output:
        err.print(f"[green]Demo mesh built in {ws.root}[/green]")
    list_products_table(ws, None, json_output)


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
        print_json({"workspace": str(ws.root), "valid": True, "counts": counts})
    else:
        summary = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items())
        out.print(f"[green]The workspace {ws.root} is valid:[/green] {summary}.")
