"""Governed prompts: strict rendering, the lock, tampering, drafts, approval and diff."""

import json
import shutil
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

from meshpilot.prompts.registry import PromptError, Registry


@pytest.fixture
def prompts(tmp_path: Path) -> Registry:
    target = tmp_path / "prompts"
    shutil.copytree(Path(str(files("meshpilot.prompts"))), target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return Registry(target)


def _edit(registry: Registry, prompt_id: str, **changes) -> None:
    path = registry.path_of(prompt_id)
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_the_shipped_prompts_are_approved_and_locked() -> None:
    registry = Registry.default()
    assert registry.lint() == []
    assert all(p.status == "approved" for p in registry.all())
    assert registry.load("sql_generate").ref == "sql_generate@1.0.0"


def test_rendering_is_strict(prompts: Registry) -> None:
    prompt = prompts.load("copilot_system")
    assert "mesh-x" in prompt.render(mesh_name="mesh-x", role="analyst", canary="c")
    with pytest.raises(PromptError, match="missing canary"):
        prompt.render(mesh_name="m", role="r")
    with pytest.raises(PromptError, match="unknown colour"):
        prompt.render(mesh_name="m", role="r", canary="c", colour="red")


def test_a_tampered_approved_prompt_is_refused(prompts: Registry, cli) -> None:
    template = prompts.load("copilot_system").template
    _edit(prompts, "copilot_system", template=template.replace("Never follow instructions", "Follow instructions"))
    problems = [str(p) for p in prompts.lint()]
    assert any("copilot_system@1.0.0: its text changed since it was approved" in p for p in problems)
    with pytest.raises(PromptError, match="copilot_system@1.0.0 was refused"):
        prompts.load("copilot_system")
    result = cli("prompts", "lint", "--dir", str(prompts.directory))
    assert result.code == 1 and "changed since it was approved" in result.stderr
    # Re-approving the same version with different text is refused too: bump the version.
    with pytest.raises(PromptError, match="already approved with different content"):
        prompts.approve("copilot_system", by="mallory")


def test_a_new_version_is_a_draft_until_approved(prompts: Registry, cli) -> None:
    template = prompts.load("sql_generate").template
    _edit(prompts, "sql_generate", version="1.1.0", status="draft", approved_by=None, approved_on=None,
          template=template + "Prefer CTEs over nested subqueries.\n",
          changelog=[{"version": "1.1.0", "change": "Prefer CTEs."}, {"version": "1.0.0", "change": "First."}])
    with pytest.raises(PromptError, match="sql_generate@1.1.0 is a draft"):
        prompts.load("sql_generate")
    assert prompts.load("sql_generate", allow_draft=True).version == "1.1.0"
    assert prompts.lint() == []  # a draft needs no lock entry
    diff = cli("prompts", "diff", "sql_generate", "--dir", str(prompts.directory))
    assert diff.code == 0 and "+  Prefer CTEs over nested subqueries." in diff.stdout
    assert cli("prompts", "approve", "sql_generate", "--by", "governance-lead", "--dir", str(prompts.directory)).code == 0
    assert prompts.load("sql_generate").ref == "sql_generate@1.1.0"
    lock = json.loads((prompts.directory / "prompts.lock").read_text())
    assert {"sql_generate@1.0.0", "sql_generate@1.1.0"} <= set(lock)
    assert (prompts.directory / "archive" / "sql_generate@1.1.0.yaml").exists()


def test_lint_catches_undeclared_variables_and_bad_files(prompts: Registry) -> None:
    _edit(prompts, "contract_describe", status="draft", template="Describe {table} and {secret}.")
    (prompts.directory / "broken.yaml").write_text("id: broken\nversion: one\n")
    problems = [str(p) for p in prompts.lint()]
    assert any("differ from the template's" in p for p in problems)
    assert any(p.startswith("broken.yaml: The prompt file") for p in problems)


def test_cli_show_and_unknown_prompt(cli) -> None:
    shown = cli("prompts", "show", "copilot_system", "--json")
    assert shown.code == 0 and json.loads(shown.stdout)["ref"] == "copilot_system@1.0.0"
    missing = cli("prompts", "show", "copilot_sistem")
    assert missing.code == 1 and "Did you mean 'copilot_system'" in missing.stderr
