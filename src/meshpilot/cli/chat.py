"""The copilot in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
import json
import os
import sys

from rich.panel import Panel
import typer

from meshpilot.errors import MeshpilotError
from meshpilot.mesh.workspace import Workspace
from meshpilot.cli.common import JsonOption, RoleOption, TeamOption, WorkspaceOption, app, err, out, print_json

# --- chat --------------------------------------------------------------------------------------------


def copilot_for(workspace: Path | None, role: str | None, team: str | None, model: str | None):
    from meshpilot.agents.copilot import Copilot
    from meshpilot.guardrails.policy import Caller

    ws = Workspace.open(workspace)
    return Copilot(ws, Caller(role=role, team=team) if role else None, model_name=model)


def _render_answer(answer: Any) -> None:
    from rich.markdown import Markdown

    if answer.interrupt:
        pending = answer.interrupt
        out.print(Panel(f"{pending['reason']}\n\n{pending['tool']} {json.dumps(pending['args'], ensure_ascii=False)}",
                        title=f"Approval needed: {pending['action']}", border_style="yellow"), highlight=False)
        return
    out.print(Markdown(answer.text))
    meta = []
    if answer.prompts:
        meta.append("prompts " + ", ".join(answer.prompts))
    if answer.usage.get("model") != "offline":
        cost = answer.usage.get("cost_usd")
        meta.append(f"{answer.usage.get('prompt_tokens', 0)}+{answer.usage.get('completion_tokens', 0)} tokens"
                    + (f", ${cost:.4f}" if cost is not None else ""))
    if meta:
        err.print(f"[dim]{'; '.join(meta)}[/dim]", highlight=False)


def _turn(copilot: Any, text: str | None, thread: str, resume: dict | None, interactive: bool) -> Any:
    """One turn, streamed: tool events on stderr as they happen; approvals asked inline when interactive."""
    from rich.prompt import Confirm

    while True:
        answer = None
        for event in copilot.stream(text, thread, resume=resume):
            if event["type"] == "tool_call":
                err.print(f"[dim]→ {event['name']} {json.dumps(event['args'], ensure_ascii=False)}[/dim]", highlight=False)
            elif event["type"] == "tool_result":
                mark = "[red]✗[/red]" if event["status"] == "error" else "[green]✓[/green]"
                err.print(f"[dim]{mark} {event['name']}[/dim]", highlight=False)
            elif event["type"] == "answer":
                answer = event["answer"]
        if answer.interrupt and interactive:
            _render_answer(answer)
            approved = Confirm.ask("Approve?", console=err, default=False)
            text, resume = None, {"approved": approved, "by": os.environ.get("USER")}
            continue
        return answer


@app.command()
def chat(
    question: Annotated[str | None, typer.Argument(help="Ask one question and exit; without it, an interactive chat.")] = None,
    workspace: WorkspaceOption = None,
    role: RoleOption = None,
    team: TeamOption = None,
    thread: Annotated[str | None, typer.Option(help="Continue this conversation (threads survive restarts).")] = None,
    approve: Annotated[bool, typer.Option("--approve", help="Approve the action a --thread is waiting on.")] = False,
    deny: Annotated[bool, typer.Option("--deny", help="Deny the action a --thread is waiting on.")] = False,
    model: Annotated[str | None, typer.Option(help="A LiteLLM model (overrides MESHPILOT_MODEL); none: the offline model.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Talk to the copilot about the mesh: ownership, lineage, SQL, contracts, incidents, with citations."""
    import uuid

    if approve and deny:
        raise MeshpilotError("Give --approve or --deny, not both.")
    if (approve or deny) and not thread:
        raise MeshpilotError("--approve and --deny answer a pending approval: say which conversation with --thread.")
    copilot = copilot_for(workspace, role, team, model)
    thread = thread or uuid.uuid4().hex[:12]
    interactive = sys.stdin.isatty() and not json_output
    if approve or deny or question is not None:
        resume = {"approved": approve, "by": os.environ.get("USER")} if (approve or deny) else None
        answer = _turn(copilot, None if resume else question, thread, resume, interactive)
        if json_output:
            print_json(answer.as_dict())
        else:
            _render_answer(answer)
            if answer.interrupt:
                err.print(f"Resume with: meshpilot chat --thread {thread} --approve (or --deny)", highlight=False)
        return
    if not interactive:
        raise MeshpilotError("Interactive chat needs a terminal.", hint='Pass a question: meshpilot chat "who owns orders?"')
    err.print(f"[bold]Meshpilot[/bold] on {copilot.manifest.name} as "
              f"{copilot.caller.role if copilot.caller else 'unrestricted'}; conversation {thread}. "
              "Type 'help', or 'exit' to leave.", highlight=False)
    while True:
        try:
            text = out.input("[bold cyan]you>[/bold cyan] ")
        except EOFError:
            break
        if text.strip().lower() in ("exit", "quit", ":q"):
            break
        if not text.strip():
            continue
        try:
            _render_answer(_turn(copilot, text, thread, None, True))
        except MeshpilotError as exc:
            err.print(f"[bold red]error:[/bold red] {exc.message}", highlight=False)
