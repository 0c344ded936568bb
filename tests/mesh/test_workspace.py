from pathlib import Path

import pytest

from meshpilot.errors import InvalidWorkspaceError, WorkspaceNotFoundError
from meshpilot.mesh.workspace import Workspace, resolve_path


def _problems(workspace: Workspace) -> list[str]:
    with pytest.raises(InvalidWorkspaceError) as info:
        workspace.load()
    return [str(p) for p in info.value.problems]


def _edit(workspace: Workspace, relative: str, old: str, new: str) -> None:
    path = workspace.root / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1))


def _line_of(workspace: Workspace, relative: str, needle: str) -> int:
    return next(i for i, line in enumerate((workspace.root / relative).read_text().splitlines(), 1) if needle in line)


def test_a_missing_workspace_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceNotFoundError) as info:
        Workspace.open(tmp_path / "nowhere")
    assert "does not exist" in info.value.message
    assert "meshpilot demo" in info.value.hint and "meshpilot init" in info.value.hint


def test_a_folder_that_is_not_a_workspace_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceNotFoundError, match="not a Meshpilot workspace"):
        Workspace.open(tmp_path)


def test_the_workspace_path_comes_from_the_environment_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MESHPILOT_WORKSPACE", str(tmp_path / "ws"))
    assert resolve_path(None) == tmp_path / "ws"
    assert resolve_path(tmp_path / "other") == tmp_path / "other"
    monkeypatch.delenv("MESHPILOT_WORKSPACE")
    assert resolve_path(None) == Path("meshpilot-workspace")


def test_create_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(InvalidWorkspaceError, match="not empty"):
        Workspace.create(tmp_path, name="x")
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_the_demo_loads_clean(demo_workspace: Workspace) -> None:
    mesh = demo_workspace.load()
    assert len(mesh.products) == 5
    assert len(mesh.contracts) == 5


def test_broken_yaml_is_reported_with_file_and_line(demo_workspace: Workspace) -> None:
    _edit(demo_workspace, "products/commerce.orders.yaml", "name: Orders", "name: [Orders")
    problems = _problems(demo_workspace)
    assert len(problems) == 1
    assert problems[0].startswith("products/commerce.orders.yaml:")
    assert "invalid YAML" in problems[0]


def test_an_unknown_check_column_is_reported_with_a_suggestion(demo_workspace: Workspace) -> None:
    _edit(demo_workspace, "products/customer.customer-profile.yaml", "column: email", "column: emial")
    line = _line_of(demo_workspace, "products/customer.customer-profile.yaml", "column: emial")
    problems = _problems(demo_workspace)
    assert f"products/customer.customer-profile.yaml:{line}: no column 'emial' in dataset 'customer_profile'; did you mean 'email'?" in problems


def test_an_unknown_contract_column_is_reported(demo_workspace: Workspace) -> None:
    _edit(demo_workspace, "contracts/commerce.orders.odcs.yaml", "name: amount", "name: amount_usd")
    problems = _problems(demo_workspace)
    assert any(p.startswith("contracts/commerce.orders.odcs.yaml:") and "no column 'amount_usd'" in p for p in problems)


def test_a_foreign_key_to_a_missing_column_is_reported(demo_workspace: Workspace) -> None:
    _edit(demo_workspace, "products/commerce.returns.yaml", "orders/orders#order_id", "orders/orders#order_key")
    problems = _problems(demo_workspace)
    assert any("returns.yaml" in p and "no column 'order_key' in dataset 'orders'" in p for p in problems)


def test_every_problem_is_reported_at_once(demo_workspace: Workspace) -> None:
    _edit(demo_workspace, "products/commerce.orders.yaml", "owner: commerce-data", "owner: nobody")
    _edit(demo_workspace, "incidents/INC-0003.yaml", "status: investigating", "status: sleeping")
    (demo_workspace.root / "lineage" / "extra.jsonl").write_text('{"eventTime": "yesterday"}\n')
    problems = _problems(demo_workspace)
    assert any("commerce.orders.yaml" in p and "owner team 'nobody'" in p for p in problems)
    assert any(p.startswith("incidents/INC-0003.yaml:") and "status" in p for p in problems)
    assert any(p.startswith("lineage/extra.jsonl:1:") for p in problems)


def test_results_of_unknown_checks_are_refused(demo_workspace: Workspace) -> None:
    (demo_workspace.root / "quality" / "more.jsonl").write_text(
        '{"check_id": "made_up", "dataset": "mesh://commerce/orders/orders", "status": "pass"}\n')
    assert any("quality/more.jsonl:1: result for unknown check 'made_up'" in p for p in _problems(demo_workspace))


def test_apply_writes_nothing_when_the_change_is_invalid(demo_workspace: Workspace) -> None:
    before = {p: p.read_bytes() for p in demo_workspace.root.rglob("*") if p.is_file()}
    bad = (demo_workspace.root / "products/commerce.orders.yaml").read_text().replace("owner: commerce-data", "owner: ghosts")
    with pytest.raises(InvalidWorkspaceError):
        demo_workspace.apply({"products/commerce.orders.yaml": bad, "products/new.yaml": "id: new\n"})
    after = {p: p.read_bytes() for p in demo_workspace.root.rglob("*") if p.is_file()}
    assert after == before


def test_apply_refuses_paths_outside_the_workspace(demo_workspace: Workspace) -> None:
    with pytest.raises(ValueError, match="inside the workspace"):
        demo_workspace.apply({"../escape.yaml": "x: 1\n"})
