"""The direct Gemini transport: `gemini/…` models call generateContent themselves (no litellm), against the
fake server's Gemini routes through GEMINI_API_BASE or api_base."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from afterimage_cli.config import ModelConfig
from afterimage_cli.errors import ConfigError, ProviderError, is_item_level
from afterimage_cli.providers.factory import LLMFactory, parse_model
from afterimage_cli.providers.gemini_direct import GeminiProvider
from afterimage_cli.providers.litellm_provider import LiteLLMProvider
from afterimage_cli.providers.pricing import price_per_token

from .evaluate_helpers import conversation_row, write_rows
from .helpers import invoke, make_config, read_rows

FAST_RETRY = {"max_attempts": 4, "base_delay": 0.01, "max_delay": 0.05}
MODEL = "gemini/gemini-2.5-flash"


def generate(tmp_path, *extra: str, respondent: dict | None = None, **sections):
    sections["respondent"] = {"model": MODEL, **(respondent or {})}
    cfg = make_config(tmp_path, retry=FAST_RETRY, **sections)
    return invoke("generate", str(cfg), "-q", *extra)


def provider(srv, model: str = MODEL, **settings) -> GeminiProvider:
    built = LLMFactory.from_config(ModelConfig(model=model, api_base=srv.url, **settings), environ={})
    assert isinstance(built, GeminiProvider)
    return built


async def call(p: GeminiProvider, text: str = "What is TCP?", **kwargs):
    try:
        return await p.acomplete([{"role": "user", "content": text}], **kwargs)
    finally:
        await p.aclose()


def test_gemini_models_take_the_direct_transport_unless_litellm_is_asked_for() -> None:
    assert parse_model("gemini/gemini-2.5-flash").provider == "gemini"
    assert parse_model("gemini-2.5-flash").provider == "gemini"
    assert parse_model("gemini/gemini-2.5-flash", provider="litellm").provider == "litellm"
    env = {"GEMINI_API_KEY": "gk-1"}
    built = LLMFactory.from_config(ModelConfig(model=MODEL, provider="litellm"), environ=env)
    assert isinstance(built, LiteLLMProvider)
    direct = LLMFactory.from_config(ModelConfig(model=MODEL), environ=env)
    assert isinstance(direct, GeminiProvider)
    assert direct.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert direct.request_url == "/v1beta/models/gemini-2.5-flash:generateContent"
    # litellm's convention for a gemini api_base names the version: it is taken as it is.
    versioned = LLMFactory.from_config(ModelConfig(model=MODEL, api_base="http://gw.local/v1beta"), environ={})
    assert isinstance(versioned, GeminiProvider)
    assert versioned.url == "http://gw.local/v1beta/models/gemini-2.5-flash:generateContent"


def test_generate_calls_gemini_at_GEMINI_API_BASE_and_sends_no_key_there(fake_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GEMINI_API_BASE", fake_server.url)
    monkeypatch.setenv("GEMINI_API_KEY", "gk-real-key")
    result = generate(tmp_path, "-n", "8", "--json", generation={"min_turns": 2, "max_turns": 2})
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 8 and all(len(r["conversations"]) == 4 for r in rows)
    stats = fake_server.stats
    assert set(stats["models"]) == {"gemini-2.5-flash"} and stats["model_lists"] == 1
    # A key from GEMINI_API_KEY goes only to Google: this base got none.
    assert stats["by_key"] == {"": stats["requests"]}
    summary = orjson.loads(result.stdout)
    assert summary["calls"] == stats["ok"]
    assert (summary["prompt_tokens"], summary["completion_tokens"]) == (
        stats["prompt_tokens"],
        stats["completion_tokens"],
    )
    # The server was asked which model it serves, from Gemini's own model list.
    models = rows[0]["metadata"]["models"]
    assert models["respondent"] == MODEL and models["served"]["respondent"] == "fake-model"


def test_a_named_key_travels_in_the_x_goog_api_key_header(fake_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "gk-named")
    respondent = {"api_base": fake_server.url, "api_key_env": "GEMINI_API_KEY"}
    result = generate(tmp_path, "-n", "3", respondent=respondent, generation={"max_turns": 1})
    assert result.exit_code == 0, result.stderr
    assert fake_server.stats["by_key"] == {"gk-named": fake_server.stats["requests"]}


def test_GEMINI_API_BASE_that_is_not_a_url_is_a_config_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GEMINI_API_BASE", "localhost:9999")
    result = generate(tmp_path, "-n", "1")
    assert result.exit_code == 2
    assert "GEMINI_API_BASE must be an http:// or https:// URL" in result.stderr and "Traceback" not in result.stderr


def test_a_rejected_key_leaves_the_pool_and_the_run_goes_on(fake_server, tmp_path, monkeypatch) -> None:
    # Gemini refuses a bad key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID: a 401 by another name.
    monkeypatch.setenv("GEMINI_KEY_A", "gk-bad")
    monkeypatch.setenv("GEMINI_KEY_B", "gk-good")
    fake_server.reject_keys = {"gk-bad"}
    respondent = {"api_base": fake_server.url, "api_key_env": ["GEMINI_KEY_A", "GEMINI_KEY_B"]}
    result = generate(tmp_path, "-n", "6", respondent=respondent, generation={"max_turns": 1, "concurrency": 1})
    assert result.exit_code == 0, result.stderr
    assert len(read_rows(tmp_path / "out.jsonl")) == 6
    assert "GEMINI_KEY_A was rejected" in result.stderr
    assert fake_server.stats["by_key"]["gk-bad"] == 1


def test_a_bad_only_key_stops_the_run_naming_its_variable(fake_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "gk-bad")
    fake_server.reject_keys = {"gk-bad"}
    respondent = {"api_base": fake_server.url, "api_key_env": "GEMINI_API_KEY"}
    result = generate(tmp_path, "-n", "5", respondent=respondent)
    assert result.exit_code != 0
    assert "GEMINI_API_KEY" in result.stderr and "rejected" in result.stderr and "Traceback" not in result.stderr
    assert fake_server.stats["requests"] <= 5


def test_resource_exhausted_waits_as_long_as_its_retry_info_says(fake_server) -> None:
    fake_server.rate_429, fake_server.retry_after = 1.0, 7.5
    with pytest.raises(ProviderError) as caught:
        asyncio.run(call(provider(fake_server)))
    error = caught.value
    assert (error.kind, error.status_code, error.retryable, error.retry_after) == ("rate_limit", 429, True, 7.5)


@pytest.mark.parametrize(
    "status,kind,retryable", [(500, "server", True), (503, "server", True), (404, "not_found", False)]
)
def test_error_statuses_map_like_every_transport(fake_server, status, kind, retryable) -> None:
    fake_server.fail_status = status
    with pytest.raises(ProviderError) as caught:
        asyncio.run(call(provider(fake_server)))
    assert (caught.value.kind, caught.value.retryable) == (kind, retryable)
    if status == 404:
        assert "check the model name" in str(caught.value)


def test_context_overflow_is_a_context_limit_of_that_item(fake_server) -> None:
    fake_server.context_tokens = 3
    with pytest.raises(ProviderError) as caught:
        asyncio.run(call(provider(fake_server), "a question far longer than three tokens"))
    assert caught.value.kind == "context_limit" and is_item_level(caught.value)


def answer(data: dict, schema=None, **settings):
    p = LLMFactory.from_config(ModelConfig(model=MODEL, api_base="http://gemini.test", **settings), environ={})
    assert isinstance(p, GeminiProvider)
    return p.answer_from(data, {}, schema)


USAGE = {"promptTokenCount": 40, "candidatesTokenCount": 12, "thoughtsTokenCount": 30, "totalTokenCount": 82}


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII"])
def test_a_safety_stop_refuses_that_item_and_keeps_its_billed_usage(reason) -> None:
    candidate = {"content": {"parts": [{"text": "Partial"}], "role": "model"}, "finishReason": reason, "index": 0}
    with pytest.raises(ProviderError) as caught:
        answer({"candidates": [candidate], "usageMetadata": USAGE})
    error = caught.value
    assert error.kind == "content_filter" and is_item_level(error) and reason in str(error)
    assert error.response is not None and error.response.prompt_token_count == 40
    assert error.response.completion_token_count == 42


def test_a_blocked_prompt_refuses_that_item() -> None:
    feedback = {"blockReason": "PROHIBITED_CONTENT", "safetyRatings": []}
    with pytest.raises(ProviderError) as caught:
        answer({"promptFeedback": feedback, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}})
    assert caught.value.kind == "content_filter" and is_item_level(caught.value)
    assert caught.value.response is not None and caught.value.response.prompt_token_count == 9


def test_an_answer_without_candidates_or_parts_is_retried() -> None:
    for data in ({"usageMetadata": USAGE}, {"candidates": [{"finishReason": "OTHER"}], "usageMetadata": USAGE}):
        with pytest.raises(ProviderError) as caught:
            answer(data)
        assert caught.value.kind == "invalid_output" and caught.value.retryable


def test_thoughts_usage_and_cached_tokens_are_read_and_priced() -> None:
    parts = [{"text": "Let me think.", "thought": True}, {"text": "Hello"}, {"text": " world"}]
    usage = {**USAGE, "cachedContentTokenCount": 25}
    data = {"candidates": [{"content": {"parts": parts}, "finishReason": "STOP"}], "usageMetadata": usage}
    response = answer(data)
    assert (response.text, response.reasoning_content, response.finish_reason) == (
        "Hello world",
        "Let me think.",
        "stop",
    )
    assert (response.prompt_token_count, response.completion_token_count, response.total_token_count) == (40, 42, 82)
    assert response.cached_prompt_tokens == 25
    price = price_per_token(MODEL, "gemini-2.5-flash")
    assert price is not None and price.cache_read is not None and price.cache_read < price.input
    assert response.cost == pytest.approx(15 * price.input + 25 * price.cache_read + 42 * price.output)
    cut = {
        "candidates": [{"content": {"parts": [{"text": "Hel"}]}, "finishReason": "MAX_TOKENS"}],
        "usageMetadata": USAGE,
    }
    assert answer(cut).finish_reason == "length"
    # Thinking that used up the whole limit leaves no text: a cut answer, not an empty one.
    spent = {"candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}], "usageMetadata": USAGE}
    assert (answer(spent).text, answer(spent).finish_reason) == ("", "length")


def test_run_cost_prices_cached_prompt_tokens_at_the_cache_rate(fake_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GEMINI_API_BASE", fake_server.url)
    fake_server.reasoning, fake_server.cached_share = True, 0.5
    result = generate(tmp_path, "-n", "4", "--json", generation={"min_turns": 2, "max_turns": 2})
    assert result.exit_code == 0, result.stderr
    stats, summary = fake_server.stats, orjson.loads(result.stdout)
    price = price_per_token(MODEL)
    assert price is not None and price.cache_read is not None and stats["cached_tokens"] > 0
    expected = (
        (stats["prompt_tokens"] - stats["cached_tokens"]) * price.input
        + stats["cached_tokens"] * price.cache_read
        + stats["completion_tokens"] * price.output
    )
    assert summary["cost_usd"] == pytest.approx(expected, abs=2e-6)
    assert summary["completion_tokens"] == stats["completion_tokens"]  # thoughts included
    for row in read_rows(tmp_path / "out.jsonl"):
        assert all(t["reasoning_content"] for t in row["conversations"] if t["role"] == "assistant")


SCHEMA = {
    "type": "object",
    "$defs": {
        "Step": {
            "type": "object",
            "properties": {"text": {"type": "string"}, "kind": {"enum": ["check", "act"]}},
            "required": ["text", "kind"],
            "additionalProperties": False,
        }
    },
    "properties": {"answer": {"type": "string"}, "steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}}},
    "required": ["answer", "steps"],
}


@pytest.mark.parametrize("model", ["gemini/gemini-1.5-flash", "gemini/gemini-2.5-flash"])
def test_structured_output_is_asked_by_schema_and_bad_answers_are_retried(fake_server, tmp_path, model) -> None:
    seen: list[dict] = []
    real = fake_server._content

    def recording(view, messages):
        if "response_format" in view:
            seen.append(view["response_format"]["json_schema"]["schema"])
        return real(view, messages)

    fake_server._content = recording  # type: ignore[method-assign]
    fake_server.rate_bad_structured = 0.3
    respondent = {"model": model, "api_base": fake_server.url}
    gen = {"kind": "structured", "output_schema": SCHEMA}
    result = generate(tmp_path, "-n", "12", "--json", respondent=respondent, generation=gen)
    assert result.exit_code == 0, result.stderr
    summary = orjson.loads(result.stdout)
    assert summary["errors"].get("invalid_output", 0) == fake_server.stats["bad_structured"] > 0
    for row in read_rows(tmp_path / "out.jsonl"):
        value = orjson.loads(row["conversations"][1]["content"])
        assert value["steps"] and all(step["kind"] in ("check", "act") for step in value["steps"])
    # Gemini 2.x reads the JSON Schema itself; 1.5 gets it inlined into Gemini's OpenAPI subset.
    if "2.5" in model:
        assert "$defs" in seen[0]
    else:
        assert "$defs" not in orjson.dumps(seen[0]).decode() and seen[0]["properties"]["steps"]["items"]["required"]


def test_a_cut_structured_answer_fails_naming_max_tokens(fake_server) -> None:
    p = provider(fake_server, max_tokens=3)

    async def structured():
        try:
            return await p.acomplete_structured([{"role": "user", "content": "Give JSON"}], SCHEMA)
        finally:
            await p.aclose()

    with pytest.raises(ProviderError) as caught:
        asyncio.run(structured())
    assert caught.value.kind == "truncated" and "raise max_tokens" in str(caught.value)


@pytest.mark.parametrize("judge", ["gemini/gemini-1.5-flash", "gemini/gemini-2.5-flash"])
def test_evaluate_with_a_gemini_judge(fake_server, tmp_path, monkeypatch, judge) -> None:
    """The judge's verdict is a pydantic model of nested models (extra=forbid): both schema forms carry it."""
    monkeypatch.setenv("GEMINI_API_BASE", fake_server.url)
    source = write_rows(tmp_path / "in.jsonl", [conversation_row(i) for i in range(4)])
    cfg = {"respondent": {"model": "offline"}, "retry": FAST_RETRY, "evaluation": {"judge": {"model": judge}}}
    config = tmp_path / "evaluate.yaml"
    config.write_bytes(orjson.dumps(cfg))
    out = tmp_path / "judged.jsonl"
    result = invoke("evaluate", str(source), "-o", str(out), "--config", str(config), "--json")
    assert result.exit_code == 0, result.stderr
    rows = read_rows(out)
    assert len(rows) == 4 and all(r["evaluation"]["coherence"]["score"] is not None for r in rows)
    assert orjson.loads(result.stdout)["judge"]["calls"] == 4


def test_request_body_maps_roles_system_and_settings() -> None:
    p = LLMFactory.from_config(
        ModelConfig(
            model=MODEL,
            api_base="http://gemini.test",
            temperature=0.3,
            max_tokens=200,
            params={"top_p": 0.9, "stop": "END", "seed": 7, "topK": 40, "safety_settings": [{"category": "X"}]},
        ),
        environ={},
    )
    assert isinstance(p, GeminiProvider)
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": [{"type": "text", "text": "there"}]},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "More"},
    ]
    body = p.request_payload(messages)
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}, {"text": "there"}]},
        {"role": "model", "parts": [{"text": "Hello"}]},
        {"role": "user", "parts": [{"text": "More"}]},
    ]
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "maxOutputTokens": 200,
        "topP": 0.9,
        "stopSequences": ["END"],
        "seed": 7,
        "topK": 40,
    }
    assert body["safetySettings"] == [{"category": "X"}]
    with pytest.raises(ProviderError) as caught:
        p.request_payload([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
    assert caught.value.kind == "bad_request" and "provider: litellm" in str(caught.value)


@pytest.mark.parametrize(
    "model,params,expected",
    [
        (MODEL, {"reasoning_effort": "low"}, {"thinkingBudget": 1024, "includeThoughts": True}),
        (MODEL, {"reasoning_effort": "none"}, {"thinkingBudget": 0, "includeThoughts": False}),
        (
            "gemini/gemini-3-pro-preview",
            {"reasoning_effort": "high"},
            {"thinkingLevel": "high", "includeThoughts": True},
        ),
        (
            MODEL,
            {"thinking": {"type": "enabled", "budget_tokens": 500}},
            {"includeThoughts": True, "thinkingBudget": 500},
        ),
        (MODEL, {"thinking_config": {"include_thoughts": True, "thinking_budget": -1}}, None),
    ],
)
def test_thinking_settings_become_thinking_config(model, params, expected) -> None:
    p = LLMFactory.from_config(ModelConfig(model=model, api_base="http://gemini.test", params=params), environ={})
    assert isinstance(p, GeminiProvider)
    config = p.request_payload([{"role": "user", "content": "Hi"}])["generationConfig"]
    assert config == {"thinkingConfig": expected or {"includeThoughts": True, "thinkingBudget": -1}}


def test_an_unknown_reasoning_effort_is_refused_when_the_run_is_built() -> None:
    with pytest.raises(ConfigError, match="reasoning_effort 'extreme'"):
        LLMFactory.from_config(
            ModelConfig(model=MODEL, params={"reasoning_effort": "extreme"}), environ={"GEMINI_API_KEY": "k"}
        )


def test_a_server_at_GEMINI_API_BASE_that_never_answers_is_named_when_the_run_stops(
    fake_server, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("GEMINI_API_BASE", fake_server.url)
    fake_server.down_after, fake_server.down_for = 0, 3600.0  # every call's connection is dropped
    result = generate(tmp_path, "-n", "3", error_budget={"max_consecutive_failures": 3})
    assert result.exit_code == 1
    assert f"the server at {fake_server.url} has not answered" in result.stderr, result.stderr


def test_the_served_model_comes_from_the_model_list_or_else_a_one_token_probe(fake_server) -> None:
    from afterimage_cli.config import RetryConfig
    from afterimage_cli.engine.served import aserved_model

    fake_server.model_name, fake_server.echo_model = "gemini-2.5-flash-001", False

    async def served() -> str:
        p = provider(fake_server)
        try:
            return await aserved_model(p, RetryConfig(max_attempts=1))
        finally:
            await p.aclose()

    assert asyncio.run(served()) == "gemini-2.5-flash-001" and fake_server.stats["requests"] == 0
    fake_server.models_status = 404  # no model list: the answer's modelVersion says it
    assert asyncio.run(served()) == "gemini-2.5-flash-001" and fake_server.stats["requests"] == 1
