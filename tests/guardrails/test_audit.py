import json

import pytest

from meshpilot.errors import InvalidArgumentError
from meshpilot.guardrails import audit


def test_every_cli_tool_call_is_logged_with_its_verdict(demo_workspace, cli) -> None:
    ws = str(demo_workspace.root)
    assert cli("sql", "run", "SELECT count(*) FROM commerce.orders", "--workspace", ws, "--role", "governance").code == 0
    refused = cli("sql", "run", "SELECT email FROM customer.customer_profile WHERE email = 'maria.keller@example.com'",
                  "--workspace", ws, "--role", "analyst")
    assert refused.code == 1
    assert cli("search", "customer email", "--workspace", ws, "--role", "analyst").code == 0
    records = audit.tail(demo_workspace.root, 10)
    assert [r["tool"] for r in records] == ["run_sql", "run_sql", "search_catalog"]
    ok, no, search = records
    assert ok["verdict"] == "allowed" and ok["outcome"] == "ok" and ok["caller"]["role"] == "governance"
    assert no["verdict"] == "refused" and "may not read customer.customer_profile.email" in no["reason"]
    assert "maria.keller" not in json.dumps(no) and "<EMAIL_ADDRESS>" in no["arguments"]["sql"]
    assert search["arguments"]["query"] == "customer email" and search["duration_ms"] > 0

    shown = cli("audit", "tail", "--workspace", ws, "--tool", "run_sql", "--json")
    assert shown.code == 0 and len(json.loads(shown.stdout)) == 2
    assert json.loads(cli("audit", "tail", "--workspace", ws, "--role", "analyst", "--json").stdout)[0]["tool"] == "run_sql"


def test_a_cut_line_does_not_hide_the_rest(tmp_path) -> None:
    audit.append(tmp_path, audit.AuditRecord("search_catalog", {"role": "analyst"}, {"query": "x"}))
    log = next((tmp_path / ".meshpilot" / "audit").glob("*.jsonl"))
    with open(log, "a") as handle:
        handle.write('{"time": "2026-11-27T10:00:00", "tool": "run_s')  # a crash mid-line
    audit.append(tmp_path, audit.AuditRecord("run_sql", {"role": "analyst"}, {"sql": "SELECT 1"}))
    assert [r["tool"] for r in audit.tail(tmp_path)] == ["search_catalog", "run_sql"]
    with pytest.raises(InvalidArgumentError, match="at least 1"):
        audit.tail(tmp_path, 0)


def test_audited_records_errors(tmp_path) -> None:
    with pytest.raises(ValueError):
        with audit.audited(tmp_path, "lineage_impact", {"role": "analyst"}, {"target": "x"}, channel="agent"):
            raise ValueError("boom")
    [record] = audit.tail(tmp_path)
    assert record["outcome"] == "error" and "boom" in record["error"] and record["channel"] == "agent"


def test_long_arguments_are_capped(tmp_path) -> None:
    from meshpilot.guardrails.audit import MAX_ARGUMENT_CHARS, AuditRecord, append, tail

    append(tmp_path, AuditRecord("run_sql", {"role": "analyst"}, {"sql": "SELECT " + "x, " * 100_000}))
    [record] = tail(tmp_path, 1)
    assert len(record["arguments"]["sql"]) < MAX_ARGUMENT_CHARS + 100 and "more characters" in record["arguments"]["sql"]
