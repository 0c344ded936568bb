"""The web chat: one ASGI app with the chat page, product pages and the OpenLineage endpoint.

- `/`: the chat. Answers stream over server-sent events (tool calls as they happen, then the guarded
  answer rendered from Markdown), citations link to product pages, SQL shows with its result table,
  approvals are Approve/Deny buttons. The thread id lives in the browser; threads are checkpointed, so
  a reload or a server restart keeps the conversation.
- `/products/<domain>/<product>`: description, owners and contacts, SLOs, the contract, and the lineage
  diagram rendered by Mermaid, which the app serves itself (`/static/vendor/mermaid.min.js`); nothing is
  loaded from a CDN.
- `/api/v1/lineage`: the OpenLineage endpoint (server/lineage_http.py).

The caller is the server's role (`--role`, else the policy's default role). It listens on loopback.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from meshpilot.agents.copilot import Copilot
from meshpilot.errors import MeshpilotError
from meshpilot.guardrails.policy import Caller
from meshpilot.mesh.workspace import Workspace
from meshpilot.server.lineage_http import create_app as lineage_app

STATIC = Path(__file__).parent / "static"
MAX_MESSAGE_BYTES = 16_000
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_MESH_REF = re.compile(r"(?<![(\[/])\bmesh://([\w.-]+)/([\w.-]+)(/[\w.-]+)?(#\w+)?")


def product_url(domain: str, product: str, dataset: str | None = None, column: str | None = None) -> str:
    anchor = f"#{dataset.strip('/')}" if dataset else ""
    return f"/products/{domain}/{product}{anchor}"


def render_answer(text: str) -> str:
    """Markdown to HTML (raw HTML in answers is escaped), with every mesh:// citation a product-page link."""
    def link(match: re.Match) -> str:
        return f"[{match.group(0)}]({product_url(match.group(1), match.group(2), match.group(3))})"

    body = _MARKDOWN.render(_MESH_REF.sub(link, text))
    return re.sub(r'href="mesh://([\w.-]+)/([\w.-]+)([^"]*)"',
                  lambda m: f'href="{product_url(m.group(1), m.group(2))}"', body)


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, default=str, ensure_ascii=False)}\n\n"


def create_app(workspace: Workspace, caller: Caller | None = None, copilot: Copilot | None = None) -> Starlette:
    copilot = copilot or Copilot(workspace, caller)
    page = (STATIC / "index.html").read_text(encoding="utf-8")

    def turn(text: str | None, thread: str, resume: dict[str, Any] | None) -> Iterator[str]:
        try:
            for event in copilot.stream(text, thread, resume=resume):
                if event["type"] != "answer":
                    yield _event(event["type"], {k: v for k, v in event.items() if k != "type"})
                    continue
                answer = event["answer"]
                data = answer.as_dict()
                data["html"] = render_answer(answer.text)
                yield _event("answer", data)
        except MeshpilotError as exc:
            yield _event("error", {"message": exc.message, "hint": exc.hint})

    async def stream(generator: Iterator[str]) -> AsyncIterator[str]:
        async for chunk in iterate_in_threadpool(generator):
            yield chunk

    async def body(request: Request) -> dict[str, Any] | Response:
        raw = await request.body()
        if len(raw) > MAX_MESSAGE_BYTES:
            return JSONResponse({"error": f"the request is larger than {MAX_MESSAGE_BYTES} bytes"}, status_code=413)
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse({"error": "the request body must be JSON"}, status_code=400)
        if not isinstance(data, dict) or not isinstance(data.get("thread"), str) or not re.fullmatch(r"[\w-]{4,64}", data["thread"]):
            return JSONResponse({"error": "send a JSON object with a 'thread' id of 4-64 letters, digits, - or _"},
                                status_code=400)
        return data

    async def chat(request: Request) -> Response:
        data = await body(request)
        if isinstance(data, Response):
            return data
        if not isinstance(data.get("message"), str) or not data["message"].strip():
            return JSONResponse({"error": "send a non-empty 'message'"}, status_code=400)
        return StreamingResponse(stream(turn(data["message"], data["thread"], None)), media_type="text/event-stream")

    async def approve(request: Request) -> Response:
        data = await body(request)
        if isinstance(data, Response):
            return data
        if not isinstance(data.get("approved"), bool):
            return JSONResponse({"error": "send 'approved': true or false"}, status_code=400)
        resume = {"approved": data["approved"], "by": "web"}
        return StreamingResponse(stream(turn(None, data["thread"], resume)), media_type="text/event-stream")

    async def history(request: Request) -> Response:
        thread = request.path_params["thread"]
        messages = await run_in_threadpool(copilot.history, thread)
        shown = [{"role": "user" if m.type == "human" else "assistant",
                  "html": html.escape(m.content) if m.type == "human" else render_answer(m.content)}
                 for m in messages if m.type in ("human", "ai") and isinstance(m.content, str) and m.content
                 and not getattr(m, "tool_calls", None)]
        return JSONResponse({"thread": thread, "messages": shown})

    async def index(_: Request) -> Response:
        who = copilot.caller.role if copilot.caller else "unrestricted"
        return HTMLResponse(page.replace("{{mesh}}", html.escape(copilot.manifest.name))
                            .replace("{{role}}", html.escape(who)))

    async def product_page(request: Request) -> Response:
        ref = f"mesh://{request.path_params['domain']}/{request.path_params['product']}"
        try:
            details = await run_in_threadpool(_product_details, copilot, ref)
        except MeshpilotError as exc:
            return HTMLResponse(_page("Not found", f"<p>{html.escape(exc.message)}</p>"), status_code=404)
        return HTMLResponse(_page(details["name"], _product_html(details)))

    routes = [
        Route("/", index),
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/approve", approve, methods=["POST"]),
        Route("/api/threads/{thread}", history),
        Route("/products/{domain}/{product}", product_page),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes + list(lineage_app(workspace).routes))
    app.add_middleware(SecurityHeaders)
    return app


# Scripts, styles, images and connections only from this server: an answer that smuggles markup past the
# guard still cannot load from or send to another host. Mermaid styles its SVGs inline, hence the
# style-src exception; style cannot reach the network because img-src and font-src stay 'self'.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                           "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'; object-src 'none'")


class SecurityHeaders:
    """ASGI middleware adding the CSP and related headers to every response."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                            (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                            (b"x-frame-options", b"DENY")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _product_details(copilot: Copilot, ref: str) -> dict[str, Any]:
    """What a product page shows, through the same runner (policy, audit) as the chat."""
    outcome = copilot.runner.call("get_product", {"product": ref}, channel="web")
    if not outcome.ok:
        raise MeshpilotError(outcome.error)
    details = outcome.result
    product = details["product"]
    contract_path = product.get("contract")
    contract = (copilot.workspace.root / contract_path).read_text(encoding="utf-8") if contract_path else None
    diagrams = []
    for port in product.get("output_ports", []):
        dataset = (port.get("dataset") or {}).get("name")
        if dataset:
            lineage = copilot.runner.call("lineage_upstream", {"target": f"{ref}/{dataset}"}, channel="web")
            if lineage.ok:
                diagrams.append((dataset, lineage.result["mermaid"]))
    return {"ref": ref, "name": product.get("name", ref), "product": product, "team": details.get("owner_team") or {},
            "incidents": details.get("incidents", []), "checks": details.get("latest_checks", []),
            "contract": contract, "diagrams": diagrams}


def _page(title: str, content: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)} · Meshpilot</title>"
            f"<link rel=stylesheet href=/static/app.css></head><body><header><a href=/>Meshpilot</a></header>"
            f"<main class=page>{content}</main><script src=/static/vendor/mermaid.min.js></script>"
            f"<script src=/static/mermaid-init.js></script></body></html>")


def _product_html(d: dict[str, Any]) -> str:
    e = html.escape
    p, team = d["product"], d["team"]
    members = "".join(f"<li>{e(m.get('name', ''))} ({e(m.get('role') or '')}), {e(m.get('email') or '')}</li>"
                      for m in team.get("members", []))
    slos = "".join(f"<li>{e(str(s.get('kind')))}: {e(str(s.get('target')))}"
                   f"{' on ' + e(s['dataset']) if s.get('dataset') else ''}</li>" for s in p.get("slos", []))
    incidents = "".join(f"<li>{e(i['id'])} [{e(i['status'])}, {e(i['severity'])}] {e(i['title'])}</li>"
                        for i in d["incidents"])
    datasets = "".join(
        f"<section id={e(port['dataset']['name'])}><h3>{e(port['dataset']['name'])}</h3><table><tr><th>column</th>"
        f"<th>type</th><th>classification</th><th>description</th></tr>"
        + "".join(f"<tr><td>{e(c['name'])}</td><td>{e(c.get('type', ''))}</td><td>{e(c.get('classification') or '')}</td>"
                  f"<td>{e(c.get('description') or '')}</td></tr>" for c in port["dataset"].get("columns", []))
        + "</table></section>" for port in p.get("output_ports", []) if port.get("dataset"))
    diagrams = "".join(f"<h3>Lineage of {e(name)}</h3><pre class=mermaid>{e(diagram)}</pre>" for name, diagram in d["diagrams"])
    contract = f"<details><summary>Contract (ODCS)</summary><pre>{e(d['contract'])}</pre></details>" if d["contract"] else "<p>No contract.</p>"
    return (f"<h1>{e(d['name'])}</h1><p class=ref>{e(d['ref'])}</p><p>{e(p.get('description') or '')}</p>"
            f"<h2>Owners</h2><p>{e(team.get('name') or p.get('owner') or '')} (team {e(p.get('owner') or '')})"
            f"{', Slack ' + e(team['slack_channel']) if team.get('slack_channel') else ''}</p><ul>{members}</ul>"
            f"<h2>SLOs</h2><ul>{slos or '<li>none</li>'}</ul><h2>Incidents</h2><ul>{incidents or '<li>none</li>'}</ul>"
            f"<h2>Datasets</h2>{datasets}<h2>Lineage</h2>{diagrams or '<p>No lineage recorded.</p>'}"
            f"<h2>Contract</h2>{contract}")
