"""The MCP server, driven by the official MCP client: in-process, over stdio and over streamable HTTP."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
import yaml
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from meshpilot.mesh.workspace import Workspace
from meshpilot.server.mcp import build_server

# One valid call per tool, on the demo mesh.
CALLS = {
    "search_catalog": {"query": "customer email", "k": 3},
    "get_product": {"product": "orders"},
    "link_schema": {"question": "revenue per channel"},
    "validate_sql": {"sql": "SELECT channel, count(*) FROM commerce.orders GROUP BY 1"},
    "run_sql": {"sql": "SELECT channel, count(*) AS n FROM commerce.orders GROUP BY 1 ORDER BY 1"},
    "ask_sql": {"question": "how many orders are there?"},
    "lineage_impact": {"target": "mesh://commerce/orders/orders#amount", "change": "drop"},
    "lineage_upstream": {"target": "mesh://customer/customer-lifetime-value/customer_lifetime_value"},
    "contract_draft": {"dataset": "mesh://commerce/returns/returns"},
    "contract_lint": {"product": "orders"},
    "contract_diff": {"product": "orders", "proposed": "contracts/commerce.orders.odcs.yaml"},
    "contract_test": {"product": "returns"},
    "list_incidents": {"status": "open"},
    "triage_incident": {"ref": "INC-0003"},
}


def meshpilot_command() -> str:
    found = Path(sys.executable).parent / "meshpilot"
    return str(found) if found.exists() else shutil.which("meshpilot")


def run(coroutine_fn):
    return anyio.run(coroutine_fn)


async def call_every_tool(client: Client) -> None:
    for name, arguments in CALLS.items():
        result = await client.call_tool(name, arguments)
        assert not result.is_error, (name, result.content[0].text)
        assert isinstance(result.structured_content, dict), name


@pytest.mark.parametrize(("arguments", "said"), [
    ({}, "Invalid arguments for search_catalog: query: Field required."),
    ({"query": "x", "drop": True}, "'drop' is not an argument of search_catalog (it takes: query, kind, domain, k)"),
    ({"query": "x", "k": "many"}, "k: Input should be a valid integer"),
])
def test_argument_errors_are_in_the_users_terms(demo_workspace: Workspace, arguments: dict, said: str) -> None:
    # The tool's own model judges them (as on every channel): no internal model names, no pydantic URLs,
    # and an argument the tool does not take is refused, not dropped.
    async def main():
        async with Client(build_server(demo_workspace)) as client:
            result = await client.call_tool("search_catalog", arguments)
            text = result.content[0].text
            assert result.is_error and said in text
            assert "Arguments" not in text and "errors.pydantic.dev" not in text

    run(main)


def test_every_tool_is_listed_described_and_callable(demo_workspace: Workspace) -> None:
    server = build_server(demo_workspace)

    async def main():
        async with Client(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(CALLS) | {"publish_contract", "update_incident"} == set(tools)
            assert tools["run_sql"].annotations.read_only_hint is True
            assert tools["publish_contract"].annotations.read_only_hint is False
            assert tools["search_catalog"].input_schema["required"] == ["query"]
            assert "Search the data catalog" in tools["search_catalog"].description  # from the prompt registry
            await call_every_tool(client)
            lineage = await client.call_tool("lineage_impact", CALLS["lineage_impact"])
            assert "mesh://commerce/orders/orders#amount" in lineage.structured_content["source"]

    run(main)


def test_policy_guards_and_errors_reach_the_client(demo_workspace: Workspace) -> None:
    server = build_server(demo_workspace)  # stdio default: the policy's default role, analyst

    async def main():
        async with Client(server) as client:
            refused = await client.call_tool("run_sql", {"sql": "SELECT email FROM customer.customer_profile"})
            assert refused.is_error and "may not read customer.customer_profile.email" in refused.content[0].text
            publish = await client.call_tool("publish_contract", {"product": "orders", "proposed": "x.yaml"})
            assert publish.is_error and "needs a human's approval" in publish.content[0].text
            bad = await client.call_tool("search_catalog", {"query": "orders", "k": 0})
            assert bad.is_error
            with pytest.raises(Exception, match="No product|no product|not found|Not found"):
                await client.read_resource("mesh://nowhere/nothing")

    run(main)
    log = [json.loads(line) for p in (demo_workspace.root / ".meshpilot" / "audit").glob("*.jsonl")
           for line in p.read_text().splitlines()]
    assert {r["channel"] for r in log} == {"mcp"}
    assert [r["verdict"] for r in log if r["tool"] == "publish_contract"] == ["refused"]


def test_resources_and_prompts(demo_workspace: Workspace) -> None:
    server = build_server(demo_workspace)

    async def main():
        async with Client(server) as client:
            listed = {str(r.uri) for r in (await client.list_resources()).resources}
            assert "mesh://customer/customer-lifetime-value" in listed
            product = json.loads((await client.read_resource("mesh://commerce/orders")).contents[0].text)
            assert product["ref"] == "mesh://commerce/orders"
            contract = (await client.read_resource("mesh://commerce/orders/contract/odcs")).contents[0].text
            assert yaml.safe_load(contract)["kind"] == "DataContract"
            diagram = (await client.read_resource("mesh://commerce/orders/orders/lineage")).contents[0].text
            assert "graph LR" in diagram
            prompts = {p.name for p in (await client.list_prompts()).prompts}
            assert {"brief_product", "review_change"} <= prompts
            brief = await client.get_prompt("brief_product", {"product": "orders"})
            assert '"orders"' in brief.messages[0].content.text

    run(main)


def test_allow_and_deny_lists(demo_workspace: Workspace) -> None:
    manifest = demo_workspace.root / "meshpilot.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["mcp"] = {"deny_tools": ["run_sql", "ask_sql"]}
    manifest.write_text(yaml.safe_dump(data))

    async def main():
        async with Client(build_server(demo_workspace)) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "run_sql" not in names and "search_catalog" in names

    run(main)
    data["mcp"] = {"allow_tools": ["search_catalog", "drop_everything"]}
    manifest.write_text(yaml.safe_dump(data))
    from meshpilot.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="drop_everything"):
        build_server(demo_workspace)


def test_stdio_end_to_end(demo_workspace: Workspace) -> None:
    params = StdioServerParameters(command=meshpilot_command(),
                                   args=["serve", "mcp", "--workspace", str(demo_workspace.root), "--role", "governance"],
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})

    async def main():
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert set(CALLS) <= names
            await call_every_tool(client)
            result = await client.call_tool("get_product", {"product": "customer lifetime value"})
            assert result.structured_content["ref"] == "mesh://customer/customer-lifetime-value"

    run(main)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def http_server(demo_workspace: Workspace, cli):
    path = demo_workspace.root / "policy.yaml"
    policy = yaml.safe_load(path.read_text())
    policy["roles"]["viewer"] = {"domains": ["commerce"], "pii": "refuse", "tools": ["search_catalog", "get_product"]}
    path.write_text(yaml.safe_dump(policy))
    tokens = {}
    for role in ("analyst", "governance", "viewer"):
        created = cli("tokens", "create", "--role", role, "--name", f"{role}-token", "--workspace", str(demo_workspace.root))
        assert created.code == 0, created.stderr
        tokens[role] = created.stdout.strip()
    process, url = start_http_server(demo_workspace)
    try:
        yield url, tokens
    finally:
        process.terminate()
        process.wait(timeout=10)


def start_http_server(workspace: Workspace) -> tuple[subprocess.Popen, str]:
    """`meshpilot serve mcp --http` on a free port, returned once it answers (readiness, not a sleep)."""
    port = _free_port()
    process = subprocess.Popen([meshpilot_command(), "serve", "mcp", "--http", "--port", str(port), "--workspace",
                                str(workspace.root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    return process, url


def _client(url: str, token: str | None) -> Client:
    import httpx2

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=30)))


def test_http_requires_a_token_and_maps_it_to_a_role(http_server) -> None:
    url, tokens = http_server
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    assert httpx.post(url, json=initialize, headers=headers).status_code == 401
    assert httpx.post(url, json=initialize, headers={**headers, "Authorization": "Bearer nope"}).status_code == 401

    async def main():
        async with _client(url, tokens["viewer"]) as client:
            assert {t.name for t in (await client.list_tools()).tools} == {"search_catalog", "get_product"}
            refused = await client.call_tool("run_sql", {"sql": "SELECT 1"})
            assert refused.is_error and "may not use run_sql" in refused.content[0].text
            hidden = await client.call_tool("get_product", {"product": "customer-profile"})
            assert hidden.is_error and "may not see the domain 'customer'" in hidden.content[0].text
        async with _client(url, tokens["analyst"]) as client:
            pii = await client.call_tool("run_sql", {"sql": "SELECT email FROM customer.customer_profile"})
            assert pii.is_error and "personal data" in pii.content[0].text
        async with _client(url, tokens["governance"]) as client:
            ok = await client.call_tool("run_sql", {"sql": "SELECT count(*) AS n FROM customer.customer_profile"})
            assert not ok.is_error and ok.structured_content["rows"] == [[2400]]
            assert set(CALLS) <= {t.name for t in (await client.list_tools()).tools}
            await call_every_tool(client)

    run(main)


def test_token_creation_errors(demo_workspace: Workspace, cli) -> None:
    ws = str(demo_workspace.root)
    assert "No role 'wizard'" in cli("tokens", "create", "--role", "wizard", "--name", "x", "--workspace", ws).stderr
    assert cli("tokens", "create", "--role", "analyst", "--name", "bob", "--workspace", ws).code == 0
    again = cli("tokens", "create", "--role", "analyst", "--name", "bob", "--workspace", ws)
    assert again.code == 1 and "named 'bob' exists already" in again.stderr
    policy = yaml.safe_load((demo_workspace.root / "policy.yaml").read_text())
    assert [t["name"] for t in policy["tokens"]] == ["bob"] and len(policy["tokens"][0]["sha256"]) == 64
