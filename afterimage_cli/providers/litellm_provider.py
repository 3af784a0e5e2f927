"""The litellm-backed provider. litellm is imported on first use, never at module import."""

from __future__ import annotations

import os
from typing import Any

from ..errors import ProviderError
from .base import LLMResponse, Messages, StructuredLLMResponse
from .http_errors import status_error
from .keypool import ApiKey
from .remote import PROBE_MESSAGES, RemoteProvider
from .structured import Schema, response_format
from .tool_calls import finish_with_calls, read_openai_calls, tool_options

_litellm: Any = None
LOCAL_DATA = ("LITELLM_LOCAL_MODEL_COST_MAP", "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS")
"""The variables that make litellm read its bundled data instead of downloading it."""
# litellm (and the SDKs under it) cannot send a request without a key: given none, they take the
# provider's usual variable (OPENAI_API_KEY, …) from the environment. An api_base that gets no key is
# sent this non-secret string instead, so a real key never leaves for a server it was not meant for.
NO_KEY = "no-key"


def import_litellm() -> Any:
    """Import litellm quietly: the bundled price map and Anthropic beta-header table (no network: litellm
    fetches both from GitHub otherwise, the second on the first Anthropic call that sends a beta header), no
    debug banners on stdout."""
    global _litellm
    if _litellm is None:
        for variable in LOCAL_DATA:
            os.environ.setdefault(variable, "True")
        import litellm

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        litellm.drop_params = True
        _litellm = litellm
    return _litellm


def _error_headers(exc: Exception) -> dict[str, str]:
    """The HTTP headers an exception carries (litellm keeps them in litellm_response_headers)."""
    for source in (
        getattr(exc, "litellm_response_headers", None),
        getattr(exc, "headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
    ):
        if source:
            return {str(k).lower(): str(v) for k, v in dict(source).items()}
    return {}


def _is_connection_failure(exc: BaseException) -> bool:
    """litellm reports a refused or dropped connection as a 500; the cause chain tells the truth."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        name = type(seen).__name__
        if "Connect" in name or "RemoteProtocol" in name or "Connection error" in str(seen)[:200]:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def map_litellm_error(exc: Exception, model: str, key: ApiKey | None, api_base: str | None = None) -> ProviderError:
    """Translate an SDK exception into a ProviderError that says whether to retry and what to fix."""
    litellm = import_litellm()
    short = str(getattr(exc, "message", exc)).replace("\n", " ")[:300]
    item_refusals = (  # one item's prompt, refused whatever its status: the item is rejected, not the run
        (litellm.ContextWindowExceededError, "context_limit", "prompt too long for the context window"),
        (litellm.ContentPolicyViolationError, "content_filter", "the prompt was refused by the content filter"),
    )
    for cls, kind, what in item_refusals:
        if isinstance(exc, cls):
            status = getattr(exc, "status_code", None)
            return ProviderError(f"{model}: {what}: {short}", retryable=False, status_code=status, kind=kind)
    if isinstance(exc, litellm.Timeout):  # before the status: litellm gives timeouts a 408
        return ProviderError(f"{model}: request timed out", retryable=True, status_code=None, kind="timeout")
    status = _status_of(exc, litellm)
    if "overloaded_error" in short:  # Anthropic's 529, which litellm reports as a 500
        status = 529
    if status is not None and status < 500:
        return status_error(model, status, short, _error_headers(exc), key, api_base)
    if isinstance(exc, litellm.APIConnectionError) or _is_connection_failure(exc):
        where = f" at {api_base}" if api_base else ""
        return ProviderError(
            f"{model}: cannot reach the server{where}: {short}", retryable=True, status_code=None, kind="connection"
        )
    return status_error(model, status or 500, short, _error_headers(exc), key, api_base)


def _status_of(exc: Exception, litellm: Any) -> int | None:
    """The HTTP status an SDK exception stands for (its class says it when the attribute does not)."""
    by_class = (
        (litellm.RateLimitError, 429),
        (litellm.AuthenticationError, 401),
        (litellm.PermissionDeniedError, 403),
        (litellm.NotFoundError, 404),
        (litellm.UnsupportedParamsError, 400),
        (litellm.BadRequestError, 400),
    )
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    return next((code for cls, code in by_class if isinstance(exc, cls)), None)


def _rate_limit_headers(response: Any) -> dict[str, str] | None:
    """The x-ratelimit-* headers litellm passes through in the response's hidden params."""
    hidden = getattr(response, "_hidden_params", None) or {}
    headers = hidden.get("additional_headers") or {}
    picked = {str(k): str(v) for k, v in headers.items() if "ratelimit" in str(k)}
    return picked or None


class LiteLLMProvider(RemoteProvider):
    """Any model litellm knows, by 'provider/model' string, or any OpenAI-compatible server by api_base."""

    def __init__(self, model: str, **settings: Any) -> None:
        super().__init__(model, **settings)
        self._unpriced = False
        # Import now, while the run is being built: on the first call it would block the event loop
        # for ~2 s with requests in flight and skew the run's clock.
        import_litellm()

    async def _call(self, messages: Messages, extra: dict[str, Any]) -> tuple[Any, ApiKey | None]:
        litellm = import_litellm()
        key = await self.keys.acquire() if self.keys else None
        tools, tool_choice, request = tool_options({**self.params, **extra})
        if tools:
            # litellm 1.106.2 routes any call with tools= through its MCP gateway check first, which imports
            # the `mcp` package (a failure without it). Our tools are plain functions, never MCP gateway
            # tools, so the check is skipped (litellm's own flag, stripped before the provider's request).
            request.update(tools=tools, _skip_mcp_handler=True)
            if tool_choice is not None:
                request["tool_choice"] = tool_choice
        if self.api_base:
            request["api_base"] = self.api_base
        if key is not None:
            request["api_key"] = key.value
        elif self.api_base:
            request["api_key"] = NO_KEY
        try:
            # max_retries=0: the SDK's hidden retries are off so every attempt is ours and counted.
            response = await litellm.acompletion(
                model=self.model_name, messages=messages, timeout=self.timeout, max_retries=0, **request
            )
        except Exception as exc:  # mapped at the boundary; CancelledError is a BaseException and passes
            error = map_litellm_error(exc, self.model_name, key, self.api_base)
            self.report_key_error(key, error)

            raise error from exc
        return response, key

    def _to_response(self, response: Any) -> LLMResponse:
        try:
            choice = response.choices[0]
            message = choice.message
            text = message.content
        except (AttributeError, IndexError, TypeError) as exc:
            raise ProviderError(
                f"{self.model_name}: malformed response: {exc}", retryable=True, kind="invalid_output"
            ) from exc
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        # litellm counts prompt-cache tokens into prompt_tokens, and reports them under both protocols' names.
        details = getattr(usage, "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or getattr(usage, "cache_read_input_tokens", 0) or 0)
        written = int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
        calls = read_openai_calls(getattr(message, "tool_calls", None))
        answer = LLMResponse(
            text=text or "",
            prompt_token_count=prompt_tokens,
            completion_token_count=completion_tokens,
            total_token_count=int(getattr(usage, "total_tokens", 0) or prompt_tokens + completion_tokens),
            cached_prompt_tokens=cached,
            cache_creation_tokens=written,
            finish_reason=finish_with_calls(choice.finish_reason, calls),
            model_name=self.model_name,
            raw_response=response,
            reasoning_content=getattr(message, "reasoning_content", None),
            cost=self._cost(prompt_tokens, completion_tokens, cached, written),
            headers=_rate_limit_headers(response),
            tool_calls=calls,
        )
        if text is None and not calls:
            # No content and finish_reason content_filter: the model refused (Anthropic's stop_reason "refusal",
            # a completion's content filter, litellm's reading of a Gemini block or safety stop). Asking again
            # gets the same refusal, so it is this item's, as the direct transports say too.
            refused = choice.finish_reason == "content_filter"
            error = ProviderError(
                f"{self.model_name}: "
                + ("the model refused to answer this prompt" if refused else "empty response")
                + f" (finish_reason={choice.finish_reason})",
                retryable=not refused,
                kind="content_filter" if refused else "invalid_output",
            )
            error.response = answer  # billed all the same
            raise error
        return answer

    def _cost(self, prompt_tokens: int, completion_tokens: int, cached: int = 0, written: int = 0) -> float | None:
        if self.price is not None or self._unpriced:
            return self.priced(prompt_tokens, completion_tokens, cached, written)
        try:
            prompt_cost, completion_cost = import_litellm().cost_per_token(
                model=self.model_name,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cache_read_input_tokens=cached,
                cache_creation_input_tokens=written,
            )
        except Exception:
            # Unknown to litellm's price map too: "unpriced", and never asked again (each miss costs
            # a dozen lookups, ~0.25 ms of the event loop per call).
            self._unpriced = True
            return None
        return float(prompt_cost + completion_cost)

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        response, _ = await self._call(messages, kwargs)
        return self.whole(self._to_response(response))

    async def acomplete_structured(self, messages: Messages, schema: Schema, **kwargs: Any) -> StructuredLLMResponse:
        raw, _ = await self._call(messages, {**kwargs, "response_format": response_format(schema)})
        plain = self._to_response(raw)
        return self.parse_answer(plain, schema)

    async def aprobe_model(self) -> str | None:
        response, _ = await self._call(PROBE_MESSAGES, {"max_tokens": 1})
        model = getattr(response, "model", None)
        return model if isinstance(model, str) and model else None

    async def aclose(self) -> None:
        """Close litellm's cached HTTP clients (the one session the run reused)."""
        if _litellm is not None:
            await _litellm.close_litellm_async_clients()
