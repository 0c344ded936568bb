"""The copilot graph's state: what a conversation keeps between turns (in the checkpointer, server-side)."""

from __future__ import annotations

from typing import Annotated, TypedDict

from langchain_core.messages import BaseMessage
from langgraph.graph.message import add_messages


def _merge_unique(old: list[str] | None, new: list[str] | None) -> list[str]:
    return list(dict.fromkeys([*(old or []), *(new or [])]))


def _merge_map(old: dict[str, str] | None, new: dict[str, str] | None) -> dict[str, str]:
    return {**(old or {}), **(new or {})}


class CopilotState(TypedDict, total=False):
    messages: Annotated[list[BaseMessage], add_messages]
    # Placeholder -> real value for this conversation's personal data. Never put in a prompt: models see
    # the placeholders, the output guard restores values for callers who may read them.
    pseudonyms: Annotated[dict[str, str], _merge_map]
    public_pseudonyms: Annotated[list[str], _merge_unique]  # placeholders anyone here may see (see Pseudonymizer)
    canary: str  # planted in the system prompt; an answer containing it is withheld
    citations: Annotated[list[str], _merge_unique]  # this conversation's mesh:// sources
    prompts: Annotated[list[str], _merge_unique]  # id@version of every governed prompt used
    turn_tool_calls: int  # tool calls made since the last user message (the budget)
    blocked: str | None  # why the input guard stopped this turn
    guard_actions: list[str]  # what the output guard changed in the last answer
    flags: list[str]  # what is weak about the last answer: truncated, empty, ungrounded
