"""A local stand-in for Slack's Web API: records every call and checks Block Kit payloads against Slack's
limits, answering as Slack does ({"ok": false, "error": ...} on a bad payload)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

BLOCK_TYPES = {"header", "section", "context", "actions", "divider", "image", "input", "rich_text"}


def block_problems(blocks: list[dict]) -> list[str]:
    problems = []
    if len(blocks) > 50:
        problems.append("more than 50 blocks")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind not in BLOCK_TYPES:
            problems.append(f"block {i}: unknown type {kind}")
        if kind == "header" and (block["text"]["type"] != "plain_text" or len(block["text"]["text"]) > 150):
            problems.append(f"block {i}: header must be plain_text of at most 150 characters")
        if kind == "section":
            if "text" in block and len(block["text"]["text"]) > 3000:
                problems.append(f"block {i}: section text over 3000 characters")
            for field in block.get("fields", []):
                if len(field["text"]) > 2000:
                    problems.append(f"block {i}: field over 2000 characters")
            if len(block.get("fields", [])) > 10:
                problems.append(f"block {i}: more than 10 fields")
        if kind == "actions":
            if len(block["elements"]) > 25:
                problems.append(f"block {i}: more than 25 elements")
            for element in block["elements"]:
                if len(element["text"]["text"]) > 75 or len(element.get("value", "")) > 2000:
                    problems.append(f"block {i}: button text or value too long")
        if kind == "context" and len(block["elements"]) > 10:
            problems.append(f"block {i}: more than 10 context elements")
    return problems


class SlackStub:
    def __init__(self, users: dict[str, str] | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.users = users or {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                method = self.path.rsplit("/", 1)[-1]
                raw = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                if "json" in (self.headers.get("content-type") or ""):
                    body = json.loads(raw or "{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                if isinstance(body.get("blocks"), str):
                    body["blocks"] = json.loads(body["blocks"])
                stub.calls.append((method, body))
                answer = stub.answer(method, body)
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, method: str, body: dict) -> dict:
        if method == "users.lookupByEmail":
            user = self.users.get(body.get("email", ""))
            return {"ok": True, "user": {"id": user}} if user else {"ok": False, "error": "users_not_found"}
        if method in ("chat.postMessage", "chat.postEphemeral", "chat.update"):
            if not body.get("channel"):
                return {"ok": False, "error": "channel_not_found"}
            problems = block_problems(body.get("blocks") or [])
            if problems:
                return {"ok": False, "error": "invalid_blocks", "errors": problems}
            return {"ok": True, "channel": body["channel"], "ts": f"{len(self.calls)}.000100"}
        return {"ok": True}

    def posted(self, method: str = "chat.postMessage") -> list[dict]:
        return [body for name, body in self.calls if name == method]

    def __enter__(self) -> SlackStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
