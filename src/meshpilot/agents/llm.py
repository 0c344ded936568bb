"""Chat models from configuration: any LiteLLM provider through langchain-litellm's ChatLiteLLM, the
offline model when none is configured, and a scripted model for tests.

Configuration (environment, or the same keys under `model:` in meshpilot.yaml):
    MESHPILOT_MODEL              a LiteLLM model name: openai/gpt-4o-mini, anthropic/claude-sonnet-4-5,
                                 azure/<deployment>, bedrock/<model id>, ollama/llama3.1 ...
    MESHPILOT_MODEL_TIMEOUT      seconds per request (60)
    MESHPILOT_MODEL_RETRIES      retries on transient errors (2)
    MESHPILOT_MODEL_MAX_TOKENS   completion tokens per call (1024)
    MESHPILOT_MODEL_TOOL_CHOICE  sent with the tools: auto (default), required, none
Under `model:` only: `stream_tool_calls: false` for servers that cannot stream tool calls (found out and
switched off by itself when a server answers a streamed tool-calling request with an empty stream),
`api_base`, `api_key` and any other key LiteLLM takes.
Provider credentials are LiteLLM's usual variables (OPENAI_API_KEY, ANTHROPIC_API_KEY, AZURE_API_KEY
and AZURE_API_BASE, AWS_* for Bedrock, OLLAMA_API_BASE...).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult, LLMResult

from meshpilot.errors import ConnectorError, InvalidArgumentError

MODEL_ENV = "MESHPILOT_MODEL"
TOOL_CHOICES = ("auto", "required", "none")
_KEYLESS_LOCAL = ("openai", "hosted_vllm", "text-completion-openai")  # prefixes a local server is reached by
_ENDPOINT_KEYS = ("api_base", "base_url", "api_key", "api_version")  # settings that belong to one endpoint


class ModelProviderError(ConnectorError):
    """The model's endpoint failed (unreachable, timed out, refused, rate-limited, erred)."""


@dataclass(frozen=True)
class ModelConfig:
    name: str
    timeout_s: float = 60.0
    max_retries: int = 2
    max_tokens: int = 1024
    temperature: float = 0.0
    tool_choice: str = "auto"
    stream_tool_calls: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # passed to LiteLLM as is (e.g. api_base, mock_response)

    @property
    def endpoint(self) -> str:
        return str(self.extra.get("api_base") or f"{self.name.split('/')[0]}'s hosted API")

    @classmethod
    def from_env(cls, manifest_model: dict[str, Any] | None = None, name: str | None = None) -> ModelConfig | None:
        """From `name` (a command-line choice), else MESHPILOT_MODEL, else the workspace's `model:` settings."""
        settings = dict(manifest_model or {})
        configured = settings.pop("name", None)
        name = name or os.environ.get(MODEL_ENV) or configured
        if not name:
            return None
        if configured and name != configured:
            # Another model than the workspace's: its endpoint and key are not this one's.
            for key in _ENDPOINT_KEYS:
                settings.pop(key, None)
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

        tool_choice = str(os.environ.get("MESHPILOT_MODEL_TOOL_CHOICE", settings.pop("tool_choice", "auto")))
        if tool_choice not in TOOL_CHOICES:
            raise InvalidArgumentError(f"tool_choice must be one of {', '.join(TOOL_CHOICES)}, not '{tool_choice}'.")
        stream = settings.pop("stream_tool_calls", True)
        if not isinstance(stream, bool):
            raise InvalidArgumentError(f"model.stream_tool_calls must be true or false, not '{stream}'.")
        if settings.get("api_base") and not settings.get("api_key") and name.split("/")[0] in _KEYLESS_LOCAL:
            # Local OpenAI-compatible servers take any key, but LiteLLM's OpenAI client insists on one.
            settings["api_key"] = os.environ.get("OPENAI_API_KEY") or "no-key"
        return cls(name=name, timeout_s=number("timeout", "MESHPILOT_MODEL_TIMEOUT", float, 60.0),
                   max_retries=number("retries", "MESHPILOT_MODEL_RETRIES", int, 2),
                   max_tokens=number("max_tokens", "MESHPILOT_MODEL_MAX_TOKENS", int, 1024),
                   temperature=number("temperature", "MESHPILOT_MODEL_TEMPERATURE", float, 0.0),
                   tool_choice=tool_choice, stream_tool_calls=stream, extra=settings)


def litellm_model(config: ModelConfig) -> BaseChatModel:
    """ChatLiteLLM for any provider; LiteLLM's cost map is read from the installed package, never fetched."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from langchain_litellm import ChatLiteLLM

    litellm.suppress_debug_info = True  # its "Give Feedback / Get Help" banner on every provider error

    # Retries happen in one place: the HTTP client's under LiteLLM, which backs off and honours Retry-After,
    # streamed requests too (LangChain's retries skip those; LiteLLM's num_retries would multiply them).
    return ChatLiteLLM(model=config.name, temperature=config.temperature, max_retries=0,
                       request_timeout=config.timeout_s, max_tokens=config.max_tokens,
                       model_kwargs={"max_retries": config.max_retries, **config.extra},
                       disable_streaming=False if config.stream_tool_calls else "tool_calling")


def configured_model(workspace: Any, name: str | None = None) -> BaseChatModel | None:
    """The model every command uses (chat, web, Slack, `sql ask`, `contracts draft`, evals): `name` (a
    command-line choice), else MESHPILOT_MODEL, else the workspace's `model:` name, with the workspace's
    `model:` settings (api_base, api_key, timeout, retries, tool_choice...); None: the offline model."""
    config = ModelConfig.from_env(workspace.load_manifest().model, name=name)
    return litellm_model(config) if config is not None else None


def provider_error(exc: BaseException, config: ModelConfig | None) -> BaseException:
    """A model call's failure as the endpoint's error, with what to check; anything that is not the
    provider's (a bug of ours) is returned as it is."""
    import httpx
    import litellm
    import openai

    if not isinstance(exc, openai.OpenAIError | httpx.HTTPError):  # LiteLLM's errors are OpenAI's
        return exc
    endpoint = config.endpoint if config is not None else "the model's endpoint"
    status = getattr(exc, "status_code", None)
    message = str(getattr(exc, "message", None) or exc).strip().splitlines()[0]
    # "litellm.RateLimitError: RateLimitError: OpenAIException - slow down" -> "slow down"
    message = re.sub(r"^(?:litellm\.\w+: )?(?:\w+: )?(?:\w*Exception - )?", "", message)[:300]
    checks = {
        litellm.exceptions.AuthenticationError: "Check the API key (the provider's variable, or model.api_key).",
        litellm.exceptions.NotFoundError: "Check the model name and api_base: the endpoint does not serve it.",
        litellm.exceptions.RateLimitError: "The endpoint is rate-limiting: wait, or lower the load "
                                           "(MESHPILOT_MODEL_RETRIES retries with backoff).",
        litellm.exceptions.Timeout: f"No answer within {config.timeout_s if config else 60:g} s: raise "
                                    "MESHPILOT_MODEL_TIMEOUT, or check that the server is up.",
        litellm.exceptions.APIConnectionError: "Check that the server is running and api_base points at it.",
        litellm.exceptions.BadRequestError: "The endpoint refused the request: check that the model supports "
                                            "tools, or set model.tool_choice / model.stream_tool_calls.",
    }
    hint = next((text for kind, text in checks.items() if isinstance(exc, kind)),
                "The endpoint failed: check its logs; the request can be retried.")
    return ModelProviderError(f"The model endpoint {endpoint} failed" + (f" ({status})" if status else "")
                              + f": {message}", hint=hint)


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
