"""The servers: lineage, MCP, web chat, Slack; and bearer tokens."""

from __future__ import annotations

from typing import Annotated
import os

import typer

from meshpilot.errors import MeshpilotError
from meshpilot.mesh.workspace import Workspace
from meshpilot.cli.common import RoleOption, TeamOption, WorkspaceOption, app, err, out, serve_app
from meshpilot.cli.chat import copilot_for

# --- servers -----------------------------------------------------------------------------------------


@serve_app.command("lineage")
def serve_lineage(
    workspace: WorkspaceOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    token: Annotated[str | None, typer.Option(envvar="MESHPILOT_LINEAGE_TOKEN", show_envvar=True,
                                              help="Require Authorization: Bearer <token>.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Server processes (default: up to 4, one per "
                                                                     "CPU): concurrent producers are served in parallel.")] = None,
) -> None:
    """Receive OpenLineage events over HTTP (POST /api/v1/lineage, as Marquez serves it), and serve
    Marquez's read API (GET /api/v1/lineage, /api/v1/namespaces/...)."""
    import uvicorn

    from meshpilot.server.lineage_http import create_app

    ws = Workspace.open(workspace)
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise MeshpilotError(f"Refusing to listen on {host} without a token.",
                             hint="Pass --token (or MESHPILOT_LINEAGE_TOKEN), or listen on 127.0.0.1.")
    workers = workers or min(4, os.cpu_count() or 1)
    err.print(f"OpenLineage endpoint: http://{host}:{port}/api/v1/lineage -> {ws.root / 'lineage'} "
              f"({workers} process{'es' if workers > 1 else ''})")
    if workers == 1:
        uvicorn.run(create_app(ws, token), host=host, port=port, log_level="warning")
        return
    os.environ.update(MESHPILOT_LINEAGE_WORKSPACE=str(ws.root.resolve()), MESHPILOT_LINEAGE_WORKER="1")
    if token:
        os.environ["MESHPILOT_LINEAGE_TOKEN"] = token
    uvicorn.run("meshpilot.server.lineage_http:app_from_environment", factory=True, workers=workers,
                host=host, port=port, log_level="warning")


@serve_app.command("mcp")
def serve_mcp(
    workspace: WorkspaceOption = None,
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP (bearer tokens) instead of stdio.")] = False,
    host: Annotated[str, typer.Option(help="HTTP: address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP: port to listen on.")] = 8765,
    role: RoleOption = None,
    team: TeamOption = None,
) -> None:
    """Serve Meshpilot's tools, resources and prompts to MCP clients (Claude, VS Code, Cursor...)."""
    from meshpilot.guardrails.policy import Caller
    from meshpilot.server.mcp import build_server

    ws = Workspace.open(workspace)
    if not http:
        # stdout is the protocol channel: nothing else may be printed there.
        build_server(ws, Caller(role=role, team=team) if role else None).run("stdio")
        return
    import uvicorn

    if role:
        raise MeshpilotError("Over HTTP the caller's role comes from their bearer token, not --role.",
                             hint="Create tokens with `meshpilot tokens create --role ROLE --name NAME`.")
    server = build_server(ws, http=True, public_url=f"http://{host}:{port}")
    err.print("Loading the catalog and the PII models…", highlight=False)
    server.callers.warm()  # before listening: concurrent first calls would all wait on these
    err.print(f"MCP endpoint: http://{host}:{port}/mcp (bearer tokens from {ws.root / 'policy.yaml'})", highlight=False)
    uvicorn.run(server.streamable_http_app(stateless_http=True, json_response=True, host=host), host=host, port=port,
                log_level="warning")


@serve_app.command("web")
def serve_web(
    workspace: WorkspaceOption = None,
    port: Annotated[int, typer.Option(help="Port to listen on (loopback).")] = 8080,
    role: RoleOption = None,
    team: TeamOption = None,
    model: Annotated[str | None, typer.Option(help="A LiteLLM model; none: the offline model.")] = None,
) -> None:
    """The web chat (and product pages, and the OpenLineage endpoint) on http://127.0.0.1:PORT."""
    import uvicorn

    from meshpilot.server.web import create_app

    copilot = copilot_for(workspace, role, team, model)
    err.print(f"Meshpilot web chat: http://127.0.0.1:{port}/ (role {copilot.caller.role if copilot.caller else 'unrestricted'})",
              highlight=False)
    uvicorn.run(create_app(copilot.workspace, copilot=copilot), host="127.0.0.1", port=port, log_level="warning")


@serve_app.command("slack")
def serve_slack(
    workspace: WorkspaceOption = None,
    socket: Annotated[bool, typer.Option("--socket", help="Socket Mode (needs SLACK_APP_TOKEN) instead of HTTP.")] = False,
    port: Annotated[int, typer.Option(help="HTTP mode: port for Slack's requests (POST /slack/events).")] = 3000,
    host: Annotated[str, typer.Option(help="HTTP mode: address to listen on.")] = "127.0.0.1",
    role: RoleOption = None,
) -> None:
    """The Slack bot: /meshpilot triage|ask, mentions, alert channels (docs/slack.md)."""
    from meshpilot.server.slack import create_app

    token, secret = os.environ.get("SLACK_BOT_TOKEN"), os.environ.get("SLACK_SIGNING_SECRET")
    if not token or not (secret or socket):
        raise MeshpilotError("The Slack bot needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (HTTP mode).",
                             hint="Create the app from the manifest in docs/slack.md and copy its credentials.")
    channels = tuple(c.strip() for c in os.environ.get("MESHPILOT_SLACK_ALERT_CHANNELS", "").split(",") if c.strip())
    bolt = create_app(Workspace.open(workspace), token=token, signing_secret=secret or "socket-mode",
                      alert_channels=channels, role=role)
    if socket:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        app_token = os.environ.get("SLACK_APP_TOKEN")
        if not app_token:
            raise MeshpilotError("Socket Mode needs SLACK_APP_TOKEN (an app-level token with connections:write).")
        SocketModeHandler(bolt, app_token).start()
        return
    import uvicorn
    from slack_bolt.adapter.starlette import SlackRequestHandler
    from starlette.applications import Starlette
    from starlette.routing import Route

    handler = SlackRequestHandler(bolt)

    async def events(request):
        return await handler.handle(request)

    err.print(f"Slack events: http://{host}:{port}/slack/events", highlight=False)
    uvicorn.run(Starlette(routes=[Route("/slack/events", events, methods=["POST"])]), host=host, port=port,
                log_level="warning")


tokens_app = typer.Typer(help="Bearer tokens for the HTTP servers (MCP, web chat).", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
def tokens_create(
    role: Annotated[str, typer.Option("--role", help="The role the token acts as.")],
    name: Annotated[str, typer.Option("--name", help="Whose token it is (shown in the audit log).")],
    team: TeamOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Create a token: its hash goes into policy.yaml; the token is printed once and stored nowhere."""
    from meshpilot.guardrails.policy import create_token

    token = create_token(Workspace.open(workspace), role, name, team)
    err.print(f"Token '{name}' for role {role} created; copy it now, it is not shown again:", highlight=False)
    out.print(token, highlight=False, markup=False)
