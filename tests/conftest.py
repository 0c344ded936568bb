"""Shared fixtures: the demo workspace (built once, copied for tests that change it) and the CLI."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from meshpilot.mesh.demo import build_demo
from meshpilot.mesh.workspace import Workspace

SHARED_DATA = Path(os.environ.get("MESHPILOT_SHARED_DATA")
                   or Path(__file__).resolve().parents[1].parent / "shared" / "data")
if SHARED_DATA.is_dir():  # the eval suites that read public data (Spider) find it the same way
    os.environ.setdefault("MESHPILOT_SHARED_DATA", str(SHARED_DATA))


def shared(relative: str) -> Path:
    """Public reference data from ../shared/data. CI always has it: there, its absence is a failure."""
    path = SHARED_DATA / relative
    if not path.exists():
        message = f"shared data {path} is missing (set MESHPILOT_SHARED_DATA to the shared/data folder)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def pristine_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine") / "demo"
    build_demo(root)
    return root


@pytest.fixture
def demo_workspace(pristine_demo: Path, tmp_path: Path) -> Workspace:
    root = tmp_path / "demo"
    shutil.copytree(pristine_demo, root, ignore=shutil.ignore_patterns(".meshpilot"))
    return Workspace(root)


@pytest.fixture
def empty_workspace(tmp_path: Path) -> Workspace:
    return Workspace.create(tmp_path / "empty", name="empty")


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str):
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, stdout={self.stdout[-500:]!r}, stderr={self.stderr[-500:]!r})"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run the real entry point (`meshpilot.cli.main`) in-process and capture what it prints."""
    from meshpilot.cli import main

    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["meshpilot", *map(str, args)])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main()
        captured = capsys.readouterr()
        return CliResult(exit_info.value.code or 0, captured.out, captured.err)

    return run
