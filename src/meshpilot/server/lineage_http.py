"""An OpenLineage HTTP endpoint, as Marquez serves it: producers POST events to /api/v1/lineage, and
Marquez clients read the graph back (GET /api/v1/lineage, /api/v1/namespaces/..., see server.marquez).

Each event is validated (the OpenLineage JSON schema and our own checks) before anything of it is
stored; an invalid one gets 400 with the reasons, and a batch with one invalid event stores none.
Accepted events are appended to `lineage/http-<date>.jsonl` in the workspace (`http-<date>-<pid>.jsonl`
when several server processes share the port), one line each, flushed to disk before the 201 (with
concurrent requests' events in one write and one fsync): a crash can at worst tear the last line, which
the reader then ignores (it was never acknowledged). With a token configured, requests need `Authorization: Bearer <token>`.
Gzip-compressed bodies (the client's `compression: gzip`) are accepted.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meshpilot.mesh.files import LocatedDocument
from meshpilot.mesh.workspace import Workspace, validate_event

MAX_BODY_BYTES = 10 * 1024 * 1024


class LineageLog:
    """Appends validated events to this process's HTTP lineage log, durable (fsync'ed) before `append`
    returns. Concurrent appends are committed together: one writer thread takes every batch waiting,
    writes them at once and fsyncs once, then releases all their callers (a group commit), so N
    concurrent requests cost one fsync, not N. Each process writes its own file (several server
    processes never interleave lines)."""

    def __init__(self, workspace: Workspace):
        self.folder = workspace.root / "lineage"
        self._pending: list[tuple[bytes, Callable[[BaseException | None], None]]] = []
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None

    def path(self) -> Path:
        suffix = "" if os.environ.get("MESHPILOT_LINEAGE_WORKER") is None else f"-{os.getpid()}"
        return self.folder / f"http-{datetime.now(tz=UTC):%Y%m%d}{suffix}.jsonl"

    def submit(self, events: list[dict], done: Callable[[BaseException | None], None]) -> None:
        """Queue events; `done(None)` is called (from the writer thread) once they are on disk, or
        `done(error)` if writing failed."""
        lines = "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in events).encode()
        with self._wake:
            self._pending.append((lines, done))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_forever, name="lineage-log", daemon=True)
                self._writer.start()
            self._wake.notify()

    def append(self, events: list[dict]) -> None:
        """Write events and return once they are durable."""
        finished = threading.Event()
        failure: list[BaseException] = []

        def done(error: BaseException | None) -> None:
            if error is not None:
                failure.append(error)
            finished.set()
        self.submit(events, done)
        finished.wait()
        if failure:
            raise failure[0]

    def _write_forever(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                batch, self._pending = self._pending, []
            error: BaseException | None = None
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, b"".join(lines for lines, _ in batch))
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                error = exc
            for _, done in batch:
                done(error)


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
        loop = asyncio.get_running_loop()
        durable = loop.create_future()

        def done(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(lambda: durable.done() or (
                durable.set_exception(error) if error else durable.set_result(None)))
        log.submit(events, done)
        try:
            await durable
        except OSError as exc:
            return JSONResponse({"error": f"could not store the events: {exc.strerror}"}, status_code=503)
        return Response(status_code=201)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "workspace": str(workspace.root)})

    from meshpilot.server.marquez import routes

    return Starlette(routes=[  # the ingest routes first: every event request is matched against those before them
        Route("/api/v1/lineage", receive, methods=["POST"]),
        Route("/api/v1/lineage/batch", receive, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        *routes(workspace, token),
    ])


def app_from_environment() -> Starlette:
    """The app of one of several server processes (`serve lineage --workers N`): uvicorn starts each
    from an import string, so the workspace and token come through the environment."""
    return create_app(Workspace.open(os.environ["MESHPILOT_LINEAGE_WORKSPACE"]),
                      os.environ.get("MESHPILOT_LINEAGE_TOKEN") or None)
