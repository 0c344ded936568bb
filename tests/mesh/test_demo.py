import hashlib
import json
from pathlib import Path

import duckdb
import pytest
import yaml

from meshpilot.mesh.demo import build_demo
from meshpilot.mesh.lineage import column_edges
from meshpilot.mesh.workspace import Workspace
from tests.conftest import shared


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".duckdb"}


def _table_digest(warehouse: Path) -> dict[str, str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = [r[0] for r in con.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {t: str(con.execute(f"SELECT count(*), sum(hash(t)) FROM {t} t").fetchone()) for t in tables}


def test_the_demo_is_deterministic(pristine_demo: Path, tmp_path: Path) -> None:
    again = build_demo(tmp_path / "again").root
    assert _digest(again) == _digest(pristine_demo)
    assert _table_digest(again / "warehouse.duckdb") == _table_digest(pristine_demo / "warehouse.duckdb")


def test_the_portfolio_map(demo_workspace: Workspace) -> None:
    mesh = demo_workspace.load()
    assert {(p.domain, p.id) for p in mesh.products} == {
        ("commerce", "orders"), ("commerce", "returns"), ("customer", "customer-profile"),
        ("customer", "customer-lifetime-value"), ("marketing", "campaign-performance")}
    clv = mesh.product("customer", "customer-lifetime-value")
    assert set(clv.inputs) == {"mesh://commerce/orders", "mesh://commerce/returns", "mesh://customer/customer-profile"}
    for product in mesh.products:
        assert product.owner and product.description and product.contract and product.slos


def test_tables_hold_a_few_thousand_rows_and_the_profile_holds_pii(demo_workspace: Workspace) -> None:
    mesh = demo_workspace.load()
    with duckdb.connect(str(demo_workspace.warehouse_path), read_only=True) as con:
        for product in mesh.products:
            for dataset in product.datasets:
                count = con.execute(f"SELECT count(*) FROM {dataset.qualified_name}").fetchone()[0]
                assert count == dataset.row_count
        assert con.execute("SELECT count(*) FROM commerce.orders").fetchone()[0] >= 2000
        emails = con.execute("SELECT email FROM customer.customer_profile WHERE email IS NOT NULL LIMIT 5").fetchall()
        assert all("@" in e[0] for e in emails)
    profile = mesh.product("customer", "customer-profile").datasets[0]
    assert {c.classification for c in profile.columns if c.classification} >= {
        "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "LOCATION", "DATE_OF_BIRTH"}


def test_derived_tables_are_computed_from_their_inputs(demo_workspace: Workspace) -> None:
    with duckdb.connect(str(demo_workspace.warehouse_path), read_only=True) as con:
        expected = con.execute("""
            SELECT sum(amount) FROM commerce.orders WHERE status IN ('completed', 'shipped')""").fetchone()[0]
        assert con.execute("SELECT sum(gross_revenue) FROM customer.customer_lifetime_value").fetchone()[0] == expected
        assert con.execute("SELECT count(*) FROM customer.customer_lifetime_value").fetchone()[0] == \
            con.execute("SELECT count(*) FROM customer.customer_profile").fetchone()[0]


def test_contracts_are_valid_odcs_v3(demo_workspace: Workspace) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(shared("odcs/schema/odcs-json-schema-v3.1.0.json").read_text())
    for path in sorted((demo_workspace.root / "contracts").glob("*.odcs.yaml")):
        contract = yaml.safe_load(path.read_text())
        errors = list(jsonschema.Draft201909Validator(schema).iter_errors(json.loads(json.dumps(contract, default=str))))
        assert errors == [], f"{path.name}: {[e.message for e in errors[:3]]}"


def test_every_derived_column_has_column_lineage(demo_workspace: Workspace) -> None:
    mesh = demo_workspace.load()
    targets = {(e.target_name, e.target_field) for event in mesh.events for e in column_edges(event)}
    for name in ("customer.customer_lifetime_value", "marketing.campaign_performance"):
        dataset = next(d for p in mesh.products for d in p.datasets if d.qualified_name == name)
        derived = {c.name for c in dataset.columns if c.name != "computed_at"}
        assert derived <= {field for target, field in targets if target == name}, name


def test_quality_history_and_incidents_tell_the_story(demo_workspace: Workspace) -> None:
    mesh = demo_workspace.load()
    latest = {}
    for result in sorted(mesh.results, key=lambda r: r.run_at):
        latest[result.check_id] = result
    assert latest["profile_email_not_null"].status == "fail"
    assert latest["profile_email_not_null"].observed > 0
    assert all(r.status == "pass" for cid, r in latest.items() if cid != "profile_email_not_null")
    statuses = sorted(i.status.value for i in mesh.incidents)
    assert statuses.count("resolved") == 2 and len(statuses) == 3
    failed_runs = [e for e in mesh.events if e.eventType and e.eventType.value == "FAIL"]
    assert len(failed_runs) == 1 and "refund_amount" in json.dumps(failed_runs[0].to_json())
