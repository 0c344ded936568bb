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
from tests.conftest import SHARED_DATA, shared


def test_every_suite_has_at_least_25_cases() -> None:
    for name in ("retrieval", "sql_offline", "lineage", "guardrails", "routing", "answers", "routing_phrasings"):
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
    if (SHARED_DATA / "spider_dev").is_dir():  # CI has it: there the Spider checks run, never skip
        assert statuses[("schema_linking", "spider_db_at_1")] == "pass"
        assert statuses[("guardrails", "real_name_recall")] == "pass"
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


def test_a_search_without_synonyms_fails_the_paraphrases(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from meshpilot.tools import thesaurus

    monkeypatch.setattr(thesaurus.Thesaurus, "expand", lambda self, terms: list(terms))
    result = cli("evals", "run", "--suite", "retrieval", "--report", str(tmp_path))
    assert result.code == 1
    assert "retrieval.paraphrase_recall_at_5: " in result.stderr and "is below the threshold 0.6" in result.stderr


def test_a_validator_that_trusts_column_names_fails(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from meshpilot.tools import sql_validation

    original = sql_validation.qualify
    monkeypatch.setattr(sql_validation, "qualify", lambda *a, **kw: original(*a, **{**kw, "validate_qualify_columns": False}))
    result = cli("evals", "run", "--suite", "sql_validation", "--report", str(tmp_path))
    assert result.code == 1
    assert "sql_validation.mutant_rejected_rate: " in result.stderr and "is below the threshold 1.0" in result.stderr


def test_a_triage_blind_to_when_things_happened_fails(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With distractors (a schema change or check failure after the failure began, a late run a week before),
    a triage that weighs every event alike ranks one of them first."""
    from meshpilot.tools import incidents

    monkeypatch.setattr(incidents, "_timing", lambda when, since: 1.0)
    result = cli("evals", "run", "--suite", "triage", "--report", str(tmp_path))
    assert result.code == 1
    assert "triage.root_cause_hit_at_1: " in result.stderr and "is below the threshold 0.85" in result.stderr


def test_a_pii_detector_that_misses_names_fails_on_real_text(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared("ner_real_names")
    from meshpilot.guardrails import pii

    original = pii.analyze
    monkeypatch.setattr(pii, "analyze", lambda text, *a, **kw: [f for f in original(text, *a, **kw)
                                                                 if f.entity_type != "PERSON" or f.text[:1].islower()])
    result = cli("evals", "run", "--suite", "guardrails", "--report", str(tmp_path))
    assert result.code == 1 and "guardrails.real_name_recall: " in result.stderr


def test_an_impact_analysis_that_stops_at_the_first_hop_fails(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from meshpilot.tools import lineage_reach

    original = lineage_reach.LineageArrays.walk
    monkeypatch.setattr(lineage_reach.LineageArrays, "walk", lambda self, hops, start, depth: original(self, hops, start, 1))
    result = cli("evals", "run", "--suite", "lineage", "--report", str(tmp_path))
    assert result.code == 1 and "lineage.downstream_recall: " in result.stderr


def test_a_detector_blind_to_field_names_fails(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from meshpilot.guardrails import pii

    monkeypatch.setattr(pii, "structured_names", lambda text: [])
    result = cli("evals", "run", "--suite", "guardrails", "--report", str(tmp_path))
    assert result.code == 1 and "guardrails.structured_name_recall: " in result.stderr


def test_an_offline_writer_that_drops_filters_fails(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from meshpilot.agents.sql_rules import OfflineSqlWriter

    monkeypatch.setattr(OfflineSqlWriter, "_value_filters", lambda self, text, dataset: [])
    monkeypatch.setattr(OfflineSqlWriter, "_unaccounted", lambda self, text, dataset, query, negated: [])
    result = cli("evals", "run", "--suite", "sql", "--report", str(tmp_path))
    assert result.code == 1 and "sql.wrong_of_answered: " in result.stderr and "is above the threshold" in result.stderr


def test_a_linker_that_ranks_tables_by_name_alone_fails(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a table's own name and description, no columns, product or foreign keys: the demo's five tables
    still link (their names say it all), Spider's 876 do not: all the tables a question needs are in its top
    10 for 0.92 of the questions (0.97 with every signal)."""
    shared("spider_dev")
    from meshpilot.tools import linking

    def by_name(index, question, neighbours, k):
        datasets = index.kinds["dataset"]
        scores = index._own_scores(datasets, list(index.tokenizer(question)))
        rows = [int(r) for r in scores.argsort()[::-1][:k] if scores[r] > 0]
        return [(r, float(scores[r])) for r in rows], []

    monkeypatch.setattr(linking, "rank_tables", by_name)
    result = cli("evals", "run", "--suite", "schema_linking", "--report", str(tmp_path))
    assert result.code == 1
    assert "schema_linking.spider_recall_at_10: " in result.stderr and "is below the threshold 0.95" in result.stderr


def test_a_spider_folder_that_is_not_one_is_named(cli, tmp_path: Path) -> None:
    result = cli("evals", "run", "--suite", "schema_linking", "--spider", str(tmp_path), "--report", str(tmp_path / "r"))
    assert result.code == 1 and f"{tmp_path} is not a Spider folder: it has no tables.json or dev.json" in result.stderr


def test_a_router_that_knows_only_exact_names_fails_the_held_out_phrasings(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without fuzzy names, acronyms and the product behind a described column, the held-out split drops
    below its bar while the suite written with the rules still passes: the held-out metric is the measure."""
    from meshpilot.agents import offline

    monkeypatch.setattr(offline.Router, "_fuzzy_product", lambda self, lowered: None)
    monkeypatch.setattr(offline.Router, "_product_by_search", lambda self, text: None)
    monkeypatch.setattr(offline._Names, "of", classmethod(lambda cls, catalog: _exact_names(catalog)))
    result = cli("evals", "run", "--suite", "agent", "--report", str(tmp_path))
    assert result.code == 1
    assert "agent.heldout_tool_call_accuracy: " in result.stderr and "agent.tool_call_accuracy" not in result.stderr


def _exact_names(catalog):
    from meshpilot.agents.offline import _Names

    products, datasets, columns = {}, {}, {}
    for ref, product in catalog.products.items():
        products[product.name.lower()] = products[product.id.lower()] = ref
        for dataset in product.datasets:
            dref = str(product.dataset_ref(dataset.name))
            datasets[dataset.qualified_name.lower()] = datasets[dataset.name.lower()] = dref
            columns[dref] = [c.name for c in dataset.columns]
    return _Names(products, datasets, columns)


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
