"""The direct transport against litellm, call for call: for each OpenAI-protocol host the same call is made
both ways against the fake server, and the request the server received (path, auth scheme, body) and the
answer read from it (text, usage with cached tokens, cost, reasoning, rate-limit headers, parsed output,
errors) must be the same."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from afterimage_cli.config import ModelConfig
from afterimage_cli.errors import ProviderError
from afterimage_cli.providers.factory import LLMFactory
from afterimage_cli.providers.litellm_provider import LiteLLMProvider, import_litellm
from afterimage_cli.providers.openai_compat import OpenAICompatProvider
from afterimage_cli.providers.ratelimit import header

KEY_ENV = {"PARITY_KEY": "sk-parity"}
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a hash map?"}]
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
    "required": ["answer", "confidence"],
    "additionalProperties": False,
}
# One model or more of each host in the transport table, with the kinds litellm treats apart (OpenAI's
# o-series and gpt-5 reasoning models, Groq models with and without native JSON-Schema output, …).
MODELS = [
    "openai/gpt-4o-mini",
    "openai/fake-model",
    "openai/o1",
    "openai/o3-mini",
    "openai/o4-mini",
    "openai/gpt-5-mini",
    "openai/gpt-5.1",
    "openai/gpt-5-chat-latest",
    "azure/my-deployment",
    "azure/o3-mini",
    "azure/gpt-5-mini",
    "groq/llama-3.1-8b-instant",
    "groq/openai/gpt-oss-120b",
    "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "deepseek/deepseek-chat",
    "deepseek/deepseek-reasoner",
    "fireworks_ai/llama-v3p1-8b-instruct",
    "fireworks_ai/accounts/fireworks/models/deepseek-v3",
    "openrouter/openai/gpt-4o-mini",
    "mistral/mistral-small-latest",
    "mistral/magistral-medium-latest",
    "xai/grok-3-mini",
    "xai/grok-4",
    "cerebras/llama3.1-8b",
    "perplexity/sonar",
]
# Sampling parameters OpenAI's reasoning models refuse, which litellm drops for them.
OPENAI_SAMPLING = {"top_p": 0.9, "presence_penalty": 0.1, "frequency_penalty": 0.1, "stop": ["\n\n"]}


def both(srv, model: str, **fields: Any) -> tuple[LiteLLMProvider, OpenAICompatProvider]:
    """The same model block built as `provider: litellm` and by default (the direct transport)."""
    base = srv.url if model.startswith("azure/") else srv.api_base
    common = {"model": model, "api_base": base, "api_key_env": "PARITY_KEY", **fields}
    via_litellm = LLMFactory.from_config(ModelConfig(provider="litellm", **common), KEY_ENV)
    direct = LLMFactory.from_config(ModelConfig(**common), KEY_ENV)
    assert isinstance(via_litellm, LiteLLMProvider) and isinstance(direct, OpenAICompatProvider)
    return via_litellm, direct


async def _call(provider: Any, schema: dict[str, Any] | None, **kwargs: Any) -> Any:
    try:
        if schema is None:
            return await provider.acomplete(MESSAGES, **kwargs)
        return await provider.acomplete_structured(MESSAGES, schema, **kwargs)
    finally:
        await provider.aclose()


def call(provider: Any, schema: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """One call on an event loop of its own. litellm keeps its HTTP clients across loops (a run has one loop),
    so they are dropped after each call."""
    try:
        return asyncio.run(_call(provider, schema, **kwargs))
    finally:
        if isinstance(provider, LiteLLMProvider):
            import_litellm().in_memory_llm_clients_cache.flush_cache()


def sent(srv, provider: Any, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the server received for one call through `provider`."""
    call(provider, schema)
    return srv.snapshot()["last_request"]


@pytest.mark.parametrize("model", MODELS)
def test_the_server_receives_the_same_request_both_ways(fake_server, model) -> None:
    sampling = OPENAI_SAMPLING if model.startswith(("openai/", "azure/")) else {}
    fields = {"temperature": 0.7, "max_tokens": 60, "params": sampling}
    for schema in (None, SCHEMA):
        via_litellm, direct = both(fake_server, model, **fields)
        expected = sent(fake_server, via_litellm, schema)
        assert sent(fake_server, direct, schema) == expected, (model, schema)


def test_reasoning_effort_none_keeps_temperature_where_litellm_does(fake_server) -> None:
    for effort in ("none", "low"):
        fields = {"temperature": 0.3, "max_tokens": 60, "params": {"reasoning_effort": effort, "top_p": 0.5}}
        via_litellm, direct = both(fake_server, "openai/gpt-5.1", **fields)
        assert sent(fake_server, direct) == sent(fake_server, via_litellm), effort


def test_tools_in_params_reach_the_server_as_written(fake_server) -> None:
    # Compared with the direct transport alone: litellm 1.106.2 cannot send `tools` without the optional
    # `mcp` package (it fails the call with "No module named 'mcp'").
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    _, direct = both(fake_server, "openai/gpt-4o-mini", params={"tools": [tool], "tool_choice": "auto"})
    body = sent(fake_server, direct)["body"]
    assert body["tools"] == [tool] and body["tool_choice"] == "auto"


def _fields(answer: Any) -> dict[str, Any]:
    """What the run takes from an answer: the text, usage, cost, reasoning, finish and rate-limit headers."""
    names = ("text", "prompt_token_count", "completion_token_count", "total_token_count", "cached_prompt_tokens")
    names += ("cache_creation_tokens", "finish_reason", "reasoning_content", "model_name")
    picked = {name: getattr(answer, name) for name in names}
    picked["cost"] = pytest.approx(answer.cost) if answer.cost is not None else None
    picked["parsed"] = getattr(answer, "parsed", None)
    return picked


LIMIT_HEADERS = [f"x-ratelimit-{what}-{kind}" for what in ("remaining", "reset") for kind in ("requests", "tokens")]


def limits(answer: Any) -> dict[str, str | None]:
    """The rate-limit headers as the limiter reads them (litellm may prefix them with 'llm_provider-')."""
    return {name: header(answer.headers, name) for name in LIMIT_HEADERS}


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "azure/gpt-4o-mini", "groq/llama-3.1-8b-instant"])
def test_answers_read_the_same_both_ways(fake_server, model) -> None:
    fake_server.reasoning = True
    fake_server.cached_share = 0.5
    fake_server.rate_limit_headers = True
    fields = {"max_tokens": 200, "input_cost_per_million": 2.0, "output_cost_per_million": 8.0}
    for schema in (None, SCHEMA):
        via_litellm, direct = both(fake_server, model, **fields)
        expected, answer = call(via_litellm, schema), call(direct, schema)
        assert _fields(answer) == _fields(expected), (model, schema)
        assert answer.cached_prompt_tokens == answer.prompt_token_count // 2 > 0 and answer.reasoning_content
        if schema is not None:
            assert set(answer.parsed) == {"answer", "confidence"}
        # Every rate-limit header litellm passes on, the direct transport does too (it keeps the reset
        # times litellm drops for OpenAI, and Groq's, which litellm drops altogether).
        seen = limits(expected)
        assert {k: v for k, v in limits(answer).items() if seen[k] is not None} == {
            k: v for k, v in seen.items() if v is not None
        }
        assert limits(answer)["x-ratelimit-remaining-requests"] and limits(answer)["x-ratelimit-reset-requests"]


def test_cached_tokens_are_priced_at_the_cached_rate_both_ways(fake_server) -> None:
    from afterimage_cli.providers.pricing import price_per_token

    fake_server.cached_share = 0.5
    price = price_per_token("openai/gpt-4o-mini", "gpt-4o-mini")
    assert price is not None and price.cache_read < price.input
    for provider in both(fake_server, "openai/gpt-4o-mini"):
        answer = call(provider)
        cached = answer.prompt_token_count // 2
        fresh = answer.prompt_token_count - cached
        expected = fresh * price.input + cached * price.cache_read + answer.completion_token_count * price.output
        assert answer.cached_prompt_tokens == cached > 0 and answer.cost == pytest.approx(expected)


def _error(provider: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call(provider, max_tokens=20)
    return caught.value


def _error_fields(error: ProviderError) -> tuple[Any, ...]:
    return error.kind, error.retryable, error.status_code, error.retry_after


@pytest.mark.parametrize(
    "knobs",
    [
        {"fail_status": 401},
        {"fail_status": 403},
        {"fail_status": 404},
        {"fail_status": 500},
        {"rate_429": 1.0, "retry_after": 3},
        {"filter_words": ("hash",)},
        {"withheld_words": ("hash",)},
        {"context_tokens": 3},
    ],
    ids=lambda knobs: ",".join(f"{k}={v}" for k, v in knobs.items()),
)
# A 422 is left out: litellm 1.106.2 reads one as a malformed answer (retried), the direct transport as the
# refusal it is (the item is rejected; test_item_failures.py).
@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "azure/gpt-4o-mini"])
def test_errors_map_the_same_both_ways(fake_server, model, knobs) -> None:
    for name, value in knobs.items():
        setattr(fake_server, name, value)
    via_litellm, direct = both(fake_server, model)
    expected, error = _error(via_litellm), _error(direct)
    assert _error_fields(error) == _error_fields(expected), (str(error), str(expected))


def test_a_server_that_is_not_there_is_a_connection_error_both_ways(fake_server) -> None:
    url = fake_server.api_base
    fake_server.stop()  # nothing listens on its port any more
    via_litellm, direct = (
        LLMFactory.from_config(ModelConfig(model="openai/gpt-4o-mini", api_base=url, provider=p, timeout=5), KEY_ENV)
        for p in ("litellm", None)
    )
    assert _error_fields(_error(direct)) == _error_fields(_error(via_litellm)) == ("connection", True, None, None)
