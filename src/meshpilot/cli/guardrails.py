"""Guardrail commands: PII, prompt injection, the audit log."""

from __future__ import annotations

from typing import Annotated
import json
import sys

from rich.table import Table
import typer

from meshpilot.mesh.workspace import Workspace
from meshpilot.cli.common import JsonOption, WorkspaceOption, app, err, out, print_json

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
        print_json({"findings": [f.as_dict() for f in findings], "anonymized": anonymized})
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
        print_json({"columns": [p.as_dict() for p in proposals], "written": changed})
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
        print_json(verdict.as_dict())
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
        print_json(records)
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
