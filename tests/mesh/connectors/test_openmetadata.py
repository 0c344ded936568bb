import json
import shutil
import socket
import time
from pathlib import Path

import pytest

from meshpilot.errors import ConnectorError, ImportRejectedError
from meshpilot.mesh.connectors import openmetadata
from meshpilot.mesh.store import MeshStore
from meshpilot.mesh.workspace import Workspace
from tests.conftest import shared

EXPORT = "openmetadata_sample_data/ingestion/examples/sample_data"
TABLES = {"dim_address", "dim_address_clean", "dim.api/client", "dim_customer", "dim_location", "dim.product",
          "dim.product.variant", "dim.shop", "dim_staff", "fact_line_item", "fact_order", "fact_sale",
          "fact_session", "raw_customer", "raw_order", "raw_product_catalog"}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".meshpilot" not in p.parts}


def _check_imported(workspace: Workspace) -> None:
    with MeshStore.open(workspace) as store:
        datasets = store.list_datasets(domain="sample_data")
        assert {d["name"] for d in datasets} == TABLES
        assert all(d["columns"] > 0 for d in datasets)
        address = store.product("sample_data/shopify").dataset("dim_address")
        assert address.description.startswith("This dimension table contains the billing and shipping addresses")
        assert address.column("address_id").description == "Unique identifier for the address."
        assert address.column("address_id").primary_key
        edges = store.con.execute("SELECT source_name, target_name FROM dataset_edges").fetchall()
        assert ("sample_data.ecommerce_db.shopify.raw_customer", "sample_data.ecommerce_db.shopify.dim_address") in edges
        assert len(edges) == 5
        results = store.con.execute("SELECT check_id, count(*), count(*) FILTER (status = 'fail') FROM check_results "
                                    "GROUP BY ALL ORDER BY 1").fetchall()
        assert ("table_column_count_equals", 11, 2) in results  # 2 Failed of 11 in the export
        assert sum(r[1] for r in results) == 51
        teams = {r[0]: r[1] for r in store.con.execute(
            "SELECT t.name, count(m.email) FROM teams t LEFT JOIN team_members m ON m.team_id = t.id GROUP BY ALL").fetchall()}
        assert {"Engineering", "Infrastructure", "Data", "Sales"} <= set(teams)
        assert sum(teams.values()) == 100


def test_the_export_imports_all_tables_lineage_tests_users_and_teams(empty_workspace: Workspace) -> None:
    summary = openmetadata.import_export(empty_workspace, shared(EXPORT))
    assert summary["imported"]["datasets"] == 16
    _check_imported(empty_workspace)


def test_the_import_leaves_the_index_a_full_build_gives(empty_workspace: Workspace, tmp_path: Path) -> None:
    from meshpilot.mesh import store
    from tests.mesh.test_store import _tables

    openmetadata.import_export(empty_workspace, shared(EXPORT))
    fingerprint = store.fingerprint(empty_workspace)
    built_by_import = store.index_path(empty_workspace, fingerprint)
    assert built_by_import.exists()  # the next command finds it
    full = tmp_path / "full.duckdb"
    store.build_index(empty_workspace.load(), full, fingerprint, empty_workspace.source_stamps(), empty_workspace.root)
    assert _tables(built_by_import) == _tables(full)


def test_importing_twice_changes_nothing(empty_workspace: Workspace) -> None:
    openmetadata.import_export(empty_workspace, shared(EXPORT))
    before = _snapshot(empty_workspace.root)
    summary = openmetadata.import_export(empty_workspace, shared(EXPORT))
    assert summary["files_changed"] == []
    assert _snapshot(empty_workspace.root) == before


def test_the_export_is_found_from_the_repository_root(empty_workspace: Workspace) -> None:
    summary = openmetadata.import_export(empty_workspace, shared("openmetadata_sample_data"))
    assert summary["imported"]["datasets"] == 16


def test_a_malformed_export_is_rejected_and_nothing_changes(demo_workspace: Workspace, tmp_path: Path) -> None:
    export = tmp_path / "export"
    shutil.copytree(shared(EXPORT), export)
    tables = json.loads((export / "datasets" / "tables.json").read_text())
    tables["tables"][2]["columns"][0]["dataType"] = "NOT_A_TYPE"
    (export / "datasets" / "tables.json").write_text(json.dumps(tables))
    before = _snapshot(demo_workspace.root)
    with pytest.raises(ImportRejectedError) as info:
        openmetadata.import_export(demo_workspace, export)
    assert "nothing was imported" in info.value.message
    assert any("table 3: dim.api/client" in str(p) and "dataType" in str(p) for p in info.value.problems)
    assert _snapshot(demo_workspace.root) == before


def test_columns_are_read_as_openmetadata_writes_them(empty_workspace: Workspace, tmp_path: Path) -> None:
    export = tmp_path / "export"
    shutil.copytree(shared(EXPORT), export)
    tables = json.loads((export / "datasets" / "tables.json").read_text())
    columns = tables["tables"][0]["columns"]
    # A name with a reserved word, as OpenMetadata stores "::", and a field a newer OpenMetadata added.
    columns[0].update(name="geo__reserved__colon__zip", futureField={"nested": True})
    (export / "datasets" / "tables.json").write_text(json.dumps(tables))
    openmetadata.import_export(empty_workspace, export)
    with MeshStore.open(empty_workspace) as store:
        names = store.con.execute("SELECT name FROM columns").fetchall()
    assert ("geo::zip",) in names

    del columns[1]["name"]
    columns[2]["constraint"] = "SOMETIMES"
    (export / "datasets" / "tables.json").write_text(json.dumps(tables))
    with pytest.raises(ImportRejectedError) as info:
        openmetadata.import_export(empty_workspace, export)
    problems = [str(p) for p in info.value.problems]
    assert any("table 1" in p and "columns.1.name" in p for p in problems), problems
    assert any("columns.2.constraint" in p for p in problems), problems


def test_an_export_with_broken_json_names_the_line(empty_workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "tables.json").write_text('{"tables": [\n  {"name": "a",}\n]}')
    with pytest.raises(ImportRejectedError) as info:
        openmetadata.import_export(empty_workspace, tmp_path)
    assert info.value.problems[0].line == 2


def test_an_export_nested_too_deeply_is_rejected_clearly(empty_workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "tables.json").write_text('{"tables": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ImportRejectedError, match="nested too deeply"):
        openmetadata.import_export(empty_workspace, tmp_path)


def test_a_folder_without_an_export_is_rejected(empty_workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(ImportRejectedError, match="No OpenMetadata export"):
        openmetadata.import_export(empty_workspace, tmp_path)


# --- the live connector, against a local server speaking OpenMetadata's API ------------------------


@pytest.fixture(scope="module")
def om_stub():
    from tests.mesh.connectors.om_stub import OpenMetadataStub

    stub = OpenMetadataStub(shared(EXPORT), token="test-jwt")
    with stub as url:
        yield stub, url


def test_the_live_connector_reads_a_server(om_stub, empty_workspace: Workspace) -> None:
    stub, url = om_stub
    summary = openmetadata.import_live(empty_workspace, url, "test-jwt")
    assert summary["imported"]["datasets"] == 16
    _check_imported(empty_workspace)
    with MeshStore.open(empty_workspace) as store:
        # The server names an owner team and column-level lineage, which the export cannot.
        assert store.product("sample_data/shopify").owner == "data"
        column_edges = store.con.execute(
            "SELECT source_name, source_field, target_name, target_field FROM column_edges").fetchall()
    assert column_edges == [("sample_data.ecommerce_db.shopify.raw_customer", "shipping_address",
                             "sample_data.ecommerce_db.shopify.dim_address", "address1")]
    assert "/api/v1/system/version" in stub.requests


def test_a_refused_token_is_a_clear_error(om_stub, empty_workspace: Workspace) -> None:
    _, url = om_stub
    with pytest.raises(ConnectorError) as info:
        openmetadata.import_live(empty_workspace, url, "wrong-token")
    assert "not authorized" in info.value.message.lower() or "401" in info.value.message
    assert "--host" in info.value.hint


def test_a_missing_token_is_refused_before_connecting(empty_workspace: Workspace) -> None:
    with pytest.raises(ConnectorError, match="needs a token"):
        openmetadata.import_live(empty_workspace, "http://127.0.0.1:9/api", None)


def test_an_unreachable_host_fails_fast_and_clearly(empty_workspace: Workspace) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ConnectorError) as info:
        openmetadata.import_live(empty_workspace, f"http://127.0.0.1:{port}/api", "t")
    assert time.monotonic() - started < 30  # no 30-second retry waits
    assert "connection refused" in info.value.message
    assert _snapshot(empty_workspace.root) == {"meshpilot.yaml": (empty_workspace.root / "meshpilot.yaml").read_bytes(),
                                                "teams.yaml": (empty_workspace.root / "teams.yaml").read_bytes()}


def test_openmetadata_enumerations_are_read_as_its_models_define_them() -> None:
    from metadata.generated.schema.entity.data.table import Constraint, DataType

    module = "metadata.generated.schema.entity.data.table"
    for enumeration in (DataType, Constraint):
        read = openmetadata._enumeration(module, enumeration.__name__)
        assert {m.name: m.value for m in read} == {m.name: m.value for m in enumeration}
    # A name the module does not define as a plain enumeration is imported, as Python would.
    assert openmetadata._enumeration(module, "Table").__name__ == "Table"


@pytest.mark.parametrize(("link", "expected"), [
    ("<#E::table::svc.db.sch.orders>", ("svc.db.sch.orders", None)),
    ("<#E::table::svc.db.sch.orders::columns::first+name>", ("svc.db.sch.orders", "first name")),
    ('<#E::table::svc.db."sch.v2".orders::columns::随机的>', ('svc.db."sch.v2".orders', "随机的")),
])
def test_entity_links_are_split_by_openmetadata_grammar(link: str, expected: tuple) -> None:
    assert openmetadata._entity_link(link) == expected


def test_a_test_case_with_a_broken_entity_link_is_rejected_clearly(empty_workspace: Workspace, tmp_path: Path,
                                                                   capfd) -> None:
    export = tmp_path / "export"
    shutil.copytree(shared(EXPORT), export)
    suites = json.loads((export / "tests" / "testSuites.json").read_text())
    suites["tests"][0]["testCases"][1]["entityLink"] = "<#E::table::a::b::c::d>"
    del suites["tests"][0]["testCases"][2]["testDefinitionName"]
    (export / "tests" / "testSuites.json").write_text(json.dumps(suites))
    with pytest.raises(ImportRejectedError) as info:
        openmetadata.import_export(empty_workspace, export)
    problems = [str(p) for p in info.value.problems]
    assert any("suite 1, test case 2" in p and "is not an OpenMetadata entity link" in p for p in problems), problems
    assert any("suite 1, test case 3" in p and "'testDefinitionName'" in p for p in problems), problems
    assert capfd.readouterr().err == ""  # the parser's own messages are not printed
    assert not list((empty_workspace.root / "products").glob("*.yaml"))
