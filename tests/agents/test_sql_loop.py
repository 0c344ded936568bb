import importlib.util
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from meshpilot.agents.sql_loop import SqlLoop
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools.catalog import Catalog
from meshpilot.tools.sql import DuckDBEngine


class RecordingModel(GenericFakeChatModel):
    """Replies from a script and keeps the prompts it was sent."""

    prompts: list = []

    def invoke(self, prompt, *args, **kwargs):
        self.prompts.append(str(prompt))
        return super().invoke(prompt, *args, **kwargs)


@pytest.fixture
def loop_for(demo_workspace: Workspace):
    def make(model=None, **kw) -> SqlLoop:
        return SqlLoop(Catalog.open(demo_workspace), DuckDBEngine(demo_workspace.warehouse_path), model=model, **kw)

    return make


def test_a_wrong_column_is_repaired_from_the_validators_words(loop_for) -> None:
    model = RecordingModel(messages=iter([
        AIMessage("```sql\nSELECT count(*) FROM customer.customer_profile WHERE emial IS NULL\n```"),
        AIMessage("SELECT count(*) FROM customer.customer_profile WHERE email IS NULL;"),
    ]), prompts=[])
    answer = loop_for(model).ask("how many customers have no email address?")
    assert answer.attempts == 2 and answer.mode == "model" and answer.prompt == "sql_generate@1.0.0"
    assert answer.result.rows == [[60]] and answer.answer.startswith("60")
    assert "did you mean email" in model.prompts[1] and "emial" in model.prompts[1]
    assert "customer.customer_profile(customer_id VARCHAR" in model.prompts[0]
    assert "mesh://customer/customer-profile/customer_profile" in answer.citations


def test_the_model_gets_a_bounded_number_of_tries(loop_for) -> None:
    model = RecordingModel(messages=iter([AIMessage("SELECT nope FROM commerce.orders")] * 5), prompts=[])
    answer = loop_for(model, max_attempts=3).ask("how many orders?")
    assert answer.result is None and answer.attempts == 3 and len(model.prompts) == 3
    assert "could not write a query" in answer.answer and "no column 'nope'" in answer.problems[0]


def test_a_model_cannot_get_a_write_past_the_validator(loop_for) -> None:
    model = RecordingModel(messages=iter([AIMessage("DROP TABLE commerce.orders")] * 3), prompts=[])
    answer = loop_for(model).ask("delete everything")
    assert answer.result is None and "only queries may run" in answer.problems[0]


def test_offline_answers_with_sql_result_and_citations(loop_for) -> None:
    answer = loop_for().ask("how many orders were returned last month")
    assert answer.mode == "offline" and "commerce.returns" in answer.sql and "return_date" in answer.sql
    assert answer.result is not None and answer.result.columns == ["n"]
    assert answer.citations == ["mesh://commerce/returns/returns", "mesh://commerce/returns/returns#return_date"]


def test_offline_says_clearly_when_a_model_is_needed(loop_for) -> None:
    answer = loop_for().ask("what is the ratio of returns to orders per customer segment?")
    assert answer.result is None and answer.sql is None
    assert "Configure a model" in answer.answer and "commerce.returns" in answer.answer


def test_a_question_no_table_matches_says_so(loop_for) -> None:
    answer = loop_for().ask("SELECT 1; --")
    assert answer.sql is None and "no table in the catalog matches" in answer.answer
    assert "it would use" not in answer.answer


def test_question_text_reaches_sql_only_as_quoted_values(loop_for) -> None:
    answer = loop_for().ask("how many orders were cancelled'; DROP TABLE commerce.orders; --")
    # The words it cannot map are named, never written into a query.
    assert answer.sql is None and "'drop'" in answer.answer
    quoted = loop_for().ask("how many orders were 'cancelled'")
    assert quoted.sql == "SELECT COUNT(*) AS n FROM commerce.orders WHERE status = 'cancelled'"


def test_offline_execution_accuracy_on_the_demo_suite(demo_workspace: Workspace) -> None:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "sql_offline_accuracy.py"
    spec = importlib.util.spec_from_file_location("sql_offline_accuracy", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    engine = DuckDBEngine(demo_workspace.warehouse_path)
    figures = bench.evaluate(SqlLoop(Catalog.open(demo_workspace), engine, limit=1000), engine)
    assert figures["questions"] >= 40
    # The bar: at least 80% answered, and what is answered right (this suite was written with the code).
    assert figures["answered_rate"] >= 0.80 and figures["wrong_of_answered"] == 0.0, figures["misses"]
