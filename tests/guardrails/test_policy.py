import pytest

from meshpilot.errors import InvalidArgumentError, InvalidWorkspaceError, NotFoundError
from meshpilot.guardrails.policy import Caller, Policy
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools import sql
from meshpilot.tools.catalog import Catalog
from meshpilot.tools.sql import SqlRejectedError

EMAILS = "SELECT email FROM customer.customer_profile"


def _guard(workspace: Workspace, role: str, team: str | None = None):
    return Policy.load(workspace).sql_guard(Caller(role=role, team=team))


def test_an_analyst_cannot_read_raw_emails_through_sql(demo_workspace: Workspace) -> None:
    with pytest.raises(SqlRejectedError) as info:
        sql.run_sql(EMAILS, workspace=demo_workspace, caller=_guard(demo_workspace, "analyst"))
    assert "may not read customer.customer_profile.email" in str(info.value.problems[0])
    allowed = sql.run_sql("SELECT country, count(*) FROM customer.customer_profile GROUP BY 1",
                          workspace=demo_workspace, caller=_guard(demo_workspace, "analyst"))
    assert allowed.row_count > 0
    assert sql.run_sql(EMAILS, workspace=demo_workspace, caller=_guard(demo_workspace, "governance"), limit=1).row_count == 1


def test_owners_read_only_their_own_domains(demo_workspace: Workspace) -> None:
    guard = _guard(demo_workspace, "data-product-owner", team="commerce-data")
    assert sql.run_sql("SELECT count(*) FROM commerce.orders", workspace=demo_workspace, caller=guard).row_count == 1
    with pytest.raises(SqlRejectedError, match="may not read customer.customer_profile"):
        sql.run_sql("SELECT count(*) FROM customer.customer_profile", workspace=demo_workspace, caller=guard)
    with pytest.raises(InvalidArgumentError, match="say which team"):
        _guard(demo_workspace, "data-product-owner")


def test_search_hides_domains_outside_the_role(demo_workspace: Workspace) -> None:
    domains = Policy.load(demo_workspace).domains(Caller(role="data-product-owner", team="marketing-analytics"))
    hits = Catalog.open(demo_workspace).search("customer revenue email orders", k=50, visible_domains=domains).hits
    assert hits and all(h.domain == "marketing" for h in hits)
    with pytest.raises(InvalidArgumentError, match="may not see the domain 'customer'"):
        Catalog.open(demo_workspace).search("email", domain="customer", visible_domains=domains)


def test_unknown_roles_and_broken_policies_are_named(demo_workspace: Workspace) -> None:
    with pytest.raises(NotFoundError, match="No role 'intern'"):
        _guard(demo_workspace, "intern")
    (demo_workspace.root / "policy.yaml").write_text("roles:\n  analyst:\n    pii: sometimes\n")
    with pytest.raises(InvalidWorkspaceError) as info:
        Policy.load(demo_workspace)
    assert info.value.problems[0].line == 3


def test_the_sql_loop_applies_the_callers_policy(demo_workspace: Workspace) -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from meshpilot.agents.sql_loop import SqlLoop
    from meshpilot.tools.sql import DuckDBEngine

    model = GenericFakeChatModel(messages=iter([AIMessage(EMAILS)] * 3))
    loop = SqlLoop(Catalog.open(demo_workspace), DuckDBEngine(demo_workspace.warehouse_path), model=model,
                   caller=_guard(demo_workspace, "analyst"))
    answer = loop.ask("list the customer e-mail addresses")
    assert answer.result is None and "holds personal data" in answer.problems[0]


def test_roles_limited_to_products_and_allowed_classifications(demo_workspace: Workspace) -> None:
    import yaml

    from meshpilot.agents.tools import SearchArgs, ToolContext, _search

    path = demo_workspace.root / "policy.yaml"
    policy = yaml.safe_load(path.read_text())
    policy["roles"]["orders-only"] = {"domains": "*", "products": ["mesh://commerce/orders"], "pii": "refuse"}
    policy["roles"]["geo-analyst"] = {"domains": "*", "pii": "refuse", "classifications": ["LOCATION"]}
    path.write_text(yaml.safe_dump(policy))
    orders_only = _guard(demo_workspace, "orders-only")
    assert sql.run_sql("SELECT count(*) FROM commerce.orders", workspace=demo_workspace, caller=orders_only).row_count == 1
    with pytest.raises(SqlRejectedError, match="product mesh://commerce/returns"):
        sql.run_sql("SELECT count(*) FROM commerce.returns", workspace=demo_workspace, caller=orders_only)
    hits = _search(ToolContext(demo_workspace, Caller(role="orders-only")), SearchArgs(query="refund amount returns orders", k=10))["hits"]
    assert hits and all(h["product"] == "orders" for h in hits)
    geo = _guard(demo_workspace, "geo-analyst")
    assert sql.run_sql("SELECT city, count(*) FROM customer.customer_profile GROUP BY 1", workspace=demo_workspace,
                       caller=geo).row_count > 0
    with pytest.raises(SqlRejectedError, match="EMAIL_ADDRESS"):
        sql.run_sql("SELECT email FROM customer.customer_profile", workspace=demo_workspace, caller=geo)


def test_pii_treatment_per_class(demo_workspace: Workspace) -> None:
    import yaml

    from meshpilot.tools import sql

    path = demo_workspace.root / "policy.yaml"
    policy = yaml.safe_load(path.read_text())
    policy["roles"]["support"] = {"domains": "*", "pii": {"EMAIL_ADDRESS": "mask", "LOCATION": "allow", "*": "refuse"}}
    path.write_text(yaml.safe_dump(policy))
    guard = Policy.load(demo_workspace).sql_guard(Caller("support"))
    result = sql.run_sql("SELECT email, city FROM customer.customer_profile ORDER BY customer_id LIMIT 1",
                         workspace=demo_workspace, caller=guard)
    assert result.rows[0][0].startswith("EMAIL_ADDRESS#") and result.rows[0][1] == "London"
    with pytest.raises(sql.SqlRejectedError, match="PHONE_NUMBER"):
        sql.run_sql("SELECT phone FROM customer.customer_profile", workspace=demo_workspace, caller=guard)
    assert not Policy.load(demo_workspace).may_read_pii(Caller("support"))  # answers are still redacted


def test_an_unknown_pii_treatment_is_a_clear_error(demo_workspace: Workspace) -> None:
    import yaml

    from meshpilot.errors import InvalidWorkspaceError

    path = demo_workspace.root / "policy.yaml"
    policy = yaml.safe_load(path.read_text())
    policy["roles"]["analyst"]["pii"] = "hide"
    path.write_text(yaml.safe_dump(policy))
    with pytest.raises(InvalidWorkspaceError) as invalid:
        Policy.load(demo_workspace)
    assert "policy.yaml" in str(invalid.value)
