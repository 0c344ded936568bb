"""The web chat end to end in a real headless Chromium (Debian's `chromium`, driven by Playwright).

Screenshots go to test-artifacts/ (or $MESHPILOT_TEST_ARTIFACTS).
"""

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from meshpilot.agents.copilot import Copilot
from meshpilot.guardrails.policy import Caller
from meshpilot.mesh.workspace import Workspace
from meshpilot.server.web import create_app, render_answer

ARTIFACTS = Path(os.environ.get("MESHPILOT_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def web(demo_workspace: Workspace):
    copilot = Copilot(demo_workspace, Caller(role="governance"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(demo_workspace, copilot=copilot), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(base + "/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    yield base
    server.should_exit = True
    thread.join(timeout=10)


def test_chat_approval_and_product_page_in_chromium(web: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    requests_outside = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page()
        page.on("request", lambda r: requests_outside.append(r.url) if not r.url.startswith(web) else None)
        page.goto(web + "/")
        page.fill("#question", "who owns the customer lifetime value product and what feeds it?")
        page.click("#send")
        answer = page.locator(".msg.assistant").last
        expect(answer).to_contain_text("Customer Insights", timeout=30_000)
        citation = answer.locator('a[href="/products/customer/customer-lifetime-value"]').first
        expect(citation).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "web-chat-answer.png"), full_page=True)

        page.fill("#question", "SELECT email FROM customer.customer_profile ORDER BY customer_id LIMIT 2")
        page.click("#send")
        expect(page.locator(".approval")).to_contain_text("run_sql_on_pii", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "web-chat-approval.png"), full_page=True)
        page.click(".approval .approve")
        expect(page.locator(".msg.assistant table").last).to_contain_text("@inbox.example", timeout=30_000)

        page.reload()  # the thread survives a reload (the checkpointer)
        expect(page.locator(".msg.user").first).to_contain_text("who owns the customer lifetime value", timeout=10_000)

        citation_href = "/products/customer/customer-lifetime-value"
        page.goto(web + citation_href)
        expect(page.locator("h1")).to_have_text("Customer lifetime value")
        expect(page.locator("pre.mermaid svg").first).to_be_visible(timeout=20_000)
        expect(page.locator("body")).to_contain_text("customer-insights")
        page.screenshot(path=str(ARTIFACTS / "web-product-page.png"), full_page=True)
        browser.close()
    assert not requests_outside, requests_outside  # nothing from a CDN or anywhere else


def test_bad_requests_are_refused_clearly(web: str) -> None:
    assert httpx.post(web + "/api/chat", content=b"not json").status_code == 400
    bad_thread = httpx.post(web + "/api/chat", json={"thread": "../x", "message": "hi"})
    assert bad_thread.status_code == 400 and "thread" in bad_thread.json()["error"]
    assert httpx.post(web + "/api/chat", json={"thread": "abcd", "message": "  "}).status_code == 400
    nothing = httpx.post(web + "/api/approve", json={"thread": "abcd", "approved": True})
    assert "event: error" in nothing.text and "Nothing is waiting" in nothing.text
    assert httpx.get(web + "/products/nowhere/nothing").status_code == 404
    assert httpx.post(web + "/api/v1/lineage", content=b"{}").status_code == 400  # the OpenLineage endpoint


def test_answers_render_safely() -> None:
    rendered = render_answer("See mesh://commerce/orders/orders#amount <script>alert(1)</script>")
    assert 'href="/products/commerce/orders#orders"' in rendered
    assert "<script>" not in rendered and "&lt;script&gt;" in rendered


def test_every_page_carries_a_strict_content_security_policy(web: str) -> None:
    for path in ("/", "/products/commerce/orders", "/static/app.js"):
        policy = httpx.get(web + path).headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy and "img-src 'self' data:" in policy
        assert "unsafe-eval" not in policy and "script-src 'self' 'unsafe-inline'" not in policy
    page = httpx.get(web + "/products/commerce/orders").text
    assert "<script>" not in page  # no inline script for the policy to forbid
