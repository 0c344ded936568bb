"""The `meshpilot` command line, through its real entry point."""

import json
from pathlib import Path

from tests.conftest import shared


def test_demo_builds_and_lists_five_products_in_three_domains(cli, tmp_path: Path) -> None:
    result = cli("demo", "--workspace", tmp_path / "ws", "--json")
    assert result.code == 0, result
    products = json.loads(result.stdout)
    assert len(products) == 5
    assert {p["domain"] for p in products} == {"commerce", "customer", "marketing"}


def test_the_workspace_comes_from_the_environment(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MESHPILOT_WORKSPACE", str(tmp_path / "env-ws"))
    assert cli("demo").code == 0
    result = cli("products", "list", "--json")
    assert result.code == 0 and len(json.loads(result.stdout)) == 5


def test_products_list_as_a_table(cli, tmp_path: Path) -> None:
    cli("demo", "-w", tmp_path / "ws")
    result = cli("products", "list", "-w", tmp_path / "ws", "--domain", "customer")
    assert result.code == 0
    assert "customer-lifetime-value" in result.stdout and "orders" not in result.stdout


def test_products_show(cli, tmp_path: Path) -> None:
    cli("demo", "-w", tmp_path / "ws")
    result = cli("products", "show", "customer-profile", "-w", tmp_path / "ws")
    assert result.code == 0, result
    for text in ("mesh://customer/customer-profile", "EMAIL_ADDRESS", "profile_email_not_null", "INC-0003",
                 "mesh://customer/customer-lifetime-value"):
        assert text in result.stdout
    details = json.loads(cli("products", "show", "mesh://commerce/orders", "-w", tmp_path / "ws", "--json").stdout)
    assert details["owner_team"]["name"] == "Commerce Data"


def test_a_missing_workspace_is_one_clear_message(cli, tmp_path: Path) -> None:
    result = cli("products", "list", "--workspace", tmp_path / "nothing-here")
    assert result.code == 1
    assert result.stderr.startswith("error: No workspace at")
    assert "meshpilot demo" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_product_suggests_a_close_one(cli, tmp_path: Path) -> None:
    cli("demo", "-w", tmp_path / "ws")
    result = cli("products", "show", "retuns", "-w", tmp_path / "ws")
    assert result.code == 1
    assert "No product 'retuns'" in result.stderr and "returns" in result.stderr


def test_demo_refuses_to_overwrite_without_force(cli, tmp_path: Path) -> None:
    cli("demo", "-w", tmp_path / "ws")
    result = cli("demo", "-w", tmp_path / "ws")
    assert result.code == 1 and "already holds a workspace" in result.stderr
    assert cli("demo", "-w", tmp_path / "ws", "--force").code == 0


def test_demo_force_never_deletes_a_workspace_that_is_not_the_demo(cli, tmp_path: Path) -> None:
    assert cli("init", "-w", tmp_path / "mine").code == 0
    result = cli("demo", "-w", tmp_path / "mine", "--force")
    assert result.code == 1 and "not the demo" in result.stderr
    assert (tmp_path / "mine" / "meshpilot.yaml").exists()


def test_an_invalid_workspace_lists_every_problem_with_file_and_line(cli, tmp_path: Path) -> None:
    cli("demo", "-w", tmp_path / "ws")
    product = tmp_path / "ws" / "products" / "commerce.orders.yaml"
    product.write_text(product.read_text().replace("column: amount", "column: amount_eur"))
    result = cli("validate", "-w", tmp_path / "ws")
    assert result.code == 1
    assert "products/commerce.orders.yaml:" in result.stderr and "no column 'amount_eur'" in result.stderr
    assert "Traceback" not in result.stderr


def test_imports_from_the_command_line(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert cli("init", "-w", ws).code == 0
    result = cli("import", "openmetadata", shared("openmetadata_sample_data"), "-w", ws, "--json")
    assert result.code == 0, result
    assert json.loads(result.stdout)["imported"]["datasets"] == 16
    datasets = json.loads(cli("datasets", "list", "-w", ws, "--json").stdout)
    assert len(datasets) == 16
    dbt = cli("import", "dbt", shared("jaffle_shop_dbt_manifest_openlineage/integration/common/tests/dbt/duckdb/target"),
              "-w", ws)
    assert dbt.code == 0 and "5 datasets" in dbt.stdout
    lineage = cli("import", "openlineage", shared("openlineage/spec/tests/example_full_event.json"), "-w", ws)
    assert lineage.code == 0 and "1 lineage events" in lineage.stdout
    assert len(json.loads(cli("products", "list", "-w", ws, "--json").stdout)) == 2


def test_a_bad_import_exits_1_with_the_reason(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    cli("init", "-w", ws)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"eventType": "START"}\n')
    result = cli("import", "openlineage", bad, "-w", ws)
    assert result.code == 1
    assert f"{bad}:1: missing required field 'eventTime'" in result.stderr.replace("\n", "")


def test_usage_errors_exit_2(cli, tmp_path: Path) -> None:
    result = cli("import", "openmetadata", "-w", tmp_path)
    assert result.code in (1, 2)
    assert cli("products", "frobnicate").code == 2


def test_search_from_the_command_line(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    cli("demo", "-w", ws)
    result = cli("search", "where do we keep customer email addresses", "-w", ws, "--json")
    assert result.code == 0, result
    refs = [h["ref"] for h in json.loads(result.stdout)["hits"]]
    assert "mesh://customer/customer-profile/customer_profile#email" in refs[:3]
    table = cli("search", "refund", "-w", ws, "--kind", "column", "-k", "2")
    assert table.code == 0 and "refund_amount" in table.stdout
    assert "no search index yet" not in table.stderr  # built by the first search


def test_search_errors_are_one_clear_line(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    cli("demo", "-w", ws)
    unknown = cli("search", "email", "-w", ws, "--domain", "custmer")
    assert unknown.code == 1 and "No domain 'custmer'" in unknown.stderr and "customer" in unknown.stderr
    empty = cli("search", "", "-w", ws)
    assert empty.code == 1 and "empty" in empty.stderr


def test_link_schema_and_dataset_details_from_the_command_line(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    cli("demo", "-w", ws)
    link = json.loads(cli("link-schema", "refund amount of returned orders", "-w", ws, "--json").stdout)
    assert "mesh://commerce/returns/returns" in [t["ref"] for t in link["tables"]]
    shown = cli("datasets", "show", "mesh://commerce/orders/orders", "-w", ws)
    assert shown.code == 0 and "commerce.orders" in shown.stdout and "orders_amount_non_negative" in shown.stdout
    missing = cli("datasets", "show", "mesh://commerce/orders/order", "-w", ws)
    assert missing.code == 1 and "Did you mean mesh://commerce/orders/orders" in missing.stderr.replace("\n", "")


def test_sql_commands(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    cli("demo", "-w", ws)
    bad = cli("sql", "validate", "select emial from customer.customer_profile", "-w", ws)
    assert bad.code == 1 and "did you mean email" in bad.stderr
    good = cli("sql", "validate", "select count(*) from commerce.returns", "-w", ws, "--json")
    assert good.code == 0 and json.loads(good.stdout)["tables"] == ["mesh://commerce/returns/returns"]
    ran = cli("sql", "run", "select status, count(*) n from commerce.orders group by 1 order by 2 desc", "-w", ws,
              "--json")
    assert json.loads(ran.stdout)["rows"][0] == ["completed", 4863]
    as_csv = cli("sql", "run", "select order_id from commerce.orders order by 1", "-w", ws, "--csv", "--limit", "2")
    assert as_csv.stdout.splitlines() == ["order_id", "O000001", "O000002"]
    refused = cli("sql", "run", "copy commerce.orders to '/tmp/x.csv'", "-w", ws)
    assert refused.code == 1 and "only queries may run" in refused.stderr.replace("\n", " ")
    moved = cli("sql", "transpile", "select date_trunc('month', order_date) from commerce.orders", "--to", "bigquery")
    assert "TRUNC(order_date, MONTH)" in moved.stdout


def test_sql_ask_from_the_command_line(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    cli("demo", "-w", ws)
    asked = cli("sql", "ask", "how many orders were returned last month", "-w", ws, "--json")
    assert asked.code == 0, asked
    answer = json.loads(asked.stdout)
    assert answer["sql"].startswith("SELECT COUNT(*)") and answer["result"]["columns"] == ["n"]
    assert "mesh://commerce/returns/returns" in answer["citations"]
    shown = cli("sql", "ask", "average order amount by channel", "-w", ws)
    assert shown.code == 0 and "avg_amount" in shown.stdout and "sources: mesh://commerce/orders/orders" in shown.stdout
    refused = cli("sql", "ask", "ratio of returns to orders", "-w", ws)
    assert refused.code == 1 and "Configure a model" in refused.stdout.replace("\n", " ")


def test_lineage_commands(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    cli("demo", "-w", ws)
    breaking = cli("lineage", "impact", "mesh://customer/customer-profile/customer_profile#email", "--change", "drop",
                   "-w", ws, "--json")
    assert breaking.code == 2  # breaking changes gate CI
    products = {i["ref"] for i in json.loads(breaking.stdout)["items"] if i["kind"] == "product"}
    assert products == {"mesh://customer/customer-lifetime-value", "mesh://marketing/campaign-performance"}
    diagram = cli("lineage", "impact", "mesh://commerce/orders/orders", "-w", ws, "--mermaid")
    assert diagram.code == 0 and diagram.stdout.startswith("graph LR")
    assert cli("lineage", "upstream", "mesh://marketing/campaign-performance/campaign_performance", "-w", ws).code == 0
    # The table shows each hop as written ("-[read by <job>]->", not eaten as markup), the first --limit items, and
    # how many more were counted.
    table = cli("lineage", "impact", "mesh://commerce/orders/orders#status", "--change", "drop", "-w", ws, "--limit", "5")
    assert "-[read by" in table.stdout
    assert "+9 more (counted:" in table.stdout
    routes = cli("lineage", "paths", "mesh://commerce/orders/orders", "mesh://marketing/campaign-performance/campaign_performance",
                 "-w", ws, "--json")
    assert json.loads(routes.stdout)["counts"]["paths"] >= 1


def test_contract_commands_gate_ci(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    cli("demo", "-w", ws)
    contracts = sorted(str(p) for p in (ws / "contracts").glob("*.yaml"))
    assert cli("contracts", "lint", *contracts).code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v3.0.2\nkind: DataContract\n")
    linted = cli("contracts", "lint", str(bad))
    assert linted.code == 1 and "required property" in linted.stdout
    diff = cli("contracts", "diff", shared("datacontract_cli/tests/fixtures/changelog/integration/changelog_integration_v1.yaml"),
               shared("datacontract_cli/tests/fixtures/changelog/integration/changelog_integration_v2.yaml"), "--json")
    assert diff.code == 2 and json.loads(diff.stdout)["counts"]["ERROR"] == 2


def test_contract_draft_and_test_from_the_command_line(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    cli("demo", "-w", ws)
    target = tmp_path / "draft.yaml"
    assert cli("contracts", "draft", "returns", "-w", ws, "--output", target).code == 0
    assert cli("contracts", "lint", str(target)).code == 0
    again = cli("contracts", "draft", "returns", "-w", ws, "--output", target)
    assert again.code == 1 and "not overwriting" in again.stderr
    tested = cli("contracts", "test", ws / "contracts" / "customer.customer-profile.odcs.yaml", "-w", ws, "--json")
    assert tested.code == 1 and json.loads(tested.stdout)["counts"]["fail"] == 1


def test_the_access_policy_applies_on_the_command_line(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    cli("demo", "-w", ws)
    refused = cli("sql", "run", "select email from customer.customer_profile", "-w", ws)  # default role: analyst
    assert refused.code == 1 and "holds personal data" in refused.stderr.replace("\n", " ")
    allowed = cli("sql", "run", "select email from customer.customer_profile", "-w", ws, "--role", "governance",
                  "--limit", "1", "--json")
    assert allowed.code == 0 and json.loads(allowed.stdout)["row_count"] == 1
    hidden = cli("search", "orders", "-w", ws, "--role", "data-product-owner", "--team", "marketing-analytics", "--json")
    assert all(h["domain"] == "marketing" for h in json.loads(hidden.stdout)["hits"])
