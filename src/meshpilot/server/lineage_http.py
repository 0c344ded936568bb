"""An OpenLineage HTTP endpoint, as Marquez serves it: producers POST events to /api/v1/lineage, and
Marquez clients read the graph back (GET /api/v1/lineage, /api/v1/namespaces/..., see server.marquez).

Each event is validated (the OpenLineage JSON schema and our own checks) before anything of it is
stored; an invalid one gets 400 with the reasons, and a batch with one invalid event stores none.
Accepted events are appended to `lineage/http-<date>.jsonl` in the workspace, one line each, flushed
to disk before the 201: a crash can at worst tear the last line, which the reader then ignores (it was
never acknowledged). With a token configured, requests need `Authorization: Bearer <token>`.
Gzip-compressed bodies (the client's `compression: gzip`) are accepted.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meshpilot.mesh.files import LocatedDocument
from meshpilot.mesh.workspace import Workspace, validate_event

MAX_BODY_BYTES = 10 * 1024 * 1024


class LineageLog:
    """Appends validated events to the workspace's HTTP lineage log, one fsync'ed line each."""

    def __init__(self, workspace: Workspace):
        self.folder = workspace.root / "lineage"
        self.lock = threading.Lock()

    def append(self, events: list[dict]) -> None:
        lines = "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in events).encode()
        path = self.folder / f"http-{datetime.now(tz=UTC):%Y%m%d}.jsonl"
        with self.lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, lines)
                os.fsync(fd)
            finally:
                os.close(fd)


def create_app(workspace: Workspace, token: str | None = None) -> Starlette:
    log = LineageLog(workspace)

    async def receive(request: Request) -> Response:
        if token and request.headers.get("authorization") != f"Bearer {token}":
            return JSONResponse({"error": "unauthorized: send Authorization: Bearer <token>"}, status_code=401)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": f"the body is larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
        if request.headers.get("content-encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except OSError:
                return JSONResponse({"error": "the body is not valid gzip"}, status_code=400)
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return JSONResponse({"error": f"the body is not JSON: {exc}"}, status_code=400)
        events = data if isinstance(data, list) else [data]
        problems = []
        for index, event in enumerate(events):
            if not isinstance(event, dict):
                problems.append(f"event {index + 1}: an OpenLineage event is a JSON object")
                continue
            _, event_problems = validate_event(LocatedDocument(f"event {index + 1}", event, {}))
            problems += [p.message if len(events) == 1 else f"event {index + 1}: {p.message}" for p in event_problems]
        if problems:
            return JSONResponse({"error": "invalid OpenLineage event; nothing was stored", "problems": problems},
                                status_code=400)
        await run_in_threadpool(log.append, events)
        return Response(status_code=201)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "workspace": str(workspace.root)})

    from meshpilot.server.marquez import routes

    return Starlette(routes=[
        *routes(workspace, token),
        Route("/api/v1/lineage", receive, methods=["POST"]),
        Route("/api/v1/lineage/batch", receive, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ])
