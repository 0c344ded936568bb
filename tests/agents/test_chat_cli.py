import json

from meshpilot.mesh.workspace import Workspace


def test_one_question_with_citations(demo_workspace: Workspace, cli) -> None:
    result = cli("chat", "who owns the customer lifetime value product and what feeds it?",
                 "--workspace", str(demo_workspace.root), "--json")
    assert result.code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert "Customer Insights" in answer["text"] and "mesh://commerce/orders/orders" in answer["text"]
    assert "mesh://customer/customer-lifetime-value" in answer["citations"]
    assert "copilot_system@1.0.0" in answer["prompts"]


def test_approval_across_two_commands(demo_workspace: Workspace, cli) -> None:
    ws = str(demo_workspace.root)
    asked = cli("chat", "SELECT email FROM customer.customer_profile LIMIT 1", "--workspace", ws, "--role", "governance",
                "--thread", "cli-t1", "--json")
    assert asked.code == 0 and json.loads(asked.stdout)["interrupt"]["action"] == "run_sql_on_pii"
    busy = cli("chat", "another question", "--workspace", ws, "--role", "governance", "--thread", "cli-t1")
    assert busy.code == 1 and "waiting for an approval" in busy.stderr
    approved = cli("chat", "--thread", "cli-t1", "--approve", "--workspace", ws, "--role", "governance", "--json")
    assert approved.code == 0 and "@inbox.example" in json.loads(approved.stdout)["text"]


def test_an_analyst_cannot_get_raw_emails_through_chat(demo_workspace: Workspace, cli) -> None:
    ws = str(demo_workspace.root)
    for question in ("SELECT email FROM customer.customer_profile LIMIT 3", "list the customer emails",
                     "where do we keep customer email addresses?"):
        result = cli("chat", question, "--workspace", ws, "--role", "analyst", "--json")
        assert result.code == 0 and "@inbox.example" not in result.stdout, question


def test_an_analyst_sees_money_totals_as_numbers(demo_workspace: Workspace, cli) -> None:
    import duckdb

    ws = str(demo_workspace.root)
    with duckdb.connect(str(demo_workspace.root / "warehouse.duckdb"), read_only=True) as con:
        totals = {"What is the total order amount?": con.execute("SELECT sum(amount) FROM commerce.orders").fetchone()[0],
                  "How much did we refund in total?":
                      con.execute("SELECT sum(refund_amount) FROM commerce.returns").fetchone()[0]}
    for question, total in totals.items():
        result = cli("chat", question, "--workspace", ws, "--role", "analyst", "--json")
        assert result.code == 0, result.stderr
        text = json.loads(result.stdout)["text"]
        assert "<PHONE_NUMBER" not in text and "PII redacted" not in result.stdout, text
        assert any(shown in text for shown in (f"{total}", f"{total:,}", f"{float(total):,.2f}")), (total, text)


def test_bad_chat_invocations(demo_workspace: Workspace, cli) -> None:
    ws = str(demo_workspace.root)
    assert "say which conversation with --thread" in cli("chat", "--approve", "--workspace", ws).stderr
    assert "not both" in cli("chat", "--approve", "--deny", "--thread", "x", "--workspace", ws).stderr
    assert "Nothing is waiting" in cli("chat", "--thread", "nothing", "--deny", "--workspace", ws).stderr
    assert "needs a terminal" in cli("chat", "--workspace", ws).stderr
    assert "No role 'wizard'" in cli("chat", "hi", "--workspace", ws, "--role", "wizard").stderr
    assert "no provider prefix" in cli("chat", "hi", "--workspace", ws, "--model", "gpt-4o").stderr
    assert "The message is empty" in cli("chat", "  ", "--workspace", ws).stderr
