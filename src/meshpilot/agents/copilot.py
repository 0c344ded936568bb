"""The copilot: a LangGraph StateGraph over the shared tools.

    START -> input_guard -> agent <-> tools -> output_guard -> END
                  \\______________________________/  (a blocked input goes straight to the output guard)

- input_guard: size cap, prompt-injection scan of the user's message, and pseudonymisation of the
  personal data in it (the model sees <EMAIL_ADDRESS_1>; the map stays in the checkpoint).
- agent: the model (a LiteLLM model, or the offline model) with the tools the caller's role may use,
  and the governed system prompt with a canary.
- tools: for each tool call: the role's tools, a per-turn tool-call budget, human approval (a LangGraph
  `interrupt`) for the actions the policy lists, placeholders turned back into values for the tool,
  the audit record, and the result pseudonymised and fenced as data for the model.
- output_guard: PII redaction or restoration by role, link/image allow-list, canary, size cap.

Conversations are checkpointed (SQLite in the workspace by default, PostgreSQL optional), so a thread
survives restarts and an interrupted turn resumes with approve/deny.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from meshpilot.agents.llm import ModelConfig, Usage, litellm_model, provider_error
from meshpilot.agents.state import CopilotState
from meshpilot.agents.tools import TOOLS, Outcome, ToolContext, ToolRunner
from meshpilot.errors import InvalidArgumentError
from meshpilot.guardrails import pii
from meshpilot.guardrails.injection import fence, scan
from meshpilot.guardrails.output import DEFAULT_ALLOWED_HOSTS, guard_output, new_canary
from meshpilot.guardrails.policy import Caller
from meshpilot.mesh.workspace import Workspace
from meshpilot.prompts import registry

MAX_INPUT_CHARS = 8_000
MAX_TOOL_CALLS = 8
# What goes to a model is pseudonymised for these entities. LOCATION is left out: table and product
# names read like places to a NER model, and a place alone rarely identifies a person.
MODEL_PII = tuple(e for e in pii.ENTITIES if e != "LOCATION")
CHECKPOINT_URL_ENV = "MESHPILOT_CHECKPOINT_URL"


def _pseudonymizer(state: CopilotState) -> pii.Pseudonymizer:
    return pii.Pseudonymizer(dict(state.get("pseudonyms") or {}), set(state.get("public_pseudonyms") or []))


@dataclass
class Answer:
    thread_id: str
    text: str
    citations: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    interrupt: dict[str, Any] | None = None
    blocked: str | None = None
    guard: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    # What is weak about the answer, never to be shown as a grounded one: "truncated" (the model stopped at
    # its token limit), "empty" (it said nothing), "ungrounded" (no tool gave it anything from the mesh).
    flags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class Copilot:
    def __init__(self, workspace: Workspace, caller: Caller | None = None, model: Any | None = None,
                 checkpointer: Any | None = None, max_tool_calls: int = MAX_TOOL_CALLS, model_name: str | None = None):
        """`model`: a chat model to use as is; otherwise `model_name` (a LiteLLM name), MESHPILOT_MODEL or the
        workspace's configuration picks one, and with none configured the offline model runs."""
        self.workspace = workspace
        self.manifest = workspace.load_manifest()
        self.context = ToolContext(workspace, caller)
        policy = self.context.policy
        if policy is not None and caller is None:
            if not policy.default_role:
                raise InvalidArgumentError("This workspace has an access policy: say which role you act as.",
                                           hint=f"Pass --role (or MESHPILOT_ROLE): {', '.join(sorted(policy.roles))}.")
            caller = Caller(role=policy.default_role)
            self.context = ToolContext(workspace, caller)
        self.caller = caller
        if policy is not None:
            policy.role(caller)  # an unknown role fails now, with the list of roles
        self.may_read_pii = policy is None or policy.may_read_pii(caller)
        self.model_name = model_name
        self.model_config: ModelConfig | None = None
        self.model = model if model is not None else self._configured_model(model_name)
        self.context.model = None if getattr(self.model, "_llm_type", "") == "meshpilot-offline" else self.model
        self.runner = ToolRunner(self.context)
        self.tools = list(self.runner.tools.values())
        self.max_tool_calls = max_tool_calls
        self.allowed_hosts = DEFAULT_ALLOWED_HOSTS + tuple(self.manifest.allowed_link_hosts)
        self.system_prompt = registry.load("copilot_system")
        self.tool_schemas = [t.as_langchain() for t in self.tools]  # what the model is offered, built once
        self.graph = self._build().compile(checkpointer=checkpointer or default_checkpointer(workspace))

    def _configured_model(self, name: str | None) -> Any:
        config = ModelConfig.from_env(self.manifest.model, name=name)
        if config is None:
            from meshpilot.agents.offline import OfflineChatModel

            return OfflineChatModel(workspace_root=str(self.workspace.root))
        self.model_name, self.model_config = config.name, config
        return litellm_model(config)

    # --- the graph --------------------------------------------------------------------------------------

    def _build(self) -> StateGraph:
        graph = StateGraph(CopilotState)
        graph.add_node("input_guard", self._input_guard)
        graph.add_node("agent", self._agent)
        graph.add_node("tools", self._tools)
        graph.add_node("output_guard", self._output_guard)
        graph.add_edge(START, "input_guard")
        graph.add_conditional_edges("input_guard", lambda s: "output_guard" if s.get("blocked") else "agent")
        graph.add_conditional_edges("agent", self._after_agent)
        graph.add_edge("tools", "agent")
        graph.add_edge("output_guard", END)
        return graph

    def _input_guard(self, state: CopilotState) -> dict[str, Any]:
        message = state["messages"][-1]
        text = message.content if isinstance(message.content, str) else json.dumps(message.content)
        update: dict[str, Any] = {"turn_tool_calls": 0, "blocked": None, "guard_actions": []}
        if not state.get("canary"):
            update["canary"] = new_canary()
        if len(text) > MAX_INPUT_CHARS:
            update["blocked"] = f"the message is {len(text)} characters long; the limit is {MAX_INPUT_CHARS}"
            return update
        verdict = scan(text)
        if verdict.injection:
            update["blocked"] = ("it looks like an attempt to change my instructions ("
                                 + "; ".join(verdict.signals[:2]) + ")")
            return update
        pseudonymizer = _pseudonymizer(state)
        pseudonymizer.origin_public = True  # the user's own words may be shown back to them
        masked, findings = pii.anonymize(text, "pseudonymize", pseudonymizer=pseudonymizer, entities=MODEL_PII)
        if findings:
            update["messages"] = [HumanMessage(content=masked, id=message.id)]
            update["pseudonyms"] = pseudonymizer.mapping
            update["public_pseudonyms"] = sorted(pseudonymizer.public)
        return update

    def _agent(self, state: CopilotState) -> dict[str, Any]:
        system = SystemMessage(self.system_prompt.render(
            mesh_name=self.manifest.name, role=self.caller.role if self.caller else "unrestricted",
            canary=state.get("canary") or ""))
        with_tools = state.get("turn_tool_calls", 0) < self.max_tool_calls and bool(self.tools)
        messages = [system, *state["messages"]]
        reply = self._invoke(self.model, messages, with_tools)
        if with_tools and self.model_config is not None and _says_nothing(reply) and self.model_config.stream_tool_calls:
            # Some servers (llama-cpp-python) answer a streamed request with tools by an empty stream: ask
            # again without streaming, and do so for the rest of this process.
            self.model_config = replace(self.model_config, stream_tool_calls=False)
            self.model = self.context.model = litellm_model(self.model_config)
            reply = self._invoke(self.model, messages, with_tools)
        reply = _checked_arguments(reply)
        if reply.tool_calls and state.get("turn_tool_calls", 0) >= self.max_tool_calls:
            reply = AIMessage(content=f"I stopped after {self.max_tool_calls} tool calls for this question; "
                                      "ask a narrower question or continue from what I found.")
        return {"messages": [reply], "prompts": [self.system_prompt.ref]}

    def _invoke(self, model: Any, messages: list[BaseMessage], with_tools: bool) -> AIMessage:
        if with_tools:
            tool_choice = self.model_config.tool_choice if self.model_config is not None else "auto"
            model = model.bind_tools(self.tool_schemas, tool_choice=tool_choice)
        try:
            return model.invoke(messages)
        except Exception as exc:
            raise provider_error(exc, self.model_config) from exc

    def _after_agent(self, state: CopilotState) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else "output_guard"

    def _tools(self, state: CopilotState, config: RunnableConfig) -> dict[str, Any]:
        calls = state["messages"][-1].tool_calls
        pseudonymizer = _pseudonymizer(state)
        thread = (config or {}).get("configurable", {}).get("thread_id")
        # Approvals first: an interrupt re-runs this node when resumed, so nothing may have run before it.
        decisions = {call["id"]: self._approval(call, pseudonymizer) for call in calls}
        messages, citations, prompts = [], [], []
        used = state.get("turn_tool_calls", 0)
        invalid = state["messages"][-1].response_metadata.get(INVALID_ARGUMENTS, {})
        for call in calls:
            used += 1
            if call["id"] in invalid:
                raw, error = invalid[call["id"]]
                messages.append(ToolMessage(
                    content=f"Error: the arguments of this {call['name']} call are not a JSON object ({error}): {raw[:300]!r}. "
                            f"Call {call['name']} again with its arguments as one JSON object.",
                    tool_call_id=call["id"], name=call["name"], status="error"))
                continue
            message, cited, prompt = self._run_tool(call, decisions[call["id"]], pseudonymizer, thread,
                                                    over_budget=used > self.max_tool_calls)
            messages.append(message)
            citations.extend(cited)
            prompts.extend(prompt)
        return {"messages": messages, "citations": citations, "prompts": prompts, "turn_tool_calls": used,
                "pseudonyms": pseudonymizer.mapping, "public_pseudonyms": sorted(pseudonymizer.public)}

    def _approval(self, call: dict[str, Any], pseudonymizer: pii.Pseudonymizer) -> dict[str, Any] | None:
        """Ask a human when the policy says this action needs approval; None when it does not."""
        needed = self.runner.approval(call["name"], _restore(call.get("args") or {}, pseudonymizer))
        if needed is None:
            return None
        action, reason = needed
        decision = interrupt({"action": action, "tool": call["name"], "args": call["args"], "reason": reason})
        approved = decision.get("approved") if isinstance(decision, dict) else bool(decision)
        return {"action": action, "approved": bool(approved),
                "by": decision.get("by") if isinstance(decision, dict) else None}

    def _run_tool(self, call: dict[str, Any], decision: dict[str, Any] | None, pseudonymizer: pii.Pseudonymizer,
                  thread: str | None, over_budget: bool) -> tuple[ToolMessage, list[str], list[str]]:
        name = call["name"]
        if over_budget:
            outcome = Outcome(name, error=f"Tool-call budget of {self.max_tool_calls} for this question is spent.",
                              verdict="refused")
        else:
            outcome = self.runner.call(name, _restore(call.get("args") or {}, pseudonymizer), channel="agent",
                                       conversation=thread, decision=decision)
        if not outcome.ok:
            return ToolMessage(content=outcome.error, tool_call_id=call["id"], name=name, status="error"), [], []
        # The model gets the result pseudonymised and fenced as data; the real one stays in the artifact.
        pseudonymizer.origin_public = not TOOLS[name].returns_data  # catalog metadata may be shown to anyone
        masked = json.dumps(_pseudonymize_values(json.loads(json.dumps(outcome.result, default=str)), pseudonymizer),
                            ensure_ascii=False)
        message = ToolMessage(content=fence(f"{name} result", masked), tool_call_id=call["id"], name=name,
                              artifact=outcome.result)
        return message, outcome.citations, [TOOLS[name].prompt_ref]

    def _output_guard(self, state: CopilotState) -> dict[str, Any]:
        if state.get("blocked"):
            text = f"I did not act on that message: {state['blocked']}."
            guarded = guard_output(text, may_read_pii=self.may_read_pii, allowed_hosts=self.allowed_hosts)
            return {"messages": [AIMessage(content=guarded.text)], "guard_actions": ["input blocked"], "flags": []}
        last = state["messages"][-1]
        text = last.content if isinstance(last.content, str) else json.dumps(last.content)
        flags = _weaknesses(state["messages"], last, text)
        if "empty" in flags:
            text = "The model returned an empty answer."
        if "truncated" in flags:
            text += "\n\n(The model stopped at its token limit: this answer is cut short.)"
        # A provider's model says so in the answer itself, on every channel; the offline model's answers
        # without a tool are its help and refusals, flagged but not annotated.
        if "ungrounded" in flags and "empty" not in flags and self.model_config is not None:
            text += "\n\n(No tool gave this answer anything from the mesh: it is not grounded in the catalog.)"
        guarded = guard_output(text, may_read_pii=self.may_read_pii, allowed_hosts=self.allowed_hosts,
                               canary=state.get("canary"), pseudonymizer=_pseudonymizer(state))
        return {"messages": [AIMessage(content=guarded.text, id=last.id)], "guard_actions": guarded.actions,
                "flags": flags}

    # --- running ----------------------------------------------------------------------------------------

    def ask(self, text: str, thread_id: str | None = None) -> Answer:
        """One turn; returns the answer, or the pending approval when the turn is interrupted."""
        events = list(self.stream(text, thread_id))
        return events[-1]["answer"]

    def resume(self, thread_id: str, approved: bool, by: str | None = None) -> Answer:
        events = list(self.stream(None, thread_id, resume={"approved": approved, "by": by}))
        return events[-1]["answer"]

    def stream(self, text: str | None, thread_id: str | None = None, resume: dict[str, Any] | None = None
               ) -> Iterator[dict[str, Any]]:
        """Events: tool_call, tool_result, token (guarded, line by line), then one final answer event."""
        thread_id = thread_id or uuid.uuid4().hex
        if text is None and resume is None:
            raise InvalidArgumentError("Say something, or resume a pending approval.")
        if text is not None and not text.strip():
            raise InvalidArgumentError("The message is empty.", hint="Ask about the mesh, or type 'help'.")
        config = {"configurable": {"thread_id": thread_id}, "callbacks": [usage := Usage(self.model_name)]}
        before = self.graph.get_state(config)
        if resume is not None and not before.interrupts:
            raise InvalidArgumentError(f"Nothing is waiting for approval in conversation {thread_id}.")
        if text is not None and before.interrupts:
            raise InvalidArgumentError(f"Conversation {thread_id} is waiting for an approval.",
                                       hint="Approve or deny it first (answer y/n, or `meshpilot chat --approve/--deny`).")
        start = len(before.values.get("messages", [])) if before.values else 0
        payload: Any = Command(resume=resume) if resume is not None else {"messages": [HumanMessage(text)]}
        line = ""
        pseudonyms = _pseudonymizer(before.values or {})
        for mode, chunk in self.graph.stream(payload, config, stream_mode=["updates", "messages"]):
            if mode == "messages":
                message, meta = chunk
                if meta.get("langgraph_node") == "agent" and isinstance(message.content, str) and message.content:
                    line += message.content
                    while "\n" in line:
                        head, line = line.split("\n", 1)
                        yield {"type": "token", "text": self._guard_line(head + "\n", pseudonyms)}
                continue
            for node, update in chunk.items():
                if node == "agent" and update:
                    for call in update["messages"][-1].tool_calls:
                        yield {"type": "tool_call", "name": call["name"], "args": call["args"]}
                if node == "tools" and update:
                    for message in update["messages"]:
                        yield {"type": "tool_result", "name": message.name, "status": message.status}
        state = self.graph.get_state(config)
        values = state.values
        new = values.get("messages", [])[start:]
        tool_calls = [{"name": c["name"], "args": c["args"]} for m in new if isinstance(m, AIMessage) for c in m.tool_calls]
        if state.interrupts:
            pending = state.interrupts[0].value
            answer = Answer(thread_id, f"Approval needed: {pending['reason']}.", interrupt=pending,
                            tool_calls=tool_calls, usage=usage.as_dict())
        else:
            final = values["messages"][-1]
            answer = Answer(thread_id, final.content, citations=list(values.get("citations", [])),
                            prompts=list(values.get("prompts", [])), tool_calls=tool_calls, blocked=values.get("blocked"),
                            guard=list(values.get("guard_actions") or []), usage=usage.as_dict(),
                            flags=list(values.get("flags") or []))
        yield {"type": "answer", "answer": answer}

    def _guard_line(self, text: str, pseudonyms: pii.Pseudonymizer) -> str:
        return guard_output(text, may_read_pii=self.may_read_pii, allowed_hosts=self.allowed_hosts,
                            pseudonymizer=pseudonyms).text

    def history(self, thread_id: str) -> list[BaseMessage]:
        return self.graph.get_state({"configurable": {"thread_id": thread_id}}).values.get("messages", [])


INVALID_ARGUMENTS = "meshpilot_invalid_arguments"  # response metadata: tool call id -> (raw arguments, error)


def _says_nothing(reply: AIMessage) -> bool:
    return not reply.content and not reply.tool_calls and not reply.invalid_tool_calls


def _checked_arguments(reply: AIMessage) -> AIMessage:
    """Tool calls whose arguments are not one JSON object: kept as calls without arguments and marked, so
    the model is told by that call's tool message. (Streamed calls are parsed leniently, a cut-off
    '{"query": "ord' becoming {"query": "ord"}; calls that fail to parse are otherwise dropped.)"""
    raw: dict[str, Any] = {}
    for call in reply.additional_kwargs.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else getattr(call, "function", None)
        arguments = function.get("arguments") if isinstance(function, dict) else getattr(function, "arguments", None)
        raw[call.get("id") if isinstance(call, dict) else getattr(call, "id", None)] = arguments
    invalid: dict[str, tuple[str, str]] = {}
    calls = []
    for call in reply.tool_calls:
        text = raw.get(call["id"])
        if isinstance(text, str) and text.strip():
            try:
                value = json.loads(text)
                error = None if isinstance(value, dict) else f"a JSON {type(value).__name__}, not an object"
            except ValueError as exc:
                error = f"invalid JSON: {exc}"
            if error:
                invalid[call["id"]] = (text, error)
                call = {**call, "args": {}}
        calls.append(call)
    for bad in reply.invalid_tool_calls:
        call_id = bad.get("id") or f"invalid_{len(calls)}"
        invalid[call_id] = (str(bad.get("args") or ""), bad.get("error") or "invalid JSON")
        calls.append({"name": bad.get("name") or "unnamed", "args": {}, "id": call_id, "type": "tool_call"})
    if not invalid:
        return reply
    return reply.model_copy(update={"tool_calls": calls, "invalid_tool_calls": [],
                                    "response_metadata": {**reply.response_metadata, INVALID_ARGUMENTS: invalid}})


def _weaknesses(messages: list[BaseMessage], last: BaseMessage, text: str) -> list[str]:
    """The flags of an answer (see `Answer.flags`). (A stream cut off before its end cannot be told from
    a finished one: LiteLLM closes it with finish_reason "stop".)"""
    flags = []
    if (getattr(last, "response_metadata", None) or {}).get("finish_reason") == "length":
        flags.append("truncated")
    if not text.strip():
        flags.append("empty")
    turn = []
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        turn.append(message)
    if not any(isinstance(m, ToolMessage) and m.status != "error" for m in turn):
        flags.append("ungrounded")
    return flags


def _restore(value: Any, pseudonymizer: pii.Pseudonymizer) -> Any:
    return pii.map_strings(value, pseudonymizer.restore)


_IDENTIFIER = re.compile(r"^(?:[a-z][a-z0-9+.-]*://\S*|[\w.#/:-]*)$")


def _pseudonymize_values(value: Any, pseudonymizer: pii.Pseudonymizer) -> Any:
    """Each string in a tool result, pseudonymised on its own (NER reads JSON poorly); identifiers and
    references without spaces, '@' or long digit runs are left as they are."""
    def one(text: str) -> str:
        if len(text) < 3 or (_IDENTIFIER.match(text) and "@" not in text and not re.search(r"\d{6}", text)):
            return text
        return pii.anonymize(text, "pseudonymize", pseudonymizer=pseudonymizer, entities=MODEL_PII)[0]

    return pii.map_strings(value, one)


def default_checkpointer(workspace: Workspace) -> Any:
    """SQLite in the workspace (`.meshpilot/checkpoints.sqlite`), or PostgreSQL when MESHPILOT_CHECKPOINT_URL is set."""
    url = os.environ.get(CHECKPOINT_URL_ENV)
    if url:
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
            from psycopg import Connection
        except ImportError as exc:
            raise InvalidArgumentError(f"{CHECKPOINT_URL_ENV} is set but PostgreSQL checkpoints are not installed.",
                                       hint="Install the postgres extra (uv sync --extra postgres).") from exc
        connection = Connection.connect(url, autocommit=True, prepare_threshold=0)
        saver = PostgresSaver(connection)
        saver.setup()
        return saver
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = workspace.state_dir / "checkpoints.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteSaver(sqlite3.connect(str(path), check_same_thread=False))
