"""A direct transport for the Anthropic Messages API (`anthropic/…` models): POST {base}/v1/messages over one
aiohttp session, a fraction of litellm's CPU per call, with the same errors, retries, usage and structured
output as every other transport.

The base is the config's api_base, else ANTHROPIC_BASE_URL (both resolved by the factory), else
https://api.anthropic.com. Structured output uses the API's JSON output (`output_config.format`) for the
models litellm's bundled map says support it (every current Claude model), and otherwise a tool whose input
schema is the schema, forced by `tool_choice` — or offered with `auto` when thinking is on or the model
refuses forced tool use. Either way the answer is parsed like any other (RemoteProvider.parse_answer), so a
truncated structured answer fails the same way.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import ProviderError
from .anthropic_messages import (
    anthropic_tool_choice,
    anthropic_tools,
    is_object_schema,
    split_messages,
    strict_schema,
    thinking_enabled,
    translate_params,
)
from .base import LLMResponse, Messages, StructuredLLMResponse, ToolCall
from .http_transport import HttpTransport
from .keypool import ApiKey
from .pricing import model_entry
from .remote import PROBE_MESSAGES
from .structured import Schema, json_schema_of
from .tool_calls import finish_with_calls, tool_options

DEFAULT_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
MESSAGES_PATH = "/v1/messages"
# The API requires max_tokens. Without one in the model block: 4096, far more than a conversation turn
# needs, few enough that a model looping on its answer costs at most that (litellm's own fallback). With
# extended thinking, the thinking budget counts toward max_tokens, so it comes on top. Like a server's own
# default elsewhere, it is not the model block's max_tokens: an answer it cuts is a truncation, as through
# litellm, never mistaken for the end of the context window (RemoteProvider.whole).
DEFAULT_MAX_TOKENS = 4096
STRUCTURED_TOOL = "json_answer"
# A non-object schema is wrapped in an object under this key when it is a tool's input (which must be one).
WRAPPED = "value"
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}


def api_root(api_base: str | None) -> str:
    """The API's root URL, whether the base was given as the SDKs take it (`https://api.anthropic.com`) or
    with `/v1` or `/v1/messages` (as litellm takes it) on the end."""
    base = (api_base or DEFAULT_BASE).rstrip("/")
    for suffix in (MESSAGES_PATH, "/v1"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def _default_max_tokens(params: dict[str, Any]) -> int:
    thinking = params.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    return DEFAULT_MAX_TOKENS + (budget if isinstance(budget, int) else 0)


class AnthropicProvider(HttpTransport):
    """Claude models through the Anthropic Messages API, one HTTP session for the whole run."""

    # The batch API that takes these bodies as `params` (providers/batch): Message Batches.
    batch_protocol = "anthropic"

    def __init__(self, model: str, **settings: Any) -> None:
        super().__init__(model, **settings)
        self.url = api_root(self.api_base) + MESSAGES_PATH
        entry = model_entry(model, self.requested_model)
        self.native_json = entry.get("supports_native_structured_output") is True
        self.forced_tool_use = entry.get("supports_forced_tool_use") is not False
        self.sampling = entry.get("supports_sampling_params") is not False

    @property
    def request_url(self) -> str:
        """The URL path every request body is POSTed to (batch mode sends the same bodies as `params`)."""
        return MESSAGES_PATH

    @property
    def models_url(self) -> str:
        return api_root(self.api_base) + "/v1/models"

    def request_headers(self, key: ApiKey | None) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if key is not None:
            headers["x-api-key"] = key.value
        return headers

    def request_payload(self, messages: Messages, schema: Schema | None = None, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of one Messages call."""
        system, turns = split_messages(messages, self.model_name)
        tools, tool_choice, settings = tool_options({**self.params, **kwargs})
        payload = translate_params(settings, sampling=self.sampling)
        if not payload.get("max_tokens"):
            payload["max_tokens"] = _default_max_tokens(payload)
        payload.update(model=self.requested_model, messages=turns)
        if system is not None:
            payload["system"] = system
        if tools:
            payload["tools"] = anthropic_tools(tools)
            parallel = settings.get("parallel_tool_calls")
            choice = anthropic_tool_choice(tool_choice, parallel=parallel, thinking=thinking_enabled(payload))
            if choice is not None:
                payload["tool_choice"] = choice
        if schema is not None:
            self._ask_for_structure(payload, json_schema_of(schema))
        return payload

    def _ask_for_structure(self, payload: dict[str, Any], schema: dict[str, Any]) -> None:
        if self.native_json:
            output_format = {"type": "json_schema", "schema": strict_schema(schema)}
            payload["output_config"] = {**payload.get("output_config", {}), "format": output_format}
            return
        if not is_object_schema(schema):
            schema = {"type": "object", "properties": {WRAPPED: schema}, "required": [WRAPPED]}
        description = "Give your answer as this tool's input, exactly as its schema says."
        structured = {"name": STRUCTURED_TOOL, "description": description, "input_schema": schema}
        payload["tools"] = [*payload.get("tools", ()), structured]
        forced = self.forced_tool_use and not thinking_enabled(payload)
        payload["tool_choice"] = {"type": "tool", "name": STRUCTURED_TOOL} if forced else {"type": "auto"}

    def _to_response(self, data: dict[str, Any], headers: dict[str, str], schema: Schema | None = None) -> LLMResponse:
        content = data.get("content")
        if not isinstance(content, list):
            raise ProviderError(
                f"{self.model_name}: malformed response: no content blocks", retryable=True, kind="invalid_output"
            )
        texts: list[str] = []
        thoughts: list[str] = []
        tool_input: Any = None
        calls: list[ToolCall] = []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(str(block.get("text") or ""))
            elif kind == "thinking":
                thoughts.append(str(block.get("thinking") or ""))
            elif kind == "tool_use" and schema is not None and block.get("name") == STRUCTURED_TOOL:
                tool_input = block.get("input")
            elif kind == "tool_use":
                arguments = orjson.dumps(block.get("input") or {}).decode()
                calls.append(
                    ToolCall(id=str(block.get("id") or ""), name=str(block.get("name") or ""), arguments=arguments)
                )
        if tool_input is not None and schema is not None:
            wrapped = not is_object_schema(json_schema_of(schema)) and isinstance(tool_input, dict)
            texts = [orjson.dumps(tool_input.get(WRAPPED) if wrapped else tool_input).decode()]
        usage = data.get("usage") or {}
        cached = int(usage.get("cache_read_input_tokens") or 0)
        written = int(usage.get("cache_creation_input_tokens") or 0)
        prompt_tokens = int(usage.get("input_tokens") or 0) + cached + written
        completion_tokens = int(usage.get("output_tokens") or 0)
        stop_reason = data.get("stop_reason")
        response = LLMResponse(
            text="".join(texts),
            prompt_token_count=prompt_tokens,
            completion_token_count=completion_tokens,
            total_token_count=prompt_tokens + completion_tokens,
            cached_prompt_tokens=cached,
            cache_creation_tokens=written,
            finish_reason=finish_with_calls(FINISH_REASONS.get(str(stop_reason), stop_reason), calls or None),
            model_name=self.model_name,
            raw_response=data,
            reasoning_content="\n\n".join(thoughts) or None,
            cost=self.priced(prompt_tokens, completion_tokens, cached, written),
            headers={k: v for k, v in headers.items() if "ratelimit" in k} or None,
            tool_calls=calls or None,
        )
        if stop_reason == "refusal":
            error = ProviderError(
                f"{self.model_name}: the model refused to answer this prompt (stop_reason: refusal)",
                retryable=False,
                kind="content_filter",
            )
        elif not texts and not calls and response.finish_reason != "length":
            error = ProviderError(
                f"{self.model_name}: empty response (stop_reason={stop_reason})", retryable=True, kind="invalid_output"
            )
        else:
            return response
        error.response = response  # its tokens were paid for
        raise error

    def answer_from(
        self, data: dict[str, Any], headers: dict[str, str], schema: Schema | None = None
    ) -> LLMResponse | StructuredLLMResponse:
        """The answer in a response body, read exactly as an online call reads it (batch results too)."""
        plain = self._to_response(data, headers, schema)
        return self.whole(plain) if schema is None else self.parse_answer(plain, schema)

    async def aprobe_model(self) -> str | None:
        payload = self.request_payload(PROBE_MESSAGES, max_tokens=1)
        payload.pop("thinking", None)  # its budget would not fit in one token: the API would refuse the probe
        data, _ = await self._post(payload)
        model = data.get("model")
        return model if isinstance(model, str) and model else None
