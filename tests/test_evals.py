"""`meshpilot evals run`: the offline suites pass from a fresh demo, and a worse input makes them fail."""

import json
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

from meshpilot.evals import runner
from meshpilot.evals.runner import SUITES, load_suite


def test_every_suite_has_at_least_25_cases() -> None:
    for name in ("retrieval", "sql_offline", "lineage", "guardrails", "routing", "answers"):
        assert len(load_suite(name)) >= 25, name
    from meshpilot.evals.scenarios import SCENARIOS

    assert len(SCENARIOS) >= 25


def test_all_offline_suites_pass_and_write_three_reports(cli, tmp_path: Path) -> None:
    result = cli("evals", "run", "--report", str(tmp_path / "report"), "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and set(report["suites"]) == set(SUITES)
    statuses = {(c["suite"], c["metric"]): c["status"] for c in report["checks"]}
    assert statuses[("agent", "faithfulness")] == "skipped"  # no judge: reported as skipped, never as passed
    assert statuses[("guardrails", "pii_leak_count")] == "pass"
    for name in ("evals.json", "evals.md", "evals.html"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert "| lineage | downstream_recall |" in (tmp_path / "report" / "evals.md").read_text()


def test_a_retriever_that_returns_nothing_fails(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from meshpilot.tools import catalog

    original = catalog.Catalog.search

    def nothing(self, *args, **kwargs):
        found = original(self, *args, **kwargs)
        found.hits = []
        return found

    monkeypatch.setattr(catalog.Catalog, "search", nothing)
    result = cli("evals", "run", "--suite", "retrieval", "--report", str(tmp_path))
    assert result.code == 1
    assert "retrieval.context_recall: 0.0 is below the threshold 0.85" in result.stderr


def test_an_offline_writer_that_drops_filters_fails(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from meshpilot.agents.sql_rules import OfflineSqlWriter

    monkeypatch.setattr(OfflineSqlWriter, "_value_filters", lambda self, text, dataset: [])
    monkeypatch.setattr(OfflineSqlWriter, "_unaccounted", lambda self, text, dataset, query, negated: [])
    result = cli("evals", "run", "--suite", "sql", "--report", str(tmp_path))
    assert result.code == 1 and "sql.wrong_of_answered: " in result.stderr and "is above the threshold" in result.stderr


@pytest.mark.parametrize("broken", ["never proposes", "calls every text column a name"])
def test_a_broken_pii_classifier_fails(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str) -> None:
    from meshpilot.guardrails import classify

    def never(name, description, samples, type_="VARCHAR"):
        return None, "broken"

    def everything(name, description, samples, type_="VARCHAR"):
        return ("PERSON", "broken") if "CHAR" in type_.upper() else (None, "broken")

    monkeypatch.setattr(classify, "classify_column", never if broken == "never proposes" else everything)
    result = cli("evals", "run", "--suite", "contracts", "--report", str(tmp_path))
    assert result.code == 1
    metric = "classification_recall" if broken == "never proposes" else "classification_precision"
    assert f"contracts.{metric}: " in result.stderr and "is below the threshold" in result.stderr


def test_a_prompt_changed_without_a_version_bump_fails(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = tmp_path / "prompts"
    shutil.copytree(Path(str(files("meshpilot.prompts"))), prompts, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = prompts / "copilot_system.yaml"
    data = yaml.safe_load(path.read_text())
    data["template"] += "Always answer in French.\n"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("MESHPILOT_PROMPTS_DIR", str(prompts))
    from meshpilot.prompts import registry

    registry._default_registry.cache_clear()
    try:
        result = cli("evals", "run", "--suite", "agent", "--report", str(tmp_path / "report"))
    finally:
        registry._default_registry.cache_clear()
    assert result.code == 1 and "copilot_system@1.0.0 was refused" in result.stderr


def test_a_regression_against_the_baseline_fails(cli, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"suites": {"lineage": {"metrics": {"downstream_recall": 1.0}},
                                               "contracts": {"metrics": {"classification_recall": 1.5}}}}))
    result = cli("evals", "run", "--suite", "contracts", "--baseline", str(baseline), "--report", str(tmp_path / "r"))
    assert result.code == 1 and "contracts.classification_recall: regressed from 1.5 to 1.0" in result.stderr
    bad = cli("evals", "run", "--suite", "nope", "--report", str(tmp_path / "r"))
    assert bad.code == 1 and "Unknown eval suite(s): nope" in bad.stderr
    missing = cli("evals", "run", "--suite", "lineage", "--baseline", str(tmp_path / "none.json"))
    assert missing.code == 1 and "Cannot read the baseline" in missing.stderr


def test_changed_prompts_select_their_gating_suites(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    shutil.copytree(Path(str(files("meshpilot.prompts"))), prompts, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "prompts"], cwd=tmp_path, check=True)
    path = prompts / "sql_generate.yaml"
    path.write_text(path.read_text().replace("one SQL query", "one SQL query (carefully)"))
    assert runner.changed_prompt_suites("HEAD", prompts) == ["sql"]
    from meshpilot.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="Cannot list the prompts changed"):
        runner.changed_prompt_suites("no-such-ref", prompts)
