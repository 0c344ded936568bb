import pytest

from meshpilot.errors import InvalidArgumentError, NotFoundError
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools import lineage

PROFILE = "mesh://customer/customer-profile/customer_profile"
CLV = "mesh://customer/customer-lifetime-value/customer_lifetime_value"
CAMPAIGNS = "mesh://marketing/campaign-performance/campaign_performance"


def _by(result, kind: str) -> dict[str, str]:
    return {i.ref: i.status for i in result.items if i.kind == kind}


def test_dropping_email_breaks_clv_and_campaigns_with_owners_contracts_and_paths(demo_workspace: Workspace) -> None:
    result = lineage.impact(f"{PROFILE}#email", change="drop", workspace=demo_workspace)
    assert _by(result, "product") == {"mesh://customer/customer-lifetime-value": "broken",
                                      "mesh://marketing/campaign-performance": "broken"}
    assert _by(result, "team") == {"team:customer-insights": "broken", "team:marketing-analytics": "broken"}
    assert _by(result, "contract") == {"contracts/customer.customer-lifetime-value.odcs.yaml": "broken",
                                       "contracts/marketing.campaign-performance.odcs.yaml": "broken"}
    columns = _by(result, "column")
    assert columns[f"{CLV}#contactable"] == "broken" and columns[f"{CAMPAIGNS}#customers_targeted"] == "broken"
    assert columns[f"{CLV}#net_revenue"] == "unaffected"
    targeted = next(i for i in result.items if i.ref == f"{CAMPAIGNS}#customers_targeted")
    assert len(targeted.path) == 2 and targeted.path[0].startswith(f"{PROFILE}#email -[DIRECT TRANSFORMATION")
    assert "classDef broken" in result.mermaid and "customers_targeted" in result.mermaid
    assert result.citations[0] == f"{PROFILE}#email"


def test_a_dropped_filter_column_puts_the_reader_and_all_it_feeds_at_risk(demo_workspace: Workspace) -> None:
    result = lineage.impact("mesh://commerce/orders/orders#status", change="drop", workspace=demo_workspace)
    # The filter decides which rows CLV holds: every column of it, and what is built from them, may change.
    assert _by(result, "dataset") == {CLV: "at_risk", CAMPAIGNS: "at_risk"}
    clv = next(i for i in result.items if i.ref == CLV and i.kind == "dataset")
    assert "filters on mesh://commerce/orders/orders#status: all its rows may change" in clv.reason
    # What is written from a dataset that changes as a whole changes as a whole: named once, as a dataset.
    campaigns = next(i for i in result.items if i.ref == CAMPAIGNS and i.kind == "dataset")
    assert campaigns.status == "at_risk" and len(campaigns.path) == 2 and "(all its rows)" in campaigns.path[0]
    assert "build_campaign_performance reads " + CLV in campaigns.reason
    assert not any(i.kind == "column" for i in result.items)


def test_a_type_change_breaks_identity_copies_and_risks_transformations(demo_workspace: Workspace) -> None:
    identity = lineage.impact(f"{PROFILE}#customer_id", change="type", workspace=demo_workspace)
    assert _by(identity, "column")[f"{CLV}#customer_id"] == "broken"
    aggregated = lineage.impact("mesh://commerce/orders/orders#amount", change="type", workspace=demo_workspace)
    assert _by(aggregated, "column")[f"{CLV}#gross_revenue"] == "at_risk"


def test_semantics_and_plain_impact(demo_workspace: Workspace) -> None:
    semantics = lineage.impact(f"{PROFILE}#email", change="semantics", workspace=demo_workspace)
    assert set(_by(semantics, "product").values()) == {"at_risk"}
    plain = lineage.impact(PROFILE, workspace=demo_workspace)
    assert set(_by(plain, "product")) == {"mesh://customer/customer-lifetime-value", "mesh://marketing/campaign-performance"}
    assert set(_by(plain, "product").values()) == {"affected"}


def test_depth_limits_the_walk(demo_workspace: Workspace) -> None:
    result = lineage.impact(f"{PROFILE}#email", change="drop", depth=1, workspace=demo_workspace)
    assert set(_by(result, "product")) == {"mesh://customer/customer-lifetime-value"}


def test_upstream_and_paths(demo_workspace: Workspace) -> None:
    sources = lineage.upstream(f"{CAMPAIGNS}#customers_targeted", workspace=demo_workspace)
    refs = {i.ref for i in sources.items}
    assert f"{PROFILE}#email" in refs and "postgres://crm-db.internal:5432/crm.public.customers#email" in refs
    routes = lineage.paths(f"{PROFILE}#email", CAMPAIGNS, workspace=demo_workspace)
    assert routes.counts == {"paths": 1} and len(routes.items[0].path) == 2
    assert routes.mermaid.startswith("graph LR")


@pytest.mark.parametrize(("urn", "kwargs", "error", "text"), [
    (f"{PROFILE}#emial", {}, NotFoundError, "did you mean 'email'"),
    ("mesh://customer/nothing/here", {}, NotFoundError, "No dataset"),
    ("mesh://customer/customer-profile", {}, InvalidArgumentError, "names a product"),
    ("no_such_table", {}, NotFoundError, "No dataset 'no_such_table' in this workspace's catalog or lineage"),
    (PROFILE, {"change": "explode"}, InvalidArgumentError, "Unknown change"),
])
def test_bad_inputs_are_named(demo_workspace: Workspace, urn, kwargs, error, text) -> None:
    with pytest.raises(error) as info:
        lineage.impact(urn, workspace=demo_workspace, **kwargs)
    assert text.lower() in (info.value.message + " " + (info.value.hint or "")).lower()
