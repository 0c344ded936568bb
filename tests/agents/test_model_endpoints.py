"""The copilot against an OpenAI-compatible endpoint on loopback (tests/stubs/openai_server.py), reached
through LiteLLM exactly as a configured model is: what real servers do (empty streams, cut answers,
broken tool-call JSON, unknown tools and arguments, errors, timeouts) and what the user gets back. The
assertions are on the answers, the requests the endpoint received and the audit log."""

from __future__ import annotations

import json

import pytest
import yaml

from meshpilot.agents.copilot import Copilot
from meshpilot.agents.llm import ModelProviderError
from meshpilot.guardrails import audit
from meshpilot.mesh.workspace import Workspace
from tests.stubs.openai_server import Stub


@pytest.fixture(scope="module")
def stub():
    server = Stub().start()
    yield server
    server.stop()


def _configure(workspace: Workspace, stub: Stub, scenario: str, **settings) -> Workspace:
    manifest = workspace.root / "meshpilot.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["model"] = {"name": f"openai/{scenario}", "api_base": stub.base, "timeout": 5, "retries": 0, **settings}
    manifest.write_text(yaml.safe_dump(data))
    return Workspace(workspace.root)


def _sent(stub: Stub, scenario: str) -> list[dict]:
    return [r for r in stub.requests if r["model"] == scenario]


@pytest.fixture
def keyless(monkeypatch: pytest.MonkeyPatch) -> None:
    # The docs' local set-up has no API key: a local server needs none.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_tools_are_offered_with_tool_choice_and_the_answer_is_grounded(demo_workspace, stub, keyless) -> None:
    stub.requests.clear()
    answer = Copilot(_configure(demo_workspace, stub, "tools")).ask("who owns orders?")
    first = _sent(stub, "tools")[0]
    assert first["tool_choice"] == "auto" and {t["function"]["name"] for t in first["tools"]} >= {"search_catalog"}
    assert answer.flags == [] and "mesh://commerce/orders" in answer.text
    assert [r["tool"] for r in audit.tail(demo_workspace.root)][-1] == "search_catalog"


def test_tool_choice_is_configurable(demo_workspace, stub, keyless) -> None:
    stub.requests.clear()
    Copilot(_configure(demo_workspace, stub, "tools", tool_choice="required")).ask("who owns orders?")
    assert _sent(stub, "tools")[0]["tool_choice"] == "required"


def test_an_empty_stream_for_tools_is_asked_again_without_streaming(demo_workspace, stub, keyless) -> None:
    stub.requests.clear()
    copilot = Copilot(_configure(demo_workspace, stub, "no-stream-tools"))
    answer = copilot.ask("who owns orders?")
    sent = _sent(stub, "no-stream-tools")
    assert sent[0]["stream"] is True and not sent[1].get("stream")
    assert answer.flags == [] and answer.tool_calls == [{"name": "search_catalog", "args": {"query": "orders"}}]
    copilot.ask("and customers?")
    assert not any(r.get("stream") for r in _sent(stub, "no-stream-tools")[2:])  # remembered


def test_streaming_tool_calls_can_be_switched_off(demo_workspace, stub, keyless) -> None:
    stub.requests.clear()
    Copilot(_configure(demo_workspace, stub, "tools", stream_tool_calls=False)).ask("who owns orders?")
    assert not any(r.get("stream") for r in _sent(stub, "tools"))


@pytest.mark.parametrize(("scenario", "flags", "said"), [
    ("plain", ["ungrounded"], "not grounded"),
    ("length", ["truncated", "ungrounded"], "cut short"),
    ("empty", ["empty", "ungrounded"], "The model returned an empty answer."),
])
def test_weak_answers_are_flagged_never_passed_off_as_grounded(demo_workspace, stub, keyless, scenario, flags,
                                                               said) -> None:
    answer = Copilot(_configure(demo_workspace, stub, scenario)).ask("who owns orders?")
    assert answer.flags == flags and said in answer.text


def test_tool_streamed_in_pieces_is_put_together(demo_workspace, stub, keyless) -> None:
    answer = Copilot(_configure(demo_workspace, stub, "tools-split")).ask("who owns orders?")
    assert answer.tool_calls == [{"name": "search_catalog", "args": {"query": "orders"}}] and answer.flags == []


def test_broken_tool_call_json_is_reported_to_the_model_not_repaired(demo_workspace, stub, keyless) -> None:
    stub.requests.clear()
    answer = Copilot(_configure(demo_workspace, stub, "bad-json")).ask("who owns orders?")
    second = _sent(stub, "bad-json")[1]
    told = [m for m in second["messages"] if m["role"] == "tool"][-1]["content"]
    assert "not a JSON object" in told and '{"query": "orders' in told
    # Nothing ran with the broken arguments; the corrected call did.
    assert [r["arguments"] for r in audit.tail(demo_workspace.root) if r["tool"] == "search_catalog"][-1] == {"query": "orders"}
    assert answer.flags == []


def test_an_argument_the_tool_does_not_take_is_refused(demo_workspace, stub, keyless) -> None:
    stub.requests.clear()
    Copilot(_configure(demo_workspace, stub, "extra-args")).ask("who owns orders?")
    told = [m for m in _sent(stub, "extra-args")[1]["messages"] if m["role"] == "tool"][-1]["content"]
    assert "'drop' is not an argument of search_catalog" in told
    refused = [r for r in audit.tail(demo_workspace.root) if r["tool"] == "search_catalog"][-2]
    assert refused["outcome"] == "error"


def test_an_unknown_tool_is_refused_and_the_answer_flagged(demo_workspace, stub, keyless) -> None:
    answer = Copilot(_configure(demo_workspace, stub, "unknown-tool")).ask("drop the orders table")
    assert answer.flags == ["ungrounded"]
    assert audit.tail(demo_workspace.root)[-1]["tool"] == "drop_database"
    assert audit.tail(demo_workspace.root)[-1]["outcome"] == "error"


@pytest.mark.parametrize(("scenario", "retries", "requests", "text", "hint"), [
    ("server-error", 0, 1, "failed (500): backend exploded", "check its logs"),
    ("server-error", 1, 2, "failed (500)", "check its logs"),
    ("rate-limited", 0, 1, "failed (429): slow down", "rate-limiting"),
])
def test_provider_errors_are_the_endpoints_with_what_to_check(demo_workspace, stub, keyless, scenario, retries,
                                                              requests, text, hint) -> None:
    stub.requests.clear()
    stub.seen.pop(scenario, None)
    copilot = Copilot(_configure(demo_workspace, stub, scenario, retries=retries))
    with pytest.raises(ModelProviderError) as info:
        copilot.ask("who owns orders?")
    assert stub.base in info.value.message and text in info.value.message and hint in info.value.hint
    assert len(_sent(stub, scenario)) == requests  # retried exactly as configured, in one place


def test_a_rate_limit_is_waited_out_when_retries_allow(demo_workspace, stub, keyless) -> None:
    stub.seen.pop("rate-limited", None)
    answer = Copilot(_configure(demo_workspace, stub, "rate-limited", retries=1)).ask("who owns orders?")
    assert answer.flags == [] and "mesh://commerce/orders" in answer.text


def test_a_timeout_names_the_setting(demo_workspace, stub, keyless) -> None:
    copilot = Copilot(_configure(demo_workspace, stub, "slow", timeout=1))
    with pytest.raises(ModelProviderError, match="failed") as info:
        copilot.ask("who owns orders?")
    assert "MESHPILOT_MODEL_TIMEOUT" in info.value.hint


def test_the_chat_command_shows_flags_and_endpoint_errors(demo_workspace, stub, keyless, cli) -> None:
    ws = _configure(demo_workspace, stub, "plain")
    shown = cli("chat", "--workspace", ws.root, "who owns orders?", "--json")
    assert shown.code == 0 and json.loads(shown.stdout)["flags"] == ["ungrounded"]
    plain = cli("chat", "--workspace", ws.root, "who owns orders?")
    assert "not grounded" in plain.stdout + plain.stderr
    failing = cli("chat", "--workspace", _configure(demo_workspace, stub, "server-error").root, "who owns orders?")
    assert failing.code == 1 and "internal error" not in failing.stderr and "backend exploded" in failing.stderr


def test_bad_model_settings_are_named(demo_workspace, stub) -> None:
    with pytest.raises(Exception, match="tool_choice must be one of"):
        Copilot(_configure(demo_workspace, stub, "tools", tool_choice="sometimes"))
    with pytest.raises(Exception, match="stream_tool_calls must be true or false"):
        Copilot(_configure(demo_workspace, stub, "tools", stream_tool_calls="maybe"))


def test_stub_speaks_the_api(stub) -> None:
    # The stub itself: a chat completion as the OpenAI API shapes it.
    import httpx

    reply = httpx.post(f"{stub.base}/chat/completions", json={"model": "plain", "messages": [
        {"role": "user", "content": "hi"}]}).json()
    assert reply["object"] == "chat.completion" and reply["choices"][0]["finish_reason"] == "stop"


def test_another_model_than_the_workspaces_does_not_get_its_endpoint(demo_workspace, stub) -> None:
    from meshpilot.agents.llm import ModelConfig

    settings = {"name": "openai/tools", "api_base": stub.base, "api_key": "local", "timeout": 7}
    same = ModelConfig.from_env(settings, name="openai/tools")
    other = ModelConfig.from_env(settings, name="anthropic/claude-sonnet-4-5")
    assert same.extra["api_base"] == stub.base and same.timeout_s == 7
    assert "api_base" not in other.extra and "api_key" not in other.extra and other.timeout_s == 7


def test_every_command_takes_the_workspace_model_settings(demo_workspace, stub, keyless, cli) -> None:
    # `sql ask --model` and `contracts draft --model` reach the workspace's endpoint (its api_base), not
    # the provider's public host.
    ws = _configure(demo_workspace, stub, "plain")
    stub.requests.clear()
    asked = cli("sql", "ask", "how many orders are there?", "--workspace", ws.root)
    assert "internal error" not in asked.stderr and _sent(stub, "plain")
    drafted = cli("contracts", "draft", "mesh://commerce/orders", "--workspace", ws.root, "--model", "openai/plain",
                  "--json")
    assert drafted.code == 0 and len(_sent(stub, "plain")) > 1
