import json
from pathlib import Path

import pytest

from meshpilot.errors import ImportRejectedError
from meshpilot.mesh.connectors import dbt
from meshpilot.mesh.store import MeshStore
from meshpilot.mesh.workspace import Workspace
from tests.conftest import shared

JAFFLE = "jaffle_shop_dbt_manifest_openlineage/integration/common/tests/dbt/duckdb/target"
OM_DBT = "openmetadata_sample_data/ingestion/examples/sample_data/dbt"


def test_models_seeds_columns_tests_and_lineage(empty_workspace: Workspace) -> None:
    summary = dbt.import_artifacts(empty_workspace, shared(JAFFLE))
    assert summary["imported"]["datasets"] == 5
    with MeshStore.open(empty_workspace) as store:
        product = store.product("jaffle_shop/jaffle_shop")
        assert {d.qualified_name for d in product.datasets} == {
            "jaffle_shop.main.customers", "jaffle_shop.main.orders", "jaffle_shop.main.raw_customers",
            "jaffle_shop.main.raw_orders", "jaffle_shop.main.raw_payments"}
        customers = product.dataset("customers")
        assert customers.column("first_name").classification == "PII"
        assert not customers.column("customer_id").nullable  # a not_null test says so
        assert {c.kind.value for c in customers.checks} == {"unique", "not_null"}
        edges = set(store.con.execute("SELECT source_name, target_name FROM dataset_edges").fetchall())
        assert ("jaffle_shop.main.stg_orders", "jaffle_shop.main.customers") in edges
        assert ("jaffle_shop.main.stg_payments", "jaffle_shop.main.orders") in edges


def test_catalog_types_and_run_results_are_read_when_present(empty_workspace: Workspace) -> None:
    summary = dbt.import_artifacts(empty_workspace, shared(OM_DBT) / "manifest.json")
    with MeshStore.open(empty_workspace) as store:
        customers = store.product("jaffle_shop").dataset("customers")
        assert customers.column("customer_id").type == "integer"
        assert customers.column("customer_lifetime_value").type == "bigint"  # only in catalog.json
        # Documented in schema.yml but absent from the warehouse: kept, untyped, and reported.
        assert customers.column("total_order_amount").type == "UNKNOWN"
        statuses = store.con.execute("SELECT status, count(*) FROM check_results GROUP BY ALL").fetchall()
    assert any("total_order_amount" in w for w in summary["warnings"])
    assert sum(n for _, n in statuses) == 20
    assert {s for s, _ in statuses} <= {"pass", "fail", "warn", "error"}


def test_importing_twice_changes_nothing(empty_workspace: Workspace) -> None:
    dbt.import_artifacts(empty_workspace, shared(OM_DBT))
    assert dbt.import_artifacts(empty_workspace, shared(OM_DBT))["files_changed"] == []


def test_a_json_file_that_is_not_a_manifest_is_rejected(empty_workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"metadata": {"dbt_schema_version": "x"}, "nodes": {}}))
    with pytest.raises(ImportRejectedError, match="not a dbt manifest"):
        dbt.import_artifacts(empty_workspace, tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"nodes": []}))
    with pytest.raises(ImportRejectedError, match="not a dbt manifest"):
        dbt.import_artifacts(empty_workspace, tmp_path / "manifest.json")


def test_broken_json_names_the_line(empty_workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{\n "metadata": {,\n}')
    with pytest.raises(ImportRejectedError) as info:
        dbt.import_artifacts(empty_workspace, tmp_path)
    assert info.value.problems[0].line == 2


def test_a_folder_without_artifacts_says_what_to_run(empty_workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(ImportRejectedError) as info:
        dbt.import_artifacts(empty_workspace, tmp_path)
    assert "dbt compile" in info.value.hint
