"""The copilot's own overhead per question, outside model calls, and a local model's speed.

The model is the stub OpenAI-compatible server of the tests (tests/stubs/openai_server.py, scenario
`tools`: one tool call, then an answer), on loopback through LiteLLM, so what is timed is Meshpilot:
routing, guardrails, the tool, the audit, the output guard. Its replies take about a millisecond; the
time of every model request, as the stub saw it, is subtracted anyway.

- one-shot: `meshpilot chat "<question>" --json` as a whole process (cold: imports included), 5 runs;
- long-running: the same question asked of one Copilot in a process, 30 times (a server's case);
- local model: tokens/s of llama.cpp's llama-server serving SmolLM2-135M (prompt and generation, from
  its own timings), when scripts/llama-server.sh has built it.
Targets (issue 19): one-shot <= 2 s, long-running p95 <= 50 ms.
Prints one JSON object. Usage: uv run python benchmarks/copilot_overhead.py
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402

from tests.servers import free_port, llama_server_binary, smollm2_model, wait_healthy  # noqa: E402
from tests.stubs.openai_server import Stub  # noqa: E402

QUESTION = "who owns the orders product?"


def _workspace(folder: Path, base: str) -> Path:
    from meshpilot.mesh.demo import build_demo

    root = folder / "demo"
    build_demo(root)
    manifest = root / "meshpilot.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["model"] = {"name": "openai/tools", "api_base": base, "timeout": 30, "retries": 0}
    manifest.write_text(yaml.safe_dump(data))
    return root


def _p95(values: list[float]) -> float:
    values = sorted(values)
    return round(values[int(0.95 * (len(values) - 1))], 1)


def _local_model_speed() -> dict[str, float] | None:
    binary, model = llama_server_binary(), smollm2_model()
    if binary is None or model is None:
        return None
    port = free_port()
    server = subprocess.Popen([binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", "4096",
                               "-t", str(os.cpu_count() or 2)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", server, deadline_s=120)
        prompt, generated = [], []
        for _ in range(3):
            reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=120, json={
                "model": "smollm2", "max_tokens": 128, "messages": [
                    {"role": "system", "content": "You answer questions about data products. " * 40},
                    {"role": "user", "content": "Describe what an orders data product usually holds."}]}).json()
            prompt.append(reply["timings"]["prompt_per_second"])
            generated.append(reply["timings"]["predicted_per_second"])
        return {"prompt_tokens_per_s": round(statistics.median(prompt)),
                "generated_tokens_per_s": round(statistics.median(generated))}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    stub = Stub().start()
    os.environ.pop("OPENAI_API_KEY", None)
    with tempfile.TemporaryDirectory() as scratch:
        root = _workspace(Path(scratch), stub.base)
        meshpilot = str(Path(sys.executable).parent / "meshpilot")
        one_shot = []
        for _ in range(5):
            before = len(stub.requests)
            started = time.perf_counter()
            done = subprocess.run([meshpilot, "chat", QUESTION, "--workspace", str(root), "--json"],
                                  capture_output=True, text=True)
            elapsed = time.perf_counter() - started
            assert done.returncode == 0 and json.loads(done.stdout)["tool_calls"], done.stderr[-2000:]
            one_shot.append(elapsed - sum(stub.durations[before:]))
        from meshpilot.agents.copilot import Copilot
        from meshpilot.mesh.workspace import Workspace

        copilot = Copilot(Workspace(root))
        copilot.ask(QUESTION)  # first question: imports, spaCy for the guards, the search index
        served = []
        for _ in range(30):
            before = len(stub.requests)
            started = time.perf_counter()
            answer = copilot.ask(QUESTION)
            served.append((time.perf_counter() - started - sum(stub.durations[before:])) * 1000)
            assert answer.tool_calls and not answer.flags
    stub.stop()
    print(json.dumps({
        "one_shot_chat_s_median": round(statistics.median(one_shot), 2), "one_shot_chat_s_max": round(max(one_shot), 2),
        "served_question_ms_p50": round(statistics.median(served), 1), "served_question_ms_p95": _p95(served),
        "model_requests_per_question": 2, "local_model": _local_model_speed(),
        "targets": {"one_shot_chat_s": 2.0, "served_question_ms_p95": 50},
        "cpus": os.cpu_count(), "llama_server": shutil.which("llama-server"),
    }))


if __name__ == "__main__":
    main()
