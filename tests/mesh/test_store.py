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


def test_large_lineage_tables_load_in_bulk(empty_workspace: Workspace, tmp_path) -> None:
    """Over 2,000 rows go through the CSV bulk path; what is indexed must equal what was sent."""
    import importlib.util
    import random
    from pathlib import Path

    from meshpilot.mesh.connectors import openlineage

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "lineage_scale.py"
    spec = importlib.util.spec_from_file_location("lineage_scale", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    events = list(bench.events(30_000, 3_000, random.Random(1)))
    file = tmp_path / "many.jsonl"
    file.write_text("".join(__import__("json").dumps(e) + "\n" for e in events))
    openlineage.import_events(empty_workspace, file)
    declared = sum(len(f["inputFields"]) for e in events for f in e["outputs"][0]["facets"]["columnLineage"]["fields"].values())
    declared += len(events)  # one dataset-level INDIRECT edge each
    with MeshStore.open(empty_workspace) as store:
        counts = store.counts()
        assert counts["lineage_events"] == len(events) > 2000
        distinct = store.con.execute("SELECT count(*) FROM (SELECT DISTINCT * FROM column_edges)").fetchone()[0]
        assert counts["column_edges"] == distinct
        assert 0.95 * declared <= counts["column_edges"] <= declared  # duplicates within an event collapse


def test_runs_have_state_times_and_errors(demo_workspace: Workspace) -> None:
    with MeshStore.open(demo_workspace) as store:
        failed = store.con.execute("SELECT job, state, error FROM runs WHERE state = 'FAIL'").fetchall()
        total = store.con.execute("SELECT count(*), count(*) FILTER (ended_at > started_at) FROM runs").fetchone()
    assert failed == [("meshpilot-demo/commerce.ingest_returns", "FAIL",
                       failed[0][2])] and "refund_amount" in failed[0][2]
    assert total == (70, 70)  # 5 pipelines x 14 days, each with a START and an end


def _tables(path) -> dict:
    """Every table's rows, with each product's document as its text (where it lies in the documents file
    depends on the states the index went through)."""
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        names = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE table_name <> 'meta'").fetchall()]
        tables = {n: sorted(map(repr, con.execute(f"SELECT * FROM {n}").fetchall())) for n in names
                  if n != "products"}
        (documents,) = con.execute("SELECT value FROM meta WHERE key = 'documents'").fetchone()
        text = (path.parent / documents).read_bytes()
        tables["products"] = sorted(repr((*row, text[at:at + size].decode())) for *row, at, size in con.execute(
            "SELECT * EXCLUDE (document_at, document_size), document_at, document_size FROM products").fetchall())
        return tables


@pytest.mark.parametrize("change", ["description", "new column", "new product", "teams too"])
def test_incremental_update_gives_what_a_full_build_gives(demo_workspace: Workspace, tmp_path, change: str) -> None:
    import yaml

    from meshpilot.mesh import store

    MeshStore.open(demo_workspace).close()
    index = store.index_path(demo_workspace, store.fingerprint(demo_workspace))
    path = demo_workspace.root / "products" / "commerce.returns.yaml"
    doc = yaml.safe_load(path.read_text())
    columns = doc["output_ports"][0]["dataset"]["columns"]
    if change == "description":
        doc["description"] = "Returns, now with a longer story."
    elif change == "new column":
        columns.append({"name": "carrier", "type": "VARCHAR", "description": "Who brought it back."})
    elif change == "teams too":  # not only product files changed: the index is rebuilt whole
        doc["description"] = "Returns, changed with the teams."
        teams = demo_workspace.root / "teams.yaml"
        teams.write_text(teams.read_text().replace("Commerce", "Commerce & Co", 1))
    if change == "new product":
        copy = dict(doc, id="returns-archive", name="Returns archive", slos=[])
        copy.pop("contract")
        copy["output_ports"][0]["dataset"] = dict(copy["output_ports"][0]["dataset"], name="returns_archive",
                                                  qualified_name="commerce.returns_archive")
        path = demo_workspace.root / "products" / "commerce.returns-archive.yaml"
        doc = copy
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    demo_workspace.load()  # the change itself is valid
    after = store.index_path(demo_workspace, store.fingerprint(demo_workspace))
    updated = store.update_index(demo_workspace, index, after, store.fingerprint(demo_workspace),
                                 demo_workspace.source_stamps())
    assert updated is (change != "teams too")
    with MeshStore.open(demo_workspace) as opened:
        assert opened.fingerprint == store.fingerprint(demo_workspace)
    incremental = _tables(after)
    full = tmp_path / "full.duckdb"
    store.build_index(demo_workspace.load(), full, store.fingerprint(demo_workspace),
                      demo_workspace.source_stamps(), demo_workspace.root)
    assert incremental == _tables(full)


def test_each_state_of_the_files_has_its_own_index_and_earlier_ones_are_removed(demo_workspace: Workspace) -> None:
    import yaml

    from meshpilot.mesh import store

    with MeshStore.open(demo_workspace) as first:
        path = demo_workspace.root / "products" / "commerce.returns.yaml"
        document = yaml.safe_load(path.read_text())
        path.write_text(yaml.safe_dump({**document, "description": "Now re-described."}, sort_keys=False))
        first_documents = first.documents.path
        with MeshStore.open(demo_workspace) as second:
            assert second.fingerprint != first.fingerprint
            # The open store still reads the index of its own state, whole, documents included.
            assert first.counts() == second.counts()
            assert not first.product("commerce/returns").description.startswith("Now re-described.")
            assert second.product("commerce/returns").description.startswith("Now re-described.")
            # A one-product change appends to the documents of the state it came from.
            assert second.documents.path == first_documents
        (demo_workspace.root / "teams.yaml").write_text((demo_workspace.root / "teams.yaml").read_text() + "\n")
        with MeshStore.open(demo_workspace) as third:  # a changed team file: built whole, with new documents
            assert third.documents.path != first_documents
            assert first.product("commerce/returns").ref == third.product("commerce/returns").ref
    assert sorted(p.name for p in (demo_workspace.state_dir / store.INDEX_DIR).iterdir()) == sorted([
        store.index_path(demo_workspace, third.fingerprint).name, third.documents.path.name])


def _later_run(demo_workspace: Workspace, days: int, retype: bool) -> list[dict]:
    """The demo's last orders-ingest run again, `days` later, optionally with `amount` retyped."""
    import json
    import uuid

    lines = (demo_workspace.root / "lineage" / "demo-pipelines.jsonl").read_text().splitlines()
    run = [json.loads(line) for line in lines if '"commerce.ingest_orders"' in line][-2:]
    run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"later-{days}-{retype}"))
    events = []
    for event in run:
        event = json.loads(json.dumps(event))
        event["run"]["runId"] = run_id
        event["eventTime"] = event["eventTime"].replace("2026-10-", "2026-11-").replace("T02", f"T{days:02d}")
        for output in event["outputs"]:
            fields = (output.get("facets", {}).get("schema") or {}).get("fields")
            for field in fields or []:
                if retype and field["name"] == "amount":
                    field["type"] = "VARCHAR"
        events.append(event)
    return events


@pytest.mark.parametrize("how", ["appended", "new log", "over http"])
def test_lineage_events_appended_are_indexed_without_a_rebuild(demo_workspace: Workspace, tmp_path, monkeypatch,
                                                               how: str) -> None:
    import json

    from meshpilot.mesh import store
    from meshpilot.server.lineage_http import LineageLog

    MeshStore.open(demo_workspace).close()
    events = _later_run(demo_workspace, 5, retype=True)
    if how == "over http":
        LineageLog(demo_workspace).append(events)
    else:
        name = "demo-pipelines.jsonl" if how == "appended" else "later.jsonl"
        with (demo_workspace.root / "lineage" / name).open("a") as log:
            log.write("".join(json.dumps(e) + "\n" for e in events))

    def no_full_build(*args, **kwargs):
        raise AssertionError("the index was rebuilt whole")

    monkeypatch.setattr(store, "build_index", no_full_build)
    with MeshStore.open(demo_workspace) as opened:
        incremental = _tables(opened.path)
        changes = opened.con.execute("SELECT change FROM schema_versions WHERE change IS NOT NULL").fetchall()
    monkeypatch.undo()
    full = tmp_path / "full.duckdb"
    store.build_index(demo_workspace.load(), full, store.fingerprint(demo_workspace), demo_workspace.source_stamps(),
                      demo_workspace.root)
    assert incremental == _tables(full)
    assert any("amount" in c for (c,) in changes)  # the retyped column, found in the appended events


@pytest.mark.parametrize("edit", ["an older event", "an earlier line changed", "a torn last line", "an invalid event"])
def test_what_appending_cannot_express_rebuilds_the_index_whole(demo_workspace: Workspace, edit: str) -> None:
    import json

    from meshpilot.mesh import store

    MeshStore.open(demo_workspace).close()
    before = store.index_path(demo_workspace, store.fingerprint(demo_workspace))
    log = demo_workspace.root / "lineage" / "demo-pipelines.jsonl"
    text = log.read_text()
    later = "".join(json.dumps(e) + "\n" for e in _later_run(demo_workspace, 5, retype=True))
    if edit == "an older event":  # after a later one was indexed: versions depend on the order of all events
        log.write_text(text + later)
        MeshStore.open(demo_workspace).close()
        before = store.index_path(demo_workspace, store.fingerprint(demo_workspace))
        text = log.read_text()
        log.write_text(text + "".join(json.dumps(e) + "\n" for e in _later_run(demo_workspace, 3, retype=False)))
    elif edit == "an earlier line changed":
        log.write_text(text.replace("2026-10-19T02:04:00", "2026-10-19T02:05:00", 1) + later)
    elif edit == "a torn last line":
        log.write_text(text + later[:-40])
    else:
        log.write_text(text + '{"eventTime": "soon"}\n')
    updated = store.update_index(demo_workspace, before, tmp := before.with_name("next.duckdb"),
                                 store.fingerprint(demo_workspace), demo_workspace.source_stamps())
    assert updated is False
    assert not tmp.exists()


@pytest.mark.parametrize("result", ["of a known check", "of an unknown check"])
def test_check_results_appended_are_indexed_without_a_rebuild(demo_workspace: Workspace, tmp_path, result: str) -> None:
    import json

    from meshpilot.mesh import store

    MeshStore.open(demo_workspace).close()
    before = store.index_path(demo_workspace, store.fingerprint(demo_workspace))
    log = demo_workspace.root / "quality" / "demo-checks.jsonl"
    last = json.loads(log.read_text().splitlines()[-1])
    new = dict(last, run_at="2026-12-01T06:00:00Z", status="fail", message="appended")
    if result == "of an unknown check":
        new["check_id"] = "no_such_check"
    with log.open("a") as handle:
        handle.write(json.dumps(new) + "\n")
    after = store.index_path(demo_workspace, store.fingerprint(demo_workspace))
    updated = store.update_index(demo_workspace, before, after, store.fingerprint(demo_workspace),
                                 demo_workspace.source_stamps())
    if result == "of an unknown check":
        assert updated is False and not after.exists()  # the full load reports it
        return
    assert updated is True
    full = tmp_path / "full.duckdb"
    store.build_index(demo_workspace.load(), full, store.fingerprint(demo_workspace), demo_workspace.source_stamps(),
                      demo_workspace.root)
    assert _tables(after) == _tables(full)
