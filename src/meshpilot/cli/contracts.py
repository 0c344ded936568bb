"""Data contract commands: lint, diff, draft, test."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from meshpilot.errors import MeshpilotError
from meshpilot.mesh.workspace import MANIFEST, Workspace, resolve_path
from meshpilot.cli.common import JsonOption, WorkspaceOption, contracts_app, err, out, print_json

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
        print_json([r.model_dump() for r in results])
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
    from meshpilot.agents.llm import configured_model
    from meshpilot.mesh import files
    from meshpilot.tools.contracts import draft_contract

    ws = Workspace.open(workspace)
    contract = draft_contract(target, ws, model=configured_model(ws, model))
    if json_output:
        print_json(contract)
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
        print_json(result.model_dump())
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
        print_json(result.model_dump())
    else:
        style = {"ERROR": "red", "WARNING": "yellow", "INFO": "dim"}
        for change in result.changes:
            out.print(f"[{style[change.severity]}]{change.severity:7}[/] {change.path}: {change.message}", highlight=False)
            for broken in change.breaks:
                out.print(f"          breaks {broken}", highlight=False)
        out.print(", ".join(f"{n} {level}" for level, n in result.counts.items()), highlight=False)
    if result.breaking:
        raise typer.Exit(2)  # breaking: non-zero so the diff can gate CI
