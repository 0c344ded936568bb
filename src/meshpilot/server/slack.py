"""The Slack bot (slack-bolt): triage and questions where the on-call person already is.

- `/meshpilot triage <incident|check|dataset>`, `/meshpilot ask <question>`, `/meshpilot help`;
- app mentions are answered by the copilot in a thread;
- messages in the configured alert channels (OpenMetadata and Elementary alerts, or plain text naming a
  check or a dataset) are triaged in a thread;
- triage messages are Block Kit: a severity header, root-cause candidates with evidence, the blast radius,
  the owners mentioned (Slack users found by their e-mail, never the e-mail itself), and buttons
  (acknowledge, assign to me, show lineage) that update the incident.
Every text posted passes the output guard as for a caller who may not read PII. Requests are rate
limited per user and per channel. Socket Mode or HTTP (`meshpilot serve slack`).
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict, deque
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from meshpilot.agents.copilot import Copilot
from meshpilot.errors import MeshpilotError
from meshpilot.guardrails.output import guard_output
from meshpilot.guardrails.policy import Caller
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools.incidents import TriageReport, update_incident

SEVERITY_EMOJI = {"SEV1": ":rotating_light:", "SEV2": ":red_circle:", "SEV3": ":large_orange_circle:", "SEV4": ":white_circle:"}
MAX_SECTION = 2900  # Slack's limit is 3000 characters per section text
HELP = ("*Meshpilot*: `/meshpilot triage INC-0003` (or a check, a dataset, an alert's text), "
        "`/meshpilot ask who owns orders?`, or mention me with a question.")


class RateLimiter:
    """At most `limit` requests per `window` seconds for each key (a user, a channel)."""

    def __init__(self, limit: int, window: float = 60.0):
        self.limit, self.window = limit, window
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            hits = self._hits[key]
            while hits and now - hits[0] > self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True


def safe(text: str) -> str:
    """What may be posted to a channel: no personal data, no links to unknown hosts."""
    return guard_output(text, may_read_pii=False).text


def _cut(text: str, limit: int = MAX_SECTION) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def triage_blocks(report: TriageReport, mentions: list[str], web_url: str | None = None) -> list[dict[str, Any]]:
    """Block Kit for a triage report, within Slack's limits."""
    check = report.check or {}
    header = f"{report.severity} · {report.subject}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(f"{SEVERITY_EMOJI.get(report.severity, '')} {header}".strip(), 150), "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(safe(
            f"*{report.dataset}*" + (f" · check `{check.get('id')}` failing {report.failing_since}× since "
                                      f"{report.first_failure:%Y-%m-%d %H:%M} UTC" if check and report.first_failure else "")))}},
    ]
    if report.candidates:
        lines = [f"{i}. *{c.summary}* (score {c.score})\n      " + "\n      ".join(f"• {e}" for e in c.evidence[-2:])
                 for i, c in enumerate(report.candidates[:3], start=1)]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(safe("*Root-cause candidates*\n" + "\n".join(lines)))}})
    blast = report.blast_radius
    blocks.append({"type": "section", "fields": [
        {"type": "mrkdwn", "text": _cut(safe("*Blast radius*\n" + ("\n".join(blast["products"]) or "none")), 2000)},
        {"type": "mrkdwn", "text": _cut(safe("*Consumers*\n" + ("\n".join(blast["consumers"]) or "none")), 2000)},
    ]})
    owners = " ".join(mentions) or ", ".join(f"{o['name']} ({o.get('slack_channel') or o['team']})" for o in report.owners)
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut("*Owners* " + owners if mentions else safe("*Owners* " + owners))}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(safe(
        "Severity: " + "; ".join(report.severity_reasons) + ". Next: " + " ".join(report.next_steps)), 2000)}]})
    incident = (report.incident or {}).get("id")
    buttons = []
    if incident:
        buttons += [{"type": "button", "action_id": "meshpilot_ack", "text": {"type": "plain_text", "text": "Acknowledge"},
                     "value": incident, "style": "primary"},
                    {"type": "button", "action_id": "meshpilot_assign", "text": {"type": "plain_text", "text": "Assign to me"},
                     "value": incident}]
    buttons.append({"type": "button", "action_id": "meshpilot_lineage", "text": {"type": "plain_text", "text": "Show lineage"},
                    "value": report.dataset})
    blocks.append({"type": "actions", "elements": buttons})
    return blocks


def create_app(workspace: Workspace, *, token: str, signing_secret: str, client: WebClient | None = None,
               alert_channels: tuple[str, ...] = (), role: str | None = None, user_limit: int = 10,
               channel_limit: int = 30, process_before_response: bool = False) -> App:
    """`process_before_response`: run listeners before answering Slack (tests, FaaS); by default Bolt
    acknowledges within Slack's 3 s and finishes in the background."""
    copilot = Copilot(workspace, Caller(role=role) if role else None)
    app = App(token=token, signing_secret=signing_secret, client=client or WebClient(token=token),
              token_verification_enabled=False, process_before_response=process_before_response)
    users, channels = RateLimiter(user_limit), RateLimiter(channel_limit)

    def allowed(client: WebClient, user: str | None, channel: str) -> bool:
        if (user is None or users.allow(user)) and channels.allow(channel):
            return True
        if user:
            client.chat_postEphemeral(channel=channel, user=user,
                                      text="Meshpilot is rate limited here; try again in a minute.")
        return False

    def mentions(client: WebClient, report: TriageReport) -> list[str]:
        """Owners as Slack mentions, looked up by e-mail: the address itself is never posted."""
        found = []
        for owner in report.owners:
            emails = [owner.get("oncall")] + [m.get("email") for m in owner.get("members", [])]
            for email in [e for e in emails if e and "@" in e][:2]:
                try:
                    user = client.users_lookupByEmail(email=email)["user"]["id"]
                except SlackApiError:
                    continue
                if f"<@{user}>" not in found:
                    found.append(f"<@{user}>")
            if owner.get("slack_channel"):
                found.append(owner["slack_channel"])
        return found

    def post_triage(client: WebClient, channel: str, ref: str, thread_ts: str | None = None) -> None:
        outcome = copilot.runner.call("triage_incident", {"ref": ref}, channel="slack")  # policy and audit
        if not outcome.ok:
            client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=safe(f"Could not triage: {outcome.error}"))
            return
        report = TriageReport.model_validate(outcome.result)
        client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=safe(f"{report.severity}: {report.subject}"),
                                blocks=triage_blocks(report, mentions(client, report)))

    def answer(client: WebClient, channel: str, question: str, thread: str, thread_ts: str | None) -> None:
        try:
            reply = copilot.ask(question, thread_id=thread)
            text = reply.text if not reply.interrupt else (
                f"This needs approval ({reply.interrupt['reason']}); approve it in `meshpilot chat` or the web chat.")
        except MeshpilotError as exc:
            text = f"Sorry: {exc.message}"
        client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=_cut(safe(text), 3900))

    @app.command("/meshpilot")
    def command(ack, command, client: WebClient) -> None:
        ack()
        channel, user, text = command["channel_id"], command.get("user_id"), (command.get("text") or "").strip()
        if not allowed(client, user, channel):
            return
        verb, _, rest = text.partition(" ")
        if verb == "triage" and rest.strip():
            post_triage(client, channel, rest.strip())
        elif verb == "ask" and rest.strip():
            answer(client, channel, rest.strip(), f"slack-{channel}-{user}", None)
        else:
            client.chat_postEphemeral(channel=channel, user=user, text=HELP)

    @app.event("app_mention")
    def mention(event, client: WebClient) -> None:
        channel, user = event["channel"], event.get("user")
        if not allowed(client, user, channel):
            return
        question = re.sub(r"<@[A-Z0-9]+>", "", event.get("text", "")).strip() or "help"
        thread_ts = event.get("thread_ts") or event["ts"]
        answer(client, channel, question, f"slack-{channel}-{thread_ts}", thread_ts)

    @app.event("message")
    def alert(event, client: WebClient) -> None:
        channel = event.get("channel")
        if channel not in alert_channels or event.get("subtype") in ("message_changed", "message_deleted") \
                or event.get("thread_ts"):
            return
        text = _alert_text(event)
        if text and allowed(client, None, channel):
            post_triage(client, channel, text, thread_ts=event["ts"])

    @app.action("meshpilot_ack")
    def acknowledge(ack, body, client: WebClient) -> None:
        ack()
        _update(client, body, status="investigating", note="acknowledged in Slack")

    @app.action("meshpilot_assign")
    def assign(ack, body, client: WebClient) -> None:
        ack()
        _update(client, body, assignee=(body.get("user") or {}).get("username") or (body.get("user") or {}).get("id"))

    @app.action("meshpilot_lineage")
    def lineage(ack, body, client: WebClient) -> None:
        ack()
        dataset = body["actions"][0]["value"]
        outcome = copilot.runner.call("lineage_upstream", {"target": dataset}, channel="slack")
        text = ("Upstream of " + dataset + ":\n" + "\n".join(sorted({i["ref"].split("#")[0] for i in outcome.result["items"]}))
                if outcome.ok else f"Could not read the lineage: {outcome.error}")
        client.chat_postMessage(channel=body["channel"]["id"], thread_ts=(body.get("message") or {}).get("ts"),
                                text=_cut(safe(text), 3900))

    def _update(client: WebClient, body: dict[str, Any], **changes: Any) -> None:
        incident = body["actions"][0]["value"]
        actor = f"slack:{(body.get('user') or {}).get('id', 'unknown')}"
        channel, ts = body["channel"]["id"], (body.get("message") or {}).get("ts")
        try:
            updated = update_incident(workspace, incident, actor, **changes)
            copilot.runner.context.forget_triage()
            user = (body.get("user") or {}).get("id")
            # The assignee is the Slack user who clicked: a mention, which Slack renders, not a name to redact.
            assignee = f"<@{user}>" if user and "assignee" in changes else updated.assignee
            text = safe(f"{updated.id} is now {updated.status.value}") + (f", assigned to {assignee}" if assignee else "")
        except MeshpilotError as exc:
            text = safe(f"Could not update {incident}: {exc.message}")
        client.chat_postMessage(channel=channel, thread_ts=ts, text=_cut(text, 3900))

    return app


def _alert_text(event: dict[str, Any]) -> str | None:
    """The text of a monitor alert: plain text, or the text of its attachments and blocks (OpenMetadata and
    Elementary post their details there)."""
    parts = [event.get("text") or ""]
    for attachment in event.get("attachments") or []:
        parts += [attachment.get("title") or "", attachment.get("text") or "", attachment.get("fallback") or ""]
        parts += [f"{f.get('title')}: {f.get('value')}" for f in attachment.get("fields") or []]
    for block in event.get("blocks") or []:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text.get("text") or "")
        for field in block.get("fields") or []:
            parts.append(field.get("text") or "")
    text = "\n".join(p for p in parts if p).strip()
    return text or None
