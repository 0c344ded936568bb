"""Incident commands: list, triage, update."""

from __future__ import annotations

from typing import Annotated
import json
import os

from rich.table import Table
import typer

from meshpilot.mesh.workspace import Workspace
from meshpilot.cli.common import JsonOption, RoleOption, TeamOption, WorkspaceOption, app, guard_for, out, print_json

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
        print_json(rows)
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
    from meshpilot.agents.tools import ToolContext, TriageArgs, _triage

    ws = Workspace.open(workspace)
    guard = guard_for(ws, role, team, "triage_incident")
    context = ToolContext(ws, guard.caller if guard else None)
    report = _triage(context, TriageArgs(ref=ref))
    if json_output:
        print_json(report)
        return
    from rich.markdown import Markdown

    from meshpilot.agents.offline import compose_one  # the offline model's wording; langchain is slow to import

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
    guard = guard_for(ws, role, team, "update_incident")
    actor = os.environ.get("USER") or (guard.caller.role if guard else "cli")
    updated = update_incident(ws, incident, actor, status, assignee, note,
                              visible=guard.require_visible if guard else None)
    if json_output:
        from meshpilot.guardrails.output import guard_data

        print_json(guard_data(updated.model_dump(mode="json", exclude_defaults=True), guard)[0])
        return
    out.print(f"{updated.id}: {updated.status.value}, assignee {updated.assignee or '-'}; "
              f"{len(updated.timeline)} timeline entries.", highlight=False)
