"""Chat models from configuration: any LiteLLM provider through langchain-litellm's ChatLiteLLM, the
offline model when none is configured, and a scripted model for tests.

Configuration (environment, or the same keys under `model:` in meshpilot.yaml):
    MESHPILOT_MODEL              a LiteLLM model name: openai/gpt-4o-mini, anthropic/claude-sonnet-4-5,
                                 azure/<deployment>, bedrock/<model id>, ollama/llama3.1 ...
    MESHPILOT_MODEL_TIMEOUT      seconds per request (60)
    MESHPILOT_MODEL_RETRIES      retries on transient errors (2)
    MESHPILOT_MODEL_MAX_TOKENS   completion tokens per call (1024)
Provider credentials are LiteLLM's usual variables (OPENAI_API_KEY, ANTHROPIC_API_KEY, AZURE_API_KEY
and AZURE_API_BASE, AWS_* for Bedrock, OLLAMA_API_BASE...).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult, LLMResult

from meshpilot.errors import InvalidArgumentError

MODEL_ENV = "MESHPILOT_MODEL"


@dataclass(frozen=True)
class ModelConfig:
    name: str
    timeout_s: float = 60.0
    max_retries: int = 2
    max_tokens: int = 1024
    temperature: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # passed to LiteLLM as is (e.g. api_base, mock_response)

    @classmethod
    def from_env(cls, manifest_model: dict[str, Any] | None = None, name: str | None = None) -> ModelConfig | None:
        """From `name` (a command-line choice), else MESHPILOT_MODEL, else the workspace's `model:` settings."""
        settings = dict(manifest_model or {})
        configured = settings.pop("name", None)
        name = name or os.environ.get(MODEL_ENV) or configured
        if not name:
            return None
        if "/" not in name:
            raise InvalidArgumentError(f"The model '{name}' has no provider prefix.",
                                       hint="Write it as LiteLLM does: openai/gpt-4o-mini, anthropic/claude-sonnet-4-5, "
                                            "ollama/llama3.1 ... (see docs/models.md).")

        def number(key: str, env: str, kind: type, default: Any) -> Any:
            raw = os.environ.get(env, settings.pop(key, default))
            try:
                value = kind(raw)
            except (TypeError, ValueError):
                raise InvalidArgumentError(f"{env} must be a number, not '{raw}'.") from None
            if value < 0:
                raise InvalidArgumentError(f"{env} must not be negative ({raw}).")
            return value

        return cls(name=name, timeout_s=number("timeout", "MESHPILOT_MODEL_TIMEOUT", float, 60.0),
                   max_retries=number("retries", "MESHPILOT_MODEL_RETRIES", int, 2),
                   max_tokens=number("max_tokens", "MESHPILOT_MODEL_MAX_TOKENS", int, 1024),
                   temperature=number("temperature", "MESHPILOT_MODEL_TEMPERATURE", float, 0.0), extra=settings)


def litellm_model(config: ModelConfig) -> BaseChatModel:
    """ChatLiteLLM for any provider; LiteLLM's cost map is read from the installed package, never fetched."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from langchain_litellm import ChatLiteLLM

    return ChatLiteLLM(model=config.name, temperature=config.temperature, max_retries=config.max_retries,
                       request_timeout=config.timeout_s, max_tokens=config.max_tokens, model_kwargs=dict(config.extra))


class Usage(BaseCallbackHandler):
    """Token and cost accounting over every model call of a conversation turn (LiteLLM's local cost map)."""

    def __init__(self, model_name: str | None):
        self.model_name = model_name
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd: float | None = 0.0

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.calls += 1
        prompt = completion = 0
        for generations in response.generations:
            for generation in generations:
                usage = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
                prompt += usage.get("input_tokens", 0) or 0
                completion += usage.get("output_tokens", 0) or 0
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        if self.model_name and self.cost_usd is not None and (prompt or completion):
            import litellm

            try:
                prompt_cost, completion_cost = litellm.cost_per_token(model=self.model_name, prompt_tokens=prompt,
                                                                      completion_tokens=completion)
                self.cost_usd += prompt_cost + completion_cost
            except Exception:  # a model LiteLLM has no price for (local models, new releases)
                self.cost_usd = None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model_name or "offline", "calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6)}


class ScriptedChatModel(BaseChatModel):
    """A chat model that replies from a script, for tests: each reply is an AIMessage, or a function of the
    messages it receives. It records what it was sent, so tests can prove what reached the model."""

    script: list[Any]
    received: list[list[BaseMessage]] = []
    bound_tools: list[str] = []

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        self.bound_tools = [getattr(t, "name", None) or t.get("name") for t in tools]
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.received.append(list(messages))
        if not self.script:
            raise AssertionError("the scripted model ran out of replies")
        step = self.script.pop(0)
        reply: AIMessage = step(messages) if isinstance(step, Callable) else step
        return ChatResult(generations=[ChatGeneration(message=reply)])
