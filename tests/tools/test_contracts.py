from pathlib import Path

import pytest
import yaml

from meshpilot.errors import InvalidArgumentError, MeshpilotError
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools.contracts import diff_contract, lint_contract
from tests.conftest import shared

CHANGELOG = "datacontract_cli/tests/fixtures/changelog"


def test_every_odcs_example_lints_clean() -> None:
    examples = sorted(shared("odcs/docs/examples").rglob("*.y*ml"))
    assert len(examples) == 18
    failing = {str(p): [f.message for f in r.findings if f.severity == "error"]
               for p in examples if not (r := lint_contract(p)).ok}
    assert failing == {}


def test_an_invalid_fixture_fails_with_a_specific_message_and_line() -> None:
    result = lint_contract(shared("datacontract_cli/tests/fixtures/lint/invalid.odcs.yaml"))
    assert not result.ok
    error = next(f for f in result.findings if f.severity == "error")
    assert "'status' is a required property" in error.message and error.line == 1


def test_semantic_checks_have_lines(tmp_path: Path) -> None:
    contract = {"apiVersion": "v3.1.0", "kind": "DataContract", "id": "c", "version": "1.0.0", "status": "active",
                "schema": [{"name": "people", "logicalType": "object", "properties": [
                    {"name": "email", "logicalType": "string"},
                    {"name": "score", "logicalType": "number", "physicalType": "SUPERFLOAT"}]}]}
    path = tmp_path / "c.odcs.yaml"
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    result = lint_contract(path)
    assert result.ok  # warnings only
    messages = {f.message: f.line for f in result.findings}
    assert any("'email' looks like personal data" in m and line for m, line in messages.items())
    assert any("no owner" in m for m in messages) and any("no SLA" in m for m in messages)
    assert any("SUPERFLOAT" in m for m in messages)


def test_not_yaml_or_missing_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("schema: [unclosed\n")
    with pytest.raises(MeshpilotError, match="not a YAML document"):
        lint_contract(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(MeshpilotError, match="not a mapping"):
        lint_contract(tmp_path / "list.yaml")
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        lint_contract(tmp_path / "nothing.yaml")


def test_diff_classifies_from_the_consumers_point_of_view() -> None:
    result = diff_contract(shared(f"{CHANGELOG}/integration/changelog_integration_v1.yaml"),
                           shared(f"{CHANGELOG}/integration/changelog_integration_v2.yaml"))
    by_path = {c.path: c.severity for c in result.changes}
    assert by_path["schema.orders.properties.customer_id"] == "ERROR"  # removed
    assert by_path["schema.orders.properties.order_date.logicalType"] == "ERROR"  # retyped
    assert by_path["slaProperties.availability"] == "WARNING"  # 99.9% -> 99.5%
    assert by_path["schema.customers"] == "INFO" and by_path["schema.orders.properties.region"] == "INFO"
    assert result.breaking and result.counts["ERROR"] == 2


def test_a_breaking_change_lists_what_it_breaks_downstream(demo_workspace: Workspace, tmp_path: Path) -> None:
    old = demo_workspace.root / "contracts" / "customer.customer-profile.odcs.yaml"
    contract = yaml.safe_load(old.read_text())
    contract["schema"][0]["properties"] = [p for p in contract["schema"][0]["properties"] if p["name"] != "email"]
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump(contract, sort_keys=False))
    result = diff_contract(old, new, workspace=demo_workspace)
    removed = next(c for c in result.changes if c.path == "schema.customer_profile.properties.email")
    assert removed.severity == "ERROR"
    assert "product mesh://marketing/campaign-performance" in removed.breaks
    assert "team team:customer-insights" in removed.breaks


def test_the_demo_contracts_lint_clean(demo_workspace: Workspace) -> None:
    for path in sorted((demo_workspace.root / "contracts").glob("*.yaml")):
        result = lint_contract(path)
        assert result.ok and not [f for f in result.findings if "personal data" in f.message], result.findings


def test_drafts_lint_clean_and_classify_pii(demo_workspace: Workspace, tmp_path: Path) -> None:
    from meshpilot.tools.contracts import draft_contract

    for product in ("orders", "returns", "customer-profile", "customer-lifetime-value", "campaign-performance"):
        contract = draft_contract(product, demo_workspace)
        path = tmp_path / f"{product}.yaml"
        path.write_text(yaml.safe_dump(contract, sort_keys=False))
        assert lint_contract(path).ok, product
    profile = draft_contract("mesh://customer/customer-profile/customer_profile", demo_workspace)
    email = next(p for p in profile["schema"][0]["properties"] if p["name"] == "email")
    assert email["classification"] == "EMAIL_ADDRESS" and "required" not in email  # 60 nulls were observed
    status = next(p for p in draft_contract("orders", demo_workspace)["schema"][0]["properties"] if p["name"] == "status")
    assert {"completed", "shipped", "pending", "cancelled"} == set(
        next(r for r in status["quality"] if r["metric"] == "invalidValues")["arguments"]["validValues"])
    assert profile["team"]["name"] == "Customer Insights"


def test_contract_tests_report_failing_rows_with_pii_masked(demo_workspace: Workspace) -> None:
    from meshpilot.tools.contracts import test_contract

    result = test_contract(demo_workspace.root / "contracts" / "customer.customer-profile.odcs.yaml", demo_workspace)
    assert not result.ok
    failed = next(r for r in result.results if r.status == "fail")
    assert (failed.property, failed.rule, failed.observed) == ("email", "nullValues", 60)
    row = failed.failing_rows[0]
    assert row["email"] is None and row["first_name"].endswith("***") and len(row["first_name"]) == 4
    orders = test_contract(demo_workspace.root / "contracts" / "commerce.orders.odcs.yaml", demo_workspace)
    assert orders.ok and orders.counts["pass"] >= 5


def test_diff_covers_every_change_in_datacontract_clis_golden_changelog() -> None:
    golden = shared(f"{CHANGELOG}/golden_changelog_text.txt").read_text()
    summary = golden.split("Details")[0]
    fields = [line.split("│")[2].strip() for line in summary.splitlines()
              if line.startswith("│") and line.split("│")[1].strip() in ("Added", "Removed", "Updated")]
    assert len(fields) == 8
    result = diff_contract(shared(f"{CHANGELOG}/integration/changelog_integration_v1.yaml"),
                           shared(f"{CHANGELOG}/integration/changelog_integration_v2.yaml"))
    ours = [c.path for c in result.changes]
    missing = [f for f in fields if not any(p == f or p.startswith(f + ".") for p in ours)]
    assert missing == []


def test_diff_on_pairs_derived_from_the_odcs_examples(tmp_path: Path) -> None:
    derived = 0
    for path in sorted(shared("odcs/docs/examples").rglob("*.y*ml")):
        contract = yaml.safe_load(path.read_text())
        objects = [o for o in contract.get("schema") or [] if o.get("properties")]
        if not objects:
            continue
        derived += 1
        first = objects[0]
        removed = yaml.safe_load(path.read_text())
        target = next(o for o in removed["schema"] if o.get("name") == first["name"])
        gone = target["properties"].pop(0)["name"]
        target["properties"].append({"name": "added_column", "logicalType": "string"})
        new = tmp_path / f"{path.stem}.v2.yaml"
        new.write_text(yaml.safe_dump(removed, sort_keys=False))
        result = diff_contract(path, new)
        by_path = {c.path: c.severity for c in result.changes}
        assert by_path[f"schema.{first['name']}.properties.{gone}"] == "ERROR", path.name
        assert by_path[f"schema.{first['name']}.properties.added_column"] == "INFO", path.name
        assert result.breaking
    assert derived >= 10


def test_a_model_writes_descriptions_but_never_adds_or_renames_columns(demo_workspace: Workspace, tmp_path: Path) -> None:
    import json

    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from meshpilot.tools.contracts import draft_contract

    product = demo_workspace.root / "products" / "commerce.returns.yaml"
    product.write_text(product.read_text().replace("      description: Return reason code.\n", ""))
    reply = {"reason": "Why the customer sent the order back.", "invented_column": "Should never appear.",
             "return_id": "Overwriting is not allowed."}
    model = GenericFakeChatModel(messages=iter([AIMessage(json.dumps(reply))]))
    contract = draft_contract("returns", demo_workspace, model=model)
    properties = {p["name"]: p for p in contract["schema"][0]["properties"]}
    assert properties["reason"]["description"] == "Why the customer sent the order back."
    assert "invented_column" not in properties
    assert properties["return_id"]["description"] == "Unique return identifier."
    assert {"property": "descriptionsBy", "value": "contract_describe@1.0.0"} in contract["customProperties"]
    path = tmp_path / "draft.yaml"
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    assert lint_contract(path).ok
