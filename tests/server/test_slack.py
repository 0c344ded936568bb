"""The Slack bot through Bolt's real request processing; Slack's Web API is a local stub."""

import json
import time
from urllib.parse import urlencode

import pytest
import yaml
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from meshpilot.mesh.workspace import Workspace
from meshpilot.server.slack import create_app
from tests.server.slack_stub import SlackStub

SECRET = "test-signing-secret"
USERS = {"grace.liu@meshpilot-demo.example": "UGRACE", "marco.bianchi@meshpilot-demo.example": "UMARCO"}


def signed(body: str, secret: str = SECRET, content_type: str = "application/x-www-form-urlencoded") -> BoltRequest:
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    return BoltRequest(body=body, headers={"content-type": [content_type], "x-slack-request-timestamp": [timestamp],
                                           "x-slack-signature": [signature]})


@pytest.fixture
def slack(demo_workspace: Workspace):
    with SlackStub(USERS) as stub:
        app = create_app(demo_workspace, token="xoxb-test", signing_secret=SECRET, alert_channels=("CALERTS",),
                         client=WebClient(token="xoxb-test", base_url=stub.url), process_before_response=True,
                         user_limit=3)
        yield app, stub


def command(text: str, user: str = "UALICE", channel: str = "CONCALL") -> str:
    return urlencode({"command": "/meshpilot", "text": text, "user_id": user, "channel_id": channel,
                      "team_id": "T1", "response_url": "https://hooks.slack.invalid/x", "trigger_id": "1.2"})


def event(payload: dict) -> str:
    return json.dumps({"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event": payload,
                       "event_id": "Ev1", "event_time": int(time.time())})


def test_triage_command_posts_block_kit_with_owners_mentioned(slack) -> None:
    app, stub = slack
    response = app.dispatch(signed(command("triage INC-0003")))
    assert response.status == 200
    [message] = stub.posted()
    blocks = message["blocks"]
    assert blocks[0]["type"] == "header" and "INC-0003" in blocks[0]["text"]["text"]
    text = json.dumps(blocks)
    assert "crm.public.customers" in text  # the root cause, first
    assert "<@UGRACE>" in text and "#customer-insights" in text  # owners as mentions
    assert "@meshpilot-demo.example" not in text and "@inbox.example" not in text  # no e-mail ever posted
    actions = next(b for b in blocks if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["meshpilot_ack", "meshpilot_assign", "meshpilot_lineage"]


def test_bad_signatures_are_refused(slack) -> None:
    app, stub = slack
    assert app.dispatch(signed(command("triage INC-0003"), secret="wrong")).status == 401
    stale = signed(command("help"))
    stale.headers["x-slack-request-timestamp"] = [str(int(time.time()) - 3600)]
    assert app.dispatch(stale).status == 401
    assert stub.calls == []


def test_buttons_update_the_incident(slack, demo_workspace: Workspace) -> None:
    app, stub = slack

    def click(action: str, value: str) -> None:
        payload = {"type": "block_actions", "user": {"id": "UALICE", "username": "alice"}, "team": {"id": "T1"},
                   "api_app_id": "A1", "channel": {"id": "CONCALL"}, "message": {"ts": "1.000100"},
                   "container": {"type": "message"}, "trigger_id": "1.2", "response_url": "https://hooks.slack.invalid/x",
                   "actions": [{"action_id": action, "block_id": "b", "value": value, "type": "button"}]}
        assert app.dispatch(signed(urlencode({"payload": json.dumps(payload)}))).status == 200

    click("meshpilot_ack", "INC-0003")
    click("meshpilot_assign", "INC-0003")
    click("meshpilot_lineage", "mesh://customer/customer-profile/customer_profile")
    incident = yaml.safe_load((demo_workspace.root / "incidents" / "INC-0003.yaml").read_text())
    assert incident["status"] == "investigating" and incident["assignee"] == "alice"
    assert [e["actor"] for e in incident["timeline"][-2:]] == ["slack:UALICE", "slack:UALICE"]
    replies = [m["text"] for m in stub.posted()]
    assert "INC-0003 is now investigating" in replies[0] and "crm.public.customers" in replies[2]


def test_mentions_are_answered_in_a_thread_without_pii(slack) -> None:
    app, stub = slack
    body = event({"type": "app_mention", "user": "UALICE", "channel": "CONCALL", "ts": "100.1",
                  "text": "<@UBOT> who owns the customer profile?"})
    assert app.dispatch(signed(body, content_type="application/json")).status == 200
    [reply] = stub.posted()
    assert reply["thread_ts"] == "100.1" and "Customer Insights" in reply["text"]
    assert "@meshpilot-demo.example" not in reply["text"]


def test_alerts_in_alert_channels_are_triaged(slack) -> None:
    app, stub = slack
    elementary = {"type": "message", "channel": "CALERTS", "ts": "200.1", "text": "", "attachments": [{
        "title": "dbt test failed", "fields": [{"title": "Test", "value": "profile_email_not_null"},
                                               {"title": "Model", "value": "customer.customer_profile"}]}]}
    assert app.dispatch(signed(event(elementary), content_type="application/json")).status == 200
    [message] = stub.posted()
    assert message["thread_ts"] == "200.1" and "profile_email_not_null" in json.dumps(message["blocks"])
    elsewhere = dict(elementary, channel="CRANDOM", ts="201.1")
    app.dispatch(signed(event(elsewhere), content_type="application/json"))
    assert len(stub.posted()) == 1  # only configured alert channels are watched


def test_rate_limit_per_user(slack) -> None:
    app, stub = slack
    for _ in range(4):
        app.dispatch(signed(command("help", user="UBOB")))
    notes = [m["text"] for m in stub.posted("chat.postEphemeral")]
    assert sum("rate limited" in n for n in notes) == 1 and len(notes) == 4
