"""The SQL loop: question -> link schema -> generate -> validate -> (repair) -> run -> answer.

A LangGraph graph. With a chat model (any LiteLLM provider), the model writes the SQL from the linked
tables and repairs it from the validator's problems, at most `max_attempts` times. Without one, the
offline writer answers simple one-table questions and otherwise says that a model is needed, naming
the tables it would use. Nothing runs that the validator has not accepted.
"""

from __future__ import annotations

import re
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel

from meshpilot.agents.sql_rules import Draft, OfflineSqlWriter
from meshpilot.errors import MeshpilotError
from meshpilot.mesh.model import MeshRef
from meshpilot.prompts import registry
from meshpilot.tools.catalog import Catalog
from meshpilot.tools.sql import RunResult, SqlSchema, run_validated, validate_sql

MAX_DISTINCT_VALUES = 50


class SqlAnswer(BaseModel):
    question: str
    answer: str
    sql: str | None
    result: RunResult | None
    citations: list[str]
    attempts: int
    mode: str  # "model" or "offline"
    tables: list[str]  # what schema linking proposed
    problems: list[str] = []
    prompt: str | None = None  # id@version of the prompt used


class SqlState(TypedDict, total=False):
    question: str
    tables: list[str]
    sql: str | None
    explanation: str
    attempts: int
    problems: list[str]
    result: RunResult | None
    refusal: str | None


class SqlLoop:
    def __init__(self, catalog: Catalog, engine: Any, model: Any | None = None, dialect: str = "duckdb",
                 max_attempts: int = 3, limit: int = 100, timeout_s: float = 10.0, caller: Any | None = None):
        self.catalog, self.engine, self.model, self.caller = catalog, engine, model, caller
        self.dialect, self.max_attempts, self.limit, self.timeout_s = dialect, max_attempts, limit, timeout_s
        self.schema = SqlSchema.from_products(catalog.products.values())
        self.prompt = registry.load("sql_generate")
        self._values: dict[tuple[str, str], list[str] | None] = {}
        self.graph = self._build()

    def _build(self):
        graph = StateGraph(SqlState)
        graph.add_node("link", self._link)
        graph.add_node("generate", self._generate)
        graph.add_node("validate", self._validate)
        graph.add_node("run", self._run)
        graph.add_edge(START, "link")
        graph.add_edge("link", "generate")
        graph.add_conditional_edges("generate", lambda s: END if s.get("refusal") else "validate")
        graph.add_conditional_edges("validate", self._after_validation)
        graph.add_edge("run", END)
        return graph.compile()

    def ask(self, question: str) -> SqlAnswer:
        state = self.graph.invoke({"question": question, "attempts": 0, "problems": []})
        return self._answer(state)

    # --- nodes ------------------------------------------------------------------------------------------

    def _link(self, state: SqlState) -> SqlState:
        link = self.catalog.link_schema(state["question"], k=5)
        return {"tables": [t.ref for t in link.tables]}

    def _generate(self, state: SqlState) -> SqlState:
        attempts = state.get("attempts", 0) + 1
        if self.model is None:
            datasets = [self._dataset(ref) for ref in state["tables"][:3]]
            draft = OfflineSqlWriter(self._distinct_values).write(state["question"], datasets)
            if isinstance(draft, Draft):
                return {"sql": draft.sql, "explanation": draft.explanation, "attempts": attempts}
            tables = ", ".join(self._dataset(ref).qualified_name for ref in state["tables"][:3])
            return {"refusal": f"Without a model I can only answer simple questions over one table ({draft.reason}). "
                               "Configure a model (--model or MESHPILOT_MODEL)"
                               + (f"; it would use: {tables}." if tables else ", or ask about the catalog's tables."),
                    "attempts": attempts}
        repair = ""
        if state.get("problems"):
            repair = (f"Your previous query was:\n{state.get('sql')}\nIt was refused:\n- "
                      + "\n- ".join(state["problems"]) + "\nWrite a corrected query.")
        message = self.prompt.render(dialect=self.dialect, schema=self._schema_text(state["tables"]),
                                     question=state["question"], repair=repair)
        reply = self.model.invoke(message)
        return {"sql": _extract_sql(str(reply.content)), "attempts": attempts, "explanation": "written by the model"}

    def _validate(self, state: SqlState) -> SqlState:
        result = validate_sql(state.get("sql") or "", self.schema, self.dialect, self.caller)
        return {"problems": [str(p) for p in result.problems]}

    def _after_validation(self, state: SqlState) -> str:
        if not state.get("problems"):
            return "run"
        if self.model is not None and state["attempts"] < self.max_attempts:
            return "generate"
        return END

    def _run(self, state: SqlState) -> SqlState:
        try:
            result = run_validated(state["sql"], self.schema, self.engine, self.dialect, self.limit, self.timeout_s,
                                   self.caller)
        except MeshpilotError as exc:
            return {"problems": [exc.message, *(str(p) for p in exc.problems)]}
        return {"result": result}

    # --- helpers ----------------------------------------------------------------------------------------

    def _dataset(self, ref: str):
        mesh_ref = MeshRef.parse(ref)
        return self.catalog.products[str(mesh_ref.product_ref())].dataset(mesh_ref.dataset)

    def _distinct_values(self, dataset, column) -> list[str] | None:
        key = (dataset.qualified_name, column.name)
        if key not in self._values:
            from sqlglot import exp

            query = (exp.select(exp.column(column.name)).distinct().from_(exp.to_table(dataset.qualified_name))
                     .where(exp.column(column.name).is_(exp.null()).not_()))
            try:
                result = run_validated(query.sql("duckdb"), self.schema, self.engine, "duckdb",
                                       MAX_DISTINCT_VALUES, self.timeout_s)
                self._values[key] = None if result.truncated else [str(r[0]) for r in result.rows]
            except MeshpilotError:
                self._values[key] = None
        return self._values[key]

    def _schema_text(self, refs: list[str]) -> str:
        lines = []
        for ref in refs:
            dataset = self._dataset(ref)
            columns = ", ".join(f"{c.name} {c.type}" + (f" -> {c.references}" if c.references else "")
                                for c in dataset.columns)
            lines.append(f"- {dataset.qualified_name}({columns})" + (f": {dataset.description}" if dataset.description else ""))
        return "\n".join(lines)

    def _answer(self, state: SqlState) -> SqlAnswer:
        result: RunResult | None = state.get("result")
        mode = "offline" if self.model is None else "model"
        common = {"question": state["question"], "sql": state.get("sql"), "result": result,
                  "attempts": state.get("attempts", 0), "mode": mode, "tables": state.get("tables", []),
                  "prompt": None if self.model is None else self.prompt.ref}
        if state.get("refusal"):
            return SqlAnswer(answer=state["refusal"], citations=state.get("tables", []), **common)
        if result is None:
            return SqlAnswer(answer="I could not write a query that passes validation.",
                             citations=state.get("tables", []), problems=state.get("problems", []), **common)
        if result.row_count == 1 and len(result.columns) == 1:
            text = f"{result.rows[0][0]} ({state.get('explanation', '')})"
        else:
            text = f"{result.row_count} row(s){' (first ' + str(self.limit) + ')' if result.truncated else ''}" \
                   f" ({state.get('explanation', '')})"
        return SqlAnswer(answer=text, citations=result.citations, **common)


def _extract_sql(text: str) -> str:
    """The SQL in a model's reply: a fenced block if there is one, else the whole reply."""
    fenced = re.search(r"```(?:sql)?\s*(.*?)```", text, re.DOTALL | re.IGNORECASE)
    return (fenced.group(1) if fenced else text).strip().rstrip(";").strip()
