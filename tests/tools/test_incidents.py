"""Triage on scenarios with a known root cause, and incident updates."""

import json

import pytest
import yaml

from meshpilot.errors import InvalidArgumentError, NotFoundError
from meshpilot.evals.scenarios import add_failure, add_run
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools.incidents import Triage, list_incidents, update_incident

CLV = "mesh://customer/customer-lifetime-value/customer_lifetime_value"
CAMPAIGN = "mesh://marketing/campaign-performance/campaign_performance"
ORDERS = "mesh://commerce/orders/orders"


def test_the_demo_incident_names_the_planted_root_cause_first(demo_workspace: Workspace) -> None:
    report = Triage.open(demo_workspace).triage("INC-0003")
    top = report.candidates[0]
    assert top.kind == "source_data" and "crm.public.customers#email" in top.ref
    assert any("signup_date >= 2026-10-29" in e for e in top.evidence)
    assert report.check["id"] == "profile_email_not_null" and report.failing_since == 3
    assert report.blast_radius["products"] == ["mesh://customer/customer-lifetime-value",
                                               "mesh://marketing/campaign-performance"]
    assert report.owners[0]["team"] == "customer-insights" and report.owners[0]["oncall"]
    assert report.severity in ("SEV1", "SEV2") and report.severity_reasons
    assert report.next_steps and "crm.public.customers" in report.next_steps[0]


def test_an_upstream_schema_change_is_ranked_first(demo_workspace: Workspace) -> None:
    add_run(demo_workspace, "customer.build_customer_lifetime_value", "04:02", "04:09", retype="net_revenue")
    add_run(demo_workspace, "marketing.build_campaign_performance", "05:01", "05:08")
    add_failure(demo_workspace, CAMPAIGN, "campaign_roas_non_negative", "06:00")
    report = Triage.open(demo_workspace).triage("campaign_roas_non_negative")
    top = report.candidates[0]
    assert top.kind == "schema_change" and top.ref == CLV
    assert "net_revenue: DECIMAL(18,2) -> VARCHAR" in top.evidence[0]


def test_a_late_upstream_run_is_ranked_first(demo_workspace: Workspace) -> None:
    add_run(demo_workspace, "commerce.ingest_orders", "13:30", "13:41")
    add_failure(demo_workspace, CLV, "clv_net_revenue_non_negative", "14:00")
    report = Triage.open(demo_workspace).triage(f"Alert: check failed on {CLV}")
    top = report.candidates[0]
    assert top.kind == "late_run" and top.ref == ORDERS
    assert "after its usual time" in top.evidence[0]


def test_a_failing_upstream_check_is_ranked_first(demo_workspace: Workspace) -> None:
    add_failure(demo_workspace, ORDERS, "orders_amount_non_negative", "03:00")
    add_failure(demo_workspace, CLV, "clv_net_revenue_non_negative", "05:00")
    report = Triage.open(demo_workspace).triage("customer.customer_lifetime_value is failing")
    top = report.candidates[0]
    assert top.kind == "upstream_check" and top.ref == ORDERS
    assert "orders_amount_non_negative" in top.evidence[0]


def test_bad_references_are_clear(demo_workspace: Workspace) -> None:
    triage = Triage.open(demo_workspace)
    with pytest.raises(NotFoundError, match="No incident INC-9999"):
        triage.triage("what about INC-9999?")
    with pytest.raises(NotFoundError, match="Nothing in this workspace matches"):
        triage.triage("the moon is made of cheese")
    with pytest.raises(InvalidArgumentError, match="Say what to triage"):
        triage.triage("  ")


def test_updates_append_to_the_timeline(demo_workspace: Workspace, cli) -> None:
    before = yaml.safe_load((demo_workspace.root / "incidents" / "INC-0003.yaml").read_text())["timeline"]
    updated = update_incident(demo_workspace, "INC-0003", "grace", assignee="Grace Liu", note="Paging the CRM team.")
    assert updated.assignee == "Grace Liu"
    result = cli("incidents", "update", "INC-0003", "--status", "resolved", "--note", "CRM form fixed",
                 "--workspace", str(demo_workspace.root), "--role", "governance", "--json")
    assert result.code == 0
    after = yaml.safe_load((demo_workspace.root / "incidents" / "INC-0003.yaml").read_text())
    assert after["timeline"][:len(before)] == before  # history kept
    assert [e["action"] for e in after["timeline"][len(before):]] == ["assigned", "note", "resolved"]
    assert after["status"] == "resolved" and after["resolved_at"]
    assert [i["id"] for i in list_incidents(demo_workspace, "unresolved")] == []
    bad = cli("incidents", "update", "INC-0003", "--status", "sleeping", "--workspace", str(demo_workspace.root))
    assert bad.code == 1 and "Unknown incident status 'sleeping'" in bad.stderr
    assert "Nothing to update" in cli("incidents", "update", "INC-0003", "--workspace", str(demo_workspace.root)).stderr
    assert "No incident INC-7" in cli("incidents", "update", "INC-7", "--note", "x", "--workspace", str(demo_workspace.root)).stderr


def test_cli_triage(demo_workspace: Workspace, cli) -> None:
    result = cli("incidents", "triage", "INC-0003", "--workspace", str(demo_workspace.root), "--json")
    assert result.code == 0 and json.loads(result.stdout)["candidates"][0]["kind"] == "source_data"


def test_a_model_summary_keeps_only_claims_the_facts_hold(demo_workspace: Workspace) -> None:
    from langchain_core.messages import AIMessage

    from meshpilot.agents.llm import ScriptedChatModel
    from meshpilot.tools.incidents import summarize

    report = Triage.open(demo_workspace).triage("INC-0003")
    model = ScriptedChatModel(script=[AIMessage(content=(
        "INC-0003 is SEV2: profile_email_not_null fails on mesh://customer/customer-profile/customer_profile. "
        "The cause is the CRM source postgres://crm-db.internal:5432/crm.public.customers#email. "
        "It also broke mesh://finance/ledger/ledger and 9999 customers."))])
    result = summarize(report, model)
    assert "crm.public.customers" in result["summary"] and "ledger" not in result["summary"]
    [dropped] = result["unsupported"]
    assert "mesh://finance/ledger/ledger" in dropped["not_in_facts"] and "9999" in dropped["not_in_facts"]
    assert result["prompt"] == "triage_summary@1.0.0"
    assert "Facts:" in model.received[0][0].content  # the governed prompt, rendered with the facts
