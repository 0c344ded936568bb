"""Governed prompts: list, show, lint, diff, approve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from rich.table import Table
import typer
from meshpilot.cli.common import JsonOption, app, err, out, print_json

# --- prompts -----------------------------------------------------------------------------------------

prompts_app = typer.Typer(help="Governed prompts: list, show, lint, diff and approve.", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")
PromptsDirOption = Annotated[Path | None, typer.Option("--dir", help="The prompts folder (default: the installed one).")]


def _registry(directory: Path | None):
    from meshpilot.prompts.registry import Registry

    return Registry(directory) if directory else Registry.default()


@prompts_app.command("list")
def prompts_list(directory: PromptsDirOption = None, json_output: JsonOption = False) -> None:
    """Every prompt with its version, status, owner and approval."""
    prompts = _registry(directory).all()
    if json_output:
        print_json([p.model_dump(exclude={"template"}) | {"ref": p.ref} for p in prompts])
        return
    table = Table(title="Prompts")
    for column in ("id", "version", "status", "owner", "approved by", "gated by"):
        table.add_column(column, overflow="fold")
    for p in prompts:
        table.add_row(p.id, p.version, p.status, p.owner, f"{p.approved_by or ''} {p.approved_on or ''}".strip(),
                      ", ".join(p.gated_by))
    out.print(table)


@prompts_app.command("show")
def prompts_show(prompt_id: Annotated[str, typer.Argument(help="The prompt id.")], directory: PromptsDirOption = None,
                 json_output: JsonOption = False) -> None:
    """One prompt, whole."""
    registry = _registry(directory)
    prompt = registry.read(registry.path_of(prompt_id))
    if json_output:
        print_json(prompt.model_dump() | {"ref": prompt.ref, "sha256": prompt.content_hash})
        return
    out.print(f"[bold]{prompt.ref}[/bold] ({prompt.status}) owner {prompt.owner}; approved by {prompt.approved_by or '-'} "
              f"on {prompt.approved_on or '-'}; variables {', '.join(prompt.variables) or 'none'}; gated by "
              f"{', '.join(prompt.gated_by) or 'nothing'}", highlight=False)
    out.print(prompt.template, highlight=False, markup=False, soft_wrap=True)


@prompts_app.command("lint")
def prompts_lint(directory: PromptsDirOption = None, json_output: JsonOption = False) -> None:
    """Check every prompt: schema, declared variables, and approved prompts against prompts.lock."""
    problems = _registry(directory).lint()
    if json_output:
        print_json({"ok": not problems, "problems": [str(p) for p in problems]})
    else:
        for problem in problems:
            err.print(f"[red]✗[/red] {problem}", highlight=False)
        if not problems:
            out.print("All prompts are valid and every approved prompt matches its lock.")
    if problems:
        raise typer.Exit(1)


@prompts_app.command("diff")
def prompts_diff(prompt_id: Annotated[str, typer.Argument(help="The prompt id.")],
                 against: Annotated[str | None, typer.Option(help="An approved version (default: the latest).")] = None,
                 directory: PromptsDirOption = None) -> None:
    """What changed since an approved version."""
    text = _registry(directory).diff(prompt_id, against)
    out.print(text or "No changes since the approved version.", highlight=False, markup=False, soft_wrap=True)


@prompts_app.command("approve")
def prompts_approve(prompt_id: Annotated[str, typer.Argument(help="The prompt id.")],
                    by: Annotated[str, typer.Option("--by", help="Who approves it.")],
                    directory: PromptsDirOption = None) -> None:
    """Approve the prompt's current version: lock its content hash and archive its text."""
    prompt = _registry(directory).approve(prompt_id, by)
    out.print(f"Approved {prompt.ref} (sha256 {prompt.content_hash[:12]}…) by {by}.", highlight=False)
