"""The Anthropic transport's pieces on their own: which transport a model gets, the request body it sends,
how it reads an answer, its error mapping, the limiter's reading of anthropic-ratelimit-* headers, prices."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from afterimage_cli.config import ModelConfig
from afterimage_cli.errors import ProviderError
from afterimage_cli.providers.anthropic_direct import DEFAULT_MAX_TOKENS, STRUCTURED_TOOL, AnthropicProvider
from afterimage_cli.providers.factory import LLMFactory, parse_model, resolve_route
from afterimage_cli.providers.http_errors import status_error
from afterimage_cli.providers.pricing import ModelPrice, price_per_token
from afterimage_cli.providers.ratelimit import RateLimiter, reset_seconds


class Verdict(BaseModel):
    answer: str
    score: int


def provider(model: str = "anthropic/claude-test", **settings) -> AnthropicProvider:
    made = LLMFactory.create(model, api_base="http://127.0.0.1:9", **settings)
    assert isinstance(made, AnthropicProvider)
    return made


def message(*content: dict, stop_reason: str = "end_turn", **usage: int) -> dict:
    """A Messages API answer body (anthropic.types.Message)."""
    counts = {"input_tokens": 10, "output_tokens": 5, **usage}
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test", "content": list(content)}
    return body | {"stop_reason": stop_reason, "stop_sequence": None, "usage": counts}


def test_anthropic_models_get_the_direct_transport_unless_litellm_is_asked_for() -> None:
    assert parse_model("anthropic/claude-sonnet-4-5").provider == "anthropic"
    assert parse_model("claude-sonnet-4-5").full == "anthropic/claude-sonnet-4-5"
    assert parse_model("claude-sonnet-4-5").provider == "anthropic"
    assert parse_model("anthropic/claude-x", api_base="http://127.0.0.1:9").provider == "anthropic"
    assert parse_model("anthropic/claude-x", provider="litellm").provider == "litellm"


def test_the_base_url_comes_from_the_config_then_the_sdk_variable() -> None:
    env = {"ANTHROPIC_BASE_URL": "http://gateway:8080"}
    gateway = resolve_route(ModelConfig(model="anthropic/claude-x"), env)
    assert (gateway.api_base, gateway.source, gateway.serves_elsewhere) == (
        "http://gateway:8080",
        "ANTHROPIC_BASE_URL",
        True,
    )
    assert resolve_route(ModelConfig(model="anthropic/claude-x", api_base="http://a:1"), env).api_base == "http://a:1"
    own = resolve_route(ModelConfig(model="anthropic/claude-x"), {})
    assert (own.api_base, own.source, own.serves_elsewhere) == ("https://api.anthropic.com", "default", False)
    made = LLMFactory.from_config(ModelConfig(model="anthropic/claude-x"), {"ANTHROPIC_API_KEY": "sk"})
    assert isinstance(made, AnthropicProvider) and made.url == "https://api.anthropic.com/v1/messages"
    for base in ("http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/messages"):
        made = LLMFactory.create("anthropic/claude-x", api_base=base)
        assert isinstance(made, AnthropicProvider) and made.url == "http://h:1/v1/messages"
        assert made.models_url == "http://h:1/v1/models" and made.request_url == "/v1/messages"


def test_the_body_puts_the_system_prompt_on_top_and_turns_in_alternation() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "Hi, what do you need?", "reasoning_content": None},
        {"role": "user", "content": "One."},
        {"role": "user", "content": [{"type": "text", "text": "Two."}]},
        {"role": "system", "content": "Answer in English."},
    ]
    body = provider().request_payload(messages)
    assert body["system"] == "Be brief.\n\nAnswer in English."
    assert body["messages"] == [
        {"role": "user", "content": "."},  # the API refuses a first turn that is not the user's
        {"role": "assistant", "content": "Hi, what do you need?"},  # and any key but role and content
        {"role": "user", "content": [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}]},
    ]
    assert body["model"] == "claude-test" and body["max_tokens"] == DEFAULT_MAX_TOKENS
    with pytest.raises(ProviderError, match="not 'function'"):  # tool turns translate (test_tool_transport)
        provider().request_payload([{"role": "function", "content": "x"}])


def test_max_tokens_parameters_and_sampling() -> None:
    params = {"stop": "END", "seed": 7, "user": "u1", "top_k": 5, "reasoning_effort": "low", "metadata": {"a": 1}}
    body = provider(max_tokens=300, temperature=0.5, params=params).request_payload([{"role": "user", "content": "q"}])
    assert body["max_tokens"] == 300 and body["temperature"] == 0.5 and body["top_k"] == 5
    assert body["stop_sequences"] == ["END"] and "seed" not in body and "stop" not in body
    assert body["metadata"] == {"a": 1, "user_id": "u1"} and body["output_config"] == {"effort": "low"}
    thinking = {"type": "enabled", "budget_tokens": 2000}
    body = provider(params={"thinking": thinking}).request_payload([{"role": "user", "content": "q"}])
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS + 2000  # the thinking budget counts toward max_tokens
    # A model that no longer takes sampling parameters (the bundled map says so) does not get them.
    body = provider("anthropic/claude-opus-4-7", temperature=0.5).request_payload([{"role": "user", "content": "q"}])
    assert "temperature" not in body


def test_structured_output_through_a_forced_tool_or_the_json_output() -> None:
    asked = [{"role": "user", "content": "Judge."}]
    body = provider().request_payload(asked, Verdict)
    assert body["tool_choice"] == {"type": "tool", "name": STRUCTURED_TOOL}
    assert body["tools"][0]["input_schema"] == Verdict.model_json_schema()
    thinking = {"type": "enabled", "budget_tokens": 1024}
    body = provider(params={"thinking": thinking}).request_payload(asked, Verdict)
    assert body["tool_choice"] == {"type": "auto"}  # the API refuses forcing a tool while thinking
    body = provider().request_payload(asked, {"type": "array", "items": {"type": "string"}})
    assert body["tools"][0]["input_schema"]["properties"]["value"] == {"type": "array", "items": {"type": "string"}}
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}, "v": {"oneOf": [{}]}}}
    body = provider("anthropic/claude-haiku-4-5").request_payload(asked, schema)
    assert "tools" not in body
    strict = body["output_config"]["format"]
    assert strict["type"] == "json_schema" and strict["schema"]["additionalProperties"] is False
    assert strict["schema"]["properties"] == {"n": {"type": "integer"}, "v": {"anyOf": [{}]}}


def test_an_answer_is_read_from_its_content_blocks() -> None:
    thought = {"type": "thinking", "thinking": "Let me see.", "signature": "s"}
    data = message(thought, {"type": "text", "text": "Hello "}, {"type": "text", "text": "there."})
    headers = {"anthropic-ratelimit-requests-remaining": "5", "request-id": "r"}
    answer = provider().answer_from(data, headers)
    assert answer.text == "Hello there." and answer.reasoning_content == "Let me see."
    assert answer.finish_reason == "stop" and answer.headers == {"anthropic-ratelimit-requests-remaining": "5"}
    tool = {"type": "tool_use", "id": "t", "name": STRUCTURED_TOOL, "input": {"answer": "ok", "score": 3}}
    parsed = provider().answer_from(message(tool, stop_reason="tool_use"), {}, Verdict)
    assert parsed.parsed == Verdict(answer="ok", score=3)  # type: ignore[attr-defined]
    wrapped = {**tool, "input": {"value": ["a", "b"]}}
    listed = provider().answer_from(message(wrapped, stop_reason="tool_use"), {}, {"type": "array"})
    assert listed.parsed == ["a", "b"]  # type: ignore[attr-defined]


def test_usage_counts_cache_tokens_as_prompt_tokens_and_prices_them() -> None:
    price = ModelPrice.of(1e-6, 5e-6, cache_read=1e-7, cache_creation=1.25e-6)
    data = message({"type": "text", "text": "hi"}, cache_read_input_tokens=100, cache_creation_input_tokens=40)
    answer = provider(input_cost_per_million=1, output_cost_per_million=5).answer_from(data, {})
    assert answer.prompt_token_count == 150 and answer.total_token_count == 155
    assert answer.cached_prompt_tokens == 100 and answer.cache_creation_tokens == 40
    assert answer.cost == pytest.approx(150e-6 + 25e-6)  # no cache prices in the config: the input price
    made = provider()
    made.price = price
    assert made.answer_from(data, {}).cost == pytest.approx(10e-6 + 100e-7 + 40 * 1.25e-6 + 25e-6)


def test_stop_reasons() -> None:
    made = provider(max_tokens=100)
    cut = made.answer_from(message({"type": "text", "text": "x"}, stop_reason="max_tokens", output_tokens=100), {})
    assert cut.finish_reason == "length"
    with pytest.raises(ProviderError) as window:  # cut well before max_tokens: the context window ended
        made.answer_from(message({"type": "text", "text": "x"}, stop_reason="model_context_window_exceeded"), {})
    assert window.value.kind == "context_limit"
    with pytest.raises(ProviderError) as refused:
        made.answer_from(message(stop_reason="refusal"), {})
    assert refused.value.kind == "content_filter" and not refused.value.retryable
    assert refused.value.response is not None and refused.value.response.prompt_token_count == 10  # billed
    with pytest.raises(ProviderError) as empty:
        made.answer_from(message(), {})
    assert empty.value.kind == "invalid_output" and empty.value.retryable
    with pytest.raises(ProviderError) as truncated:  # a cut structured answer fails naming the setting
        made.answer_from(message(stop_reason="max_tokens", output_tokens=100), {}, Verdict)
    assert truncated.value.kind == "truncated" and "max_tokens" in str(truncated.value)


def test_error_statuses() -> None:
    overloaded = status_error("m", 529, "Overloaded", {"retry-after": "7"}, None, None)
    assert overloaded.kind == "rate_limit" and overloaded.retryable and overloaded.retry_after == 7.0
    assert overloaded.status_code == 529
    long = status_error("m", 400, "prompt is too long: 208310 tokens > 200000 maximum", {}, None, None)
    assert long.kind == "context_limit"
    detail = "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, decrease input length"
    assert status_error("m", 400, detail, {}, None, None).kind == "context_limit"


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("prefix", ["", "llm_provider-"])  # as litellm passes them on
@pytest.mark.parametrize("kind", ["requests", "tokens", "input-tokens", "output-tokens"])
def test_anthropic_ratelimit_headers_pause_until_their_reset(prefix, kind) -> None:
    clock, wall = Clock(), Clock(1_700_000_000.0)
    limiter = RateLimiter(clock=clock, wall_clock=wall)
    assert limiter.try_acquire() == 0.0
    headers = {
        f"{prefix}anthropic-ratelimit-{kind}-remaining": "0",
        f"{prefix}anthropic-ratelimit-{kind}-reset": iso(wall.now + 0.5),
    }
    limiter.release(ok=True, headers=headers)
    assert limiter.try_acquire() == pytest.approx(0.5)
    clock.now = 0.5
    assert limiter.try_acquire() == 0.0


def test_reset_times() -> None:
    assert reset_seconds("2025-01-01T00:00:30Z", datetime(2025, 1, 1, tzinfo=UTC).timestamp()) == 30.0
    assert reset_seconds("2025-01-01T00:00:30+00:00", datetime(2025, 1, 1, 0, 1, tzinfo=UTC).timestamp()) == 0.0
    assert reset_seconds("6m0s", 0.0) == 360.0 and reset_seconds("soon", 0.0) is None


def test_prices_carry_cache_and_batch_rates() -> None:
    price = price_per_token("anthropic/claude-haiku-4-5", "claude-haiku-4-5")
    assert price is not None and price.cache_read < price.input < price.cache_creation
    assert price.batch_input == pytest.approx(price.input / 2)
    plain = ModelPrice.of(2e-6, 8e-6)
    assert (plain.cache_read, plain.cache_creation, plain.batch_input, plain.batch_output) == (2e-6, 2e-6, 1e-6, 4e-6)
    assert plain.cost(100, 10, cached=60) == pytest.approx(100 * 2e-6 + 10 * 8e-6)
