"""A deterministic OpenAI-compatible chat-completions server on loopback, replaying what real servers do
(llama.cpp, llama-cpp-python, vLLM, hosted providers), chosen by the request's model name:

    tools           a tool call (search_catalog) first; after a tool result, an answer citing it
    tools-split     the same, the tool call streamed in many small chunks (name, then argument pieces)
    no-stream-tools streamed with tools: a 200 with an empty stream (llama-cpp-python's "Automatic
                    streaming tool choice is not supported"); without streaming: as `tools`
    plain           an answer that uses no tool
    empty           an empty answer
    length          an answer cut at max_tokens (finish_reason: length)
    cut-stream      a stream that stops mid-answer, with no finish_reason and no [DONE]
    bad-json        a tool call whose arguments are not JSON; after the error, a valid call
    extra-args      a tool call with an argument the tool does not take; after the error, a valid call
    unknown-tool    a call to a tool that was not offered; after the error, an answer
    rate-limited    429 with Retry-After: 1 on the first request of a conversation, then as `tools`
    server-error    always 500
    slow            answers after 30 s (for timeouts)

Every request body is recorded (`Stub.requests`) so tests can assert what was sent (tool_choice,
stream, max_tokens, messages).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.servers import free_port


def _refused(message: dict[str, Any]) -> bool:
    """A tool message that says the call was wrong (Meshpilot's wording for bad arguments or tools)."""
    return any(word in str(message.get("content")) for word in ("Error:", "Invalid arguments", "There is no tool"))


def _tool_call(name: str, arguments: str, index: int = 0) -> dict[str, Any]:
    return {"index": index, "id": f"call_{index}_{abs(hash(arguments)) % 10_000}", "type": "function",
            "function": {"name": name, "arguments": arguments}}


class Stub:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.durations: list[float] = []  # seconds each request took here, for benchmarks to subtract
        self.seen: dict[str, int] = {}
        self.server: uvicorn.Server | None = None
        self.port = 0

    # --- what each scenario answers -----------------------------------------------------------------------

    def reply(self, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str]:
        """(content, tool calls, finish reason) for this request."""
        scenario = body["model"].split("/")[-1]
        messages = body.get("messages", [])
        after_tool = bool(messages) and messages[-1].get("role") == "tool"
        errors = [m for m in messages if m.get("role") == "tool" and _refused(m)]
        if scenario == "plain":
            return "Orders belong to the commerce team, I believe.", [], "stop"
        if scenario == "empty":
            return "", [], "stop"
        if scenario == "length":
            return "The orders product is owned by", [], "length"
        if scenario in ("bad-json", "extra-args") and not errors and not after_tool:
            arguments = '{"query": "orders' if scenario == "bad-json" else '{"query": "orders", "drop": true}'
            return "", [_tool_call("search_catalog", arguments)], "tool_calls"
        if scenario == "unknown-tool" and not after_tool:
            return "", [_tool_call("drop_database", '{"name": "orders"}')], "tool_calls"
        if after_tool:
            last = messages[-1]
            if _refused(last) and scenario in ("bad-json", "extra-args"):
                return "", [_tool_call("search_catalog", '{"query": "orders"}', 1)], "tool_calls"
            cited = "mesh://commerce/orders" if "mesh://commerce/orders" in str(last.get("content")) else ""
            return f"Orders is a commerce product ({cited}).", [], "stop"
        return "", [_tool_call("search_catalog", '{"query": "orders"}')], "tool_calls"

    # --- HTTP -------------------------------------------------------------------------------------------

    async def completions(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            return await self._completions(request)
        finally:
            self.durations.append(time.perf_counter() - started)

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        scenario = body["model"].split("/")[-1]
        count = self.seen[scenario] = self.seen.get(scenario, 0) + 1
        if scenario == "server-error":
            return JSONResponse({"error": {"message": "backend exploded", "type": "server_error"}}, status_code=500)
        if scenario == "rate-limited" and count == 1:
            return JSONResponse({"error": {"message": "slow down", "type": "rate_limit_error"}}, status_code=429,
                                headers={"Retry-After": "1"})
        if scenario == "slow":
            await asyncio.sleep(30)
        content, calls, finish = self.reply(body)
        created = int(time.time())
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": content or None}
            if calls:
                message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
            return JSONResponse({
                "id": f"chatcmpl-{count}", "object": "chat.completion", "created": created, "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}})
        return StreamingResponse(self._chunks(body, scenario, content, calls, finish, created),
                                 media_type="text/event-stream")

    async def _chunks(self, body: dict, scenario: str, content: str, calls: list[dict], finish: str, created: int):
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            return "data: " + json.dumps({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": created,
                                          "model": body["model"], "choices": [
                                              {"index": 0, "delta": delta, "finish_reason": finish_reason}]}) + "\n\n"

        if scenario == "no-stream-tools" and body.get("tools"):
            yield "data: [DONE]\n\n"
            return
        yield chunk({"role": "assistant", "content": ""})
        if scenario == "cut-stream":
            yield chunk({"content": "Orders is owned by"})
            return
        for start in range(0, len(content), 12):
            yield chunk({"content": content[start:start + 12]})
        for call in calls:
            if scenario == "tools-split":
                yield chunk({"tool_calls": [{"index": call["index"], "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"], "arguments": ""}}]})
                arguments = call["function"]["arguments"]
                for start in range(0, len(arguments), 3):
                    yield chunk({"tool_calls": [{"index": call["index"],
                                                 "function": {"arguments": arguments[start:start + 3]}}]})
            else:
                yield chunk({"tool_calls": [call]})
        yield chunk({}, finish)
        yield "data: [DONE]\n\n"

    async def models(self, _: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "stub", "object": "model"}]})

    # --- running ----------------------------------------------------------------------------------------

    def start(self) -> Stub:
        app = Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"]),
                                Route("/v1/models", self.models, methods=["GET"])])
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        thread = threading.Thread(target=self.server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:  # readiness, not a fixed wait
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the stub OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"
