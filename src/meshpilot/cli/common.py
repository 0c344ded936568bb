"""Shared pieces of the command line: the Typer app and its groups, the consoles, common options, and the
access guard that also starts the audit record of a command's tool call."""

from __future__ import annotations



import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from meshpilot.errors import MeshpilotError
from meshpilot.mesh.workspace import ENV_VAR, Workspace

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
current_call: dict[str, Any] = {}


def guard_for(ws: Workspace, role: str | None, team: str | None, tool: str, approved: bool = False) -> Any:
    """The SQL access guard for a caller, or None when the workspace has no policy or no role is given.
    Starts the audit record of this tool call. `approved`: the user approves reading PII in the clear
    (`--approve`), recorded in the audit log."""
    import time

    from typer._click.globals import get_current_context  # typer 0.2x vendors click

    from meshpilot.guardrails.audit import AuditRecord
    from meshpilot.guardrails.policy import Caller, Policy

    arguments = {k: v for k, v in get_current_context().params.items()
                 if k not in ("workspace", "json_output", "role", "team") and v not in (None, [], ())}
    policy = Policy.load(ws)
    role = role or (policy.default_role if policy else None)
    record = AuditRecord(tool, {"role": role, "team": team}, arguments)
    current_call.update(root=ws.root, record=record, t0=time.perf_counter())
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
    if approved:
        record.reason = "run_sql_on_pii approved by the CLI user"
        record.verdict = "approved"
    return policy.sql_guard(caller, approved=approved)


def record_pii(columns: list[str]) -> None:
    """Mark the running command's audit record with the PII columns it read."""
    if current_call and columns:
        current_call["record"].pii = sorted(columns)


def finish_call(error: BaseException | None) -> None:
    """Append the audit record of the command's tool call, with its outcome and duration."""
    import time

    from meshpilot.guardrails.audit import append

    if not current_call:
        return
    record = current_call["record"]
    record.duration_ms = round((time.perf_counter() - current_call["t0"]) * 1000, 2)
    if error is not None:
        record.outcome = "refused" if record.verdict == "refused" else "error"
        record.error = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        refusals = [str(p) for p in getattr(error, "problems", []) if "may not" in str(p)]
        if record.verdict == "allowed" and refusals:
            record.verdict, record.reason, record.outcome = "refused", "; ".join(refusals), "refused"
    try:
        append(current_call["root"], record)
    except OSError as exc:  # an unwritable log must not hide the command's own result
        err.print(f"[yellow]warning:[/yellow] could not write the audit log: {exc}", highlight=False)
    current_call.clear()


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str), highlight=False)


def progress_bar() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)
