import os
import time

import pytest

from meshpilot.errors import NotFoundError
from meshpilot.mesh.store import MeshStore
from meshpilot.mesh.workspace import Workspace


def test_queries_answer_from_the_index(demo_workspace: Workspace) -> None:
    with MeshStore.open(demo_workspace) as store:
        assert {r["domain"] for r in store.list_products()} == {"commerce", "customer", "marketing"}
        assert [r["id"] for r in store.list_products("commerce")] == ["orders", "returns"]
        datasets = store.list_datasets(product="customer-profile")
        assert datasets[0]["classified_columns"] == 7


def test_products_resolve_by_id_path_or_reference(demo_workspace: Workspace) -> None:
    with MeshStore.open(demo_workspace) as store:
        for text in ("orders", "commerce/orders", "mesh://commerce/orders", "Orders"):
            assert str(store.resolve_product(text)) == "mesh://commerce/orders"
        with pytest.raises(NotFoundError) as info:
            store.resolve_product("order")
        assert "orders" in info.value.hint


def test_product_details_join_owner_checks_incidents_and_lineage(demo_workspace: Workspace) -> None:
    with MeshStore.open(demo_workspace) as store:
        clv = store.product_details("customer-lifetime-value")
    assert clv["owner_team"]["oncall"] == "grace.liu@meshpilot-demo.example"
    assert {n["product_ref"] for n in clv["upstream"]} == {
        "mesh://commerce/orders", "mesh://commerce/returns", "mesh://customer/customer-profile"}
    assert {n["product_ref"] for n in clv["downstream"]} == {"mesh://marketing/campaign-performance"}
    assert {i["id"] for i in clv["incidents"]} == {"INC-0001", "INC-0002", "INC-0003"}


def test_the_index_is_rebuilt_when_a_file_changes(demo_workspace: Workspace) -> None:
    with MeshStore.open(demo_workspace) as store:
        assert store.product("orders").version == "2.3.0"
    path = demo_workspace.root / "products" / "commerce.orders.yaml"
    path.write_text(path.read_text().replace("version: 2.3.0", "version: 2.4.0"))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    with MeshStore.open(demo_workspace) as store:
        assert store.product("orders").version == "2.4.0"


def test_the_index_is_opened_read_only(demo_workspace: Workspace) -> None:
    import duckdb

    with MeshStore.open(demo_workspace) as store, pytest.raises(duckdb.Error):
        store.con.execute("DELETE FROM products")
