"""Merging an import into a workspace whose index is current: only what the import changes is validated and
re-indexed, and the result is what validating and indexing everything would give."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from meshpilot.errors import ImportRejectedError
from meshpilot.mesh import store
from meshpilot.mesh.connectors.base import ImportBatch, apply_batch
from meshpilot.mesh.model import CheckResult
from meshpilot.mesh.store import MeshStore
from meshpilot.mesh.workspace import Workspace
from tests.mesh.test_store import _tables


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".meshpilot" not in p.parts}


def _whole_workspace_not_read(monkeypatch) -> None:
    def refused(*args, **kwargs):
        raise AssertionError("the whole workspace was read or indexed")

    monkeypatch.setattr(Workspace, "load", refused)
    monkeypatch.setattr(store, "build_index", refused)


def _full_build(workspace: Workspace, tmp_path: Path) -> dict:
    full = tmp_path / "full.duckdb"
    store.build_index(workspace.load(), full, store.fingerprint(workspace), workspace.source_stamps(), workspace.root)
    return _tables(full)


def _returns_batch(workspace: Workspace, **changes) -> ImportBatch:
    with MeshStore.open(workspace) as opened:
        product = opened.product("commerce/returns")
    return ImportBatch(source="a test source", name="test-source", products=[product.model_copy(update=changes)])


def test_an_import_of_one_changed_product_and_new_results_reindexes_only_them(demo_workspace: Workspace,
                                                                             tmp_path: Path, monkeypatch) -> None:
    batch = _returns_batch(demo_workspace, description="Returns, as the source now describes them.")
    dataset = batch.products[0].datasets[0]
    check = dataset.checks[0]
    at = datetime(2026, 11, 30, 6, tzinfo=UTC)
    batch.results = [CheckResult(check_id=check.id, dataset=str(batch.products[0].dataset_ref(dataset.name)),
                                 status="fail", run_at=at, message="a new failure")]
    apply_batch(demo_workspace, batch)  # the first time the source's results log is new: still incremental
    batch.results.append(batch.results[0].model_copy(update={"run_at": datetime(2026, 12, 1, 6, tzinfo=UTC)}))
    _whole_workspace_not_read(monkeypatch)
    summary = apply_batch(demo_workspace, batch)
    assert summary["files_changed"] == ["quality/test-source.jsonl"]
    monkeypatch.undo()
    current = store.index_path(demo_workspace, store.fingerprint(demo_workspace))
    assert current.exists()  # the next command finds its index
    assert _tables(current) == _full_build(demo_workspace, tmp_path)
    with MeshStore.open(demo_workspace) as opened:
        failures = opened.con.execute("SELECT count(*) FROM check_results WHERE message = 'a new failure'").fetchone()
    assert failures == (2,)


def test_the_first_import_into_an_indexed_workspace_is_incremental_too(demo_workspace: Workspace, tmp_path: Path,
                                                                     monkeypatch) -> None:
    MeshStore.open(demo_workspace).close()
    batch = _returns_batch(demo_workspace, description="Returns, re-described.")
    _whole_workspace_not_read(monkeypatch)
    summary = apply_batch(demo_workspace, batch)
    assert summary["files_changed"] == ["products/commerce.returns.yaml"]
    monkeypatch.undo()
    assert _tables(store.index_path(demo_workspace, store.fingerprint(demo_workspace))) == \
        _full_build(demo_workspace, tmp_path)


@pytest.mark.parametrize("bad", ["unknown owner", "result for an unknown check", "dataset others may name dropped"])
def test_what_the_index_cannot_vouch_for_is_judged_on_the_whole_workspace(demo_workspace: Workspace, bad: str) -> None:
    MeshStore.open(demo_workspace).close()
    if bad == "unknown owner":
        batch = _returns_batch(demo_workspace, owner="no-such-team")
    elif bad == "result for an unknown check":
        batch = _returns_batch(demo_workspace)
        batch.results = [CheckResult(check_id="no_such_check", dataset=str(batch.products[0].dataset_ref(
            batch.products[0].datasets[0].name)), status="pass", run_at=datetime(2026, 11, 30, tzinfo=UTC))]
    else:  # its contract and the quality log name that dataset: only the whole workspace can say
        batch = _returns_batch(demo_workspace, output_ports=[])
    before = _snapshot(demo_workspace.root)
    with pytest.raises(ImportRejectedError) as rejected:
        apply_batch(demo_workspace, batch)
    # Judged on the whole workspace: the problems name other files too, where there are any.
    assert rejected.value.problems
    if bad == "dataset others may name dropped":
        assert {p.source for p in rejected.value.problems} >= {"contracts/commerce.returns.odcs.yaml",
                                                                "quality/demo-checks.jsonl"}
    assert _snapshot(demo_workspace.root) == before


def test_logs_are_merged_by_record_not_by_how_a_line_is_written(demo_workspace: Workspace) -> None:
    batch = _returns_batch(demo_workspace)
    dataset = batch.products[0].datasets[0]
    check = dataset.checks[0]

    def result(day: int, message: str) -> CheckResult:
        return CheckResult(check_id=check.id, dataset=str(batch.products[0].dataset_ref(dataset.name)), status="fail",
                           run_at=datetime(2026, 11, day, 6, tzinfo=UTC), message=message)

    batch.results = [result(1, "first")]
    apply_batch(demo_workspace, batch)
    log = demo_workspace.root / "quality" / "test-source.jsonl"
    written = log.read_text()
    # The same record again: the log is not rewritten.
    assert apply_batch(demo_workspace, batch)["files_changed"] == []
    assert log.read_text() == written
    # The same record written by hand with other spacing and key order is still the same record; a
    # result of the same run replaces it, a new run is added after it.
    import json
    record = json.loads(written)
    log.write_text(json.dumps(dict(reversed(list(record.items()))), indent=None) + "\n")
    batch.results = [result(1, "first, re-run"), result(2, "second")]
    apply_batch(demo_workspace, batch)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["message"] for r in lines] == ["first, re-run", "second"]
