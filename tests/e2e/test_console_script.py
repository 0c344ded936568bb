"""The installed `meshpilot` console script, run as a user runs it: a separate process, a fresh folder."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MESHPILOT = shutil.which("meshpilot") or str(Path(sys.executable).parent / "meshpilot")


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MESHPILOT, *args], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.skipif(not Path(MESHPILOT).exists(), reason="the console script is not installed")
def test_demo_then_list_in_a_fresh_folder(tmp_path: Path) -> None:
    env = {"MESHPILOT_WORKSPACE": ""}
    built = run("demo", cwd=tmp_path, env=env)
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "meshpilot-workspace" / "warehouse.duckdb").exists()
    listed = run("products", "list", "--json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 5
    missing = run("products", "list", "--workspace", "elsewhere", cwd=tmp_path, env=env)
    assert missing.returncode == 1
    assert "No workspace at elsewhere" in missing.stderr and "Traceback" not in missing.stderr
