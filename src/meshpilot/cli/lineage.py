"""Lineage commands: impact, upstream, paths, ingest, jobs, job, history, diff."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
import json

from rich.markup import escape
from rich.table import Table
import typer

from meshpilot.mesh.workspace import Workspace
from meshpilot.cli.common import JsonOption, WorkspaceOption, lineage_app, out, print_json
from meshpilot.cli.imports import import_openlineage

# --- lineage -----------------------------------------------------------------------------------------

LimitOption = Annotated[int, typer.Option(min=0, help="List at most this many items, worst and nearest first "
                                                      "(all are counted); 0 lists them all.")]


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
        # Paths read "a -[DIRECT IDENTITY by job]-> b": escaped, or Rich takes the brackets for markup.
        table.add_row(f"[{colour}]{item.status}[/{colour}]", item.kind, escape(item.ref), escape(item.reason),
                      escape("\n".join(item.path)))
    out.print(table)
    unaffected = sum(n for key, n in result.counts.items() if key.endswith(":unaffected"))
    if unaffected:
        out.print(f"unaffected: {unaffected} column(s)", highlight=False)
    if result.more:
        out.print(f"+{result.more} more (counted: " + ", ".join(f"{k} {v}" for k, v in result.counts.items())
                  + "); --limit 0 lists them all", highlight=False)


@lineage_app.command("impact")
def lineage_impact(
    urn: Annotated[str, typer.Argument(help="mesh://<domain>/<product>/<dataset>[#<column>], or a dataset as events "
                                            "name it: <namespace>/<name>[#<column>], dataset:<namespace>:<name>")],
    workspace: WorkspaceOption = None,
    column: Annotated[str | None, typer.Option(help="The column (or write it after # in the reference).")] = None,
    change: Annotated[str | None, typer.Option(help="drop, rename, type or semantics.")] = None,
    depth: Annotated[int | None, typer.Option(help="At most this many hops.")] = None,
    limit: LimitOption = 50,
    json_output: JsonOption = False,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Print the Mermaid diagram.")] = False,
) -> None:
    """Everything downstream of a dataset or column; with --change, what breaks and why."""
    from meshpilot.tools.lineage import impact

    result = impact(urn, column=column, change=change, depth=depth, workspace=Workspace.open(workspace),
                    limit=limit or None)
    _print_lineage(result, json_output, mermaid)
    if change and any(i.status == "broken" for i in result.items):
        raise typer.Exit(2)  # a breaking change: non-zero, so it can gate CI


@lineage_app.command("upstream")
def lineage_upstream(
    urn: Annotated[str, typer.Argument(help="mesh://<domain>/<product>/<dataset>[#<column>], or a dataset as events "
                                            "name it: <namespace>/<name>[#<column>], dataset:<namespace>:<name>")],
    workspace: WorkspaceOption = None,
    column: Annotated[str | None, typer.Option(help="The column.")] = None,
    depth: Annotated[int | None, typer.Option(help="At most this many hops.")] = None,
    limit: LimitOption = 50,
    json_output: JsonOption = False,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Print the Mermaid diagram.")] = False,
) -> None:
    """Where a dataset or column comes from (for root causes)."""
    from meshpilot.tools.lineage import upstream

    _print_lineage(upstream(urn, column=column, depth=depth, workspace=Workspace.open(workspace), limit=limit or None),
                   json_output, mermaid)


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


@lineage_app.command("jobs")
def lineage_jobs(
    workspace: WorkspaceOption = None,
    namespace: Annotated[str | None, typer.Option(help="Only this namespace.")] = None,
    json_output: JsonOption = False,
) -> None:
    """The jobs lineage events name, with their inputs, outputs and latest run."""
    from meshpilot.tools.lineage_datasets import list_jobs

    rows = list_jobs(Workspace.open(workspace), namespace)
    if json_output:
        print_json(rows)
        return
    table = Table(title="Jobs")
    for column in ("namespace/name", "inputs", "outputs", "latest run", "description"):
        table.add_column(column, overflow="fold")
    for r in rows:
        run = r["latest_run"]
        table.add_row(f"{r['namespace']}/{r['name']}", "\n".join(r["inputs"]), "\n".join(r["outputs"]) or "(none)",
                      f"{run['state']} {run['ended_at']}" if run else "", r["description"] or "")
    out.print(table)


@lineage_app.command("job")
def lineage_job(
    name: Annotated[str, typer.Argument(help="<namespace>/<name>, job:<namespace>:<name> or its name.")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """A job: inputs, outputs, SQL, source and its runs."""
    from meshpilot.tools.lineage_datasets import job

    details = job(name, Workspace.open(workspace))
    if json_output:
        print_json(details)
        return
    out.print(f"[bold]{details['namespace']}/{details['name']}[/bold]  {details['description'] or ''}", highlight=False)
    out.print(f"inputs: {', '.join(details['inputs']) or 'none'}\noutputs: {', '.join(details['outputs']) or 'none'}",
              highlight=False)
    if details["sql"]:
        out.print(details["sql"], highlight=False, markup=False)
    for run in details["runs"]:
        out.print(f"run {run['id']}: {run['state']} {run['started_at']} .. {run['ended_at']}"
                  + (f" ({run['error']})" if run["error"] else ""), highlight=False)


@lineage_app.command("history")
def lineage_history(
    dataset: Annotated[str, typer.Argument(help="A dataset: mesh://..., <namespace>/<name> or dataset:<namespace>:<name>.")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """A dataset's schema versions over time (from the events' schema facets), and the jobs that wrote it."""
    from meshpilot.tools.lineage_datasets import event_dataset

    details = event_dataset(dataset, Workspace.open(workspace))
    if json_output:
        print_json({"dataset": details["id"], "versions": details["versions"], "written_by": details["written_by"]})
        return
    out.print(f"[bold]{details['namespace']}/{details['name']}[/bold] written by {', '.join(details['written_by']) or '-'}",
              highlight=False)
    table = Table()
    for column in ("time", "job", "change", "columns"):
        table.add_column(column, overflow="fold")
    for v in details["versions"]:
        table.add_row(str(v["event_time"]), v["job"] or "", v["change"], ", ".join(f"{k} {t}" for k, t in v["fields"].items()))
    out.print(table)


@lineage_app.command("diff")
def lineage_diff(
    since: Annotated[str, typer.Option(help="From this time (ISO 8601 date or time, UTC unless a zone is given).")],
    until: Annotated[str, typer.Option(help="To this time (default: now).")] = "now",
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """What changed between two times: datasets and jobs that appeared, columns added, removed or retyped,
    jobs whose SQL, source or inputs and outputs changed."""
    from meshpilot.tools.lineage_datasets import diff, parse_time

    result = diff(parse_time(since, "--since"), parse_time(until, "--until"), Workspace.open(workspace))
    if json_output:
        print_json(result)
        return
    out.print(f"[bold]Lineage changes[/bold] {result['since']} .. {result['until']}", highlight=False)
    for label in ("datasets_appeared", "jobs_appeared"):
        out.print(f"{label.replace('_', ' ')}: {', '.join(result[label]) or 'none'}", highlight=False)
    for d in result["datasets_changed"]:
        parts = [f"+{c}" for c in d["columns_added"]] + [f"-{c}" for c in d["columns_removed"]]
        parts += [f"{c}: {t}" for c, t in d["types_changed"].items()]
        out.print(f"dataset {d['dataset']} ({d['changed_by'] or '-'}): {', '.join(parts)}", highlight=False)
    for j in result["jobs_changed"]:
        out.print(f"job {j['job']}: " + "; ".join(
            f"{k} {', '.join(v)}" if isinstance(v, list) else f"{k} changed" for k, v in j.items() if k != "job"),
            highlight=False)
    if not (result["datasets_changed"] or result["jobs_changed"] or result["datasets_appeared"] or result["jobs_appeared"]):
        out.print("No changes.")
