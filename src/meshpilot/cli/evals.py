"""The evaluation suites."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
import json

from rich.table import Table
import typer

from meshpilot.errors import MeshpilotError
from meshpilot.cli.common import JsonOption, app, err, out, print_json, progress_bar

# --- evals -------------------------------------------------------------------------------------------

evals_app = typer.Typer(help="Evaluation suites (Ragas) that gate CI.", no_args_is_help=True)
app.add_typer(evals_app, name="evals")


@evals_app.command("run")
def evals_run(
    suite: Annotated[list[str] | None, typer.Option("--suite", help="Run only this suite (repeatable).")] = None,
    model: Annotated[str | None, typer.Option(help="A LiteLLM model for the agent and SQL suites (default: offline).")] = None,
    judge: Annotated[str | None, typer.Option(help="A LiteLLM judge model for Faithfulness and ResponseRelevancy.")] = None,
    workspace: Annotated[Path | None, typer.Option(
        help="Take the models' settings (api_base, api_key, timeout, retries...) from this workspace's "
             "meshpilot.yaml; the suites still run on a fresh demo mesh.")] = None,
    baseline: Annotated[Path | None, typer.Option(help="An earlier evals.json: fail on regressions beyond tolerance.")] = None,
    spider: Annotated[Path | None, typer.Option(help="Spider's folder (tables.json, dev.json) for schema linking "
                                                     "(default: MESHPILOT_SHARED_DATA/spider_dev).")] = None,
    report: Annotated[Path, typer.Option(help="Where to write evals.json, evals.md and evals.html.")] = Path("eval-report"),
    changed_prompts: Annotated[bool, typer.Option("--changed-prompts", help="Only the suites gating prompts changed since --since.")] = False,
    since: Annotated[str, typer.Option(help="The git ref for --changed-prompts.")] = "origin/main",
    json_output: JsonOption = False,
) -> None:
    """Run the suites on the demo mesh, score them, check thresholds; exit 1 when any check fails."""
    from meshpilot.evals import report as reports
    from meshpilot.evals.runner import SUITES, changed_prompt_suites, judge as check, load_thresholds, run

    names = list(suite or SUITES)
    if changed_prompts:
        names = changed_prompt_suites(since)
        if not names:
            err.print(f"No governed prompt changed since {since}: nothing to run.", highlight=False)
            return
    before = None
    if baseline is not None:
        try:
            before = reports.baseline_of(json.loads(baseline.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise MeshpilotError(f"Cannot read the baseline {baseline}: {exc}",
                                 hint="Give an evals.json written by an earlier `meshpilot evals run`.") from exc
    model_object = judge_object = None
    if model or judge:
        from meshpilot.agents.llm import ModelConfig, litellm_model
        from meshpilot.mesh.workspace import Workspace

        settings = Workspace.open(workspace).load_manifest().model if workspace else {}
        model_object = litellm_model(ModelConfig.from_env(settings, name=model)) if model else None
        judge_object = litellm_model(ModelConfig.from_env(settings, name=judge)) if judge else None
    with progress_bar() as progress:
        task = progress.add_task("evals", total=len(names))
        started: list[str] = []

        def step(name: str) -> None:
            progress.update(task, description=f"suite {name}", completed=len(started))
            started.append(name)

        results = run(names, model=model_object, judge_model=judge_object, spider=spider, progress=step)
        progress.update(task, completed=len(names))
    checks = check(results, load_thresholds(), before)
    paths = reports.write(report, results, checks)
    failed = [c for c in checks if c.status == "fail"]
    if json_output:
        print_json(reports.as_json(results, checks))
    else:
        table = Table(title="Evals")
        for column in ("suite", "metric", "value", "threshold", "status", "note"):
            table.add_column(column, overflow="fold")
        for c in checks:
            colour = {"pass": "green", "fail": "red", "skipped": "yellow"}[c.status]
            table.add_row(c.suite, c.metric, "–" if c.value is None else f"{c.value:g}", c.threshold,
                          f"[{colour}]{c.status}[/{colour}]", c.reason)
        out.print(table)
        err.print("Reports: " + ", ".join(str(p) for p in paths), highlight=False)
    if failed:
        raise MeshpilotError(f"{len(failed)} eval check(s) failed.", problems=[f"{c.suite}.{c.metric}: {c.reason}" for c in failed],
                             hint=f"See {paths[1]} for every metric and the failing cases in {paths[0]}.")
