"""The same calls through litellm (`provider: litellm`, api_base at the fake's Anthropic routes) and through the
direct transport give the same answers, usage, cost, reasoning, rate-limit headers and errors. Each transport
talks to a fresh fake server with the same knobs, so the fake's prompt cache starts empty for both."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from afterimage_cli.errors import ProviderError
from afterimage_cli.providers.base import LLMProvider
from afterimage_cli.providers.factory import LLMFactory
from afterimage_cli.providers.ratelimit import header

from .fakeserver import FakeOpenAIServer

UNPRICED = "anthropic/claude-test"  # unknown to the price map: a forced tool for structured output
PRICED = "anthropic/claude-haiku-4-5"  # known: the API's JSON output, cache prices, thinking supported
DIALOG = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What is a hash map?"},
    {"role": "assistant", "content": "A table of keys and values."},
    {"role": "user", "content": "And how does it handle collisions?"},
]


class Verdict(BaseModel):
    answer: str
    score: int


def answer_fields(answer: Any) -> dict[str, Any]:
    """What a run keeps of an answer: the text (as data when it is JSON), usage, cost, reasoning, limits."""
    try:
        text: Any = orjson.loads(answer.text)
    except orjson.JSONDecodeError:
        text = answer.text
    limits = {k: header(answer.headers, f"anthropic-ratelimit-{k}-remaining") for k in ("requests", "tokens")}
    return {
        "text": text,
        "parsed": getattr(answer, "parsed", None),
        "finish_reason": answer.finish_reason,
        "usage": (answer.prompt_token_count, answer.completion_token_count, answer.total_token_count),
        "cache": (answer.cached_prompt_tokens, answer.cache_creation_tokens),
        "cost": None if answer.cost is None else round(answer.cost, 12),
        "reasoning": answer.reasoning_content,
        "limits": limits,
    }


def error_fields(error: ProviderError) -> dict[str, Any]:
    return {"kind": error.kind, "retryable": error.retryable, "status": error.status_code, "wait": error.retry_after}


Call = Callable[[LLMProvider], Awaitable[Any]]


async def ask(call: Call, transport: str, model: str, knobs: dict[str, Any], **settings: Any) -> list[dict]:
    """The fields of each answer `call` gets (or of the error it raises) through one transport."""
    server = FakeOpenAIServer(rate_limit_headers=True, **knobs).start()
    made = LLMFactory.create(model, api_base=server.url, provider=transport, **settings)
    try:
        results = await call(made)
        return [answer_fields(r) for r in results]
    except ProviderError as error:
        return [error_fields(error)]
    finally:
        await made.aclose()
        server.stop()


def both_ways(call: Call, model: str = UNPRICED, knobs: dict[str, Any] | None = None, **settings: Any) -> list[dict]:
    async def main() -> tuple[list[dict], list[dict]]:
        through_litellm = await ask(call, "litellm", model, knobs or {}, **settings)
        direct = await ask(call, "anthropic", model, knobs or {}, **settings)
        return through_litellm, direct

    through_litellm, direct = asyncio.run(main())
    assert direct == through_litellm
    return direct


async def chat(made: LLMProvider) -> list[Any]:
    return [await made.acomplete(DIALOG)]


async def twice(made: LLMProvider) -> list[Any]:
    return [await made.acomplete(DIALOG), await made.acomplete(DIALOG)]


async def judged(made: LLMProvider) -> list[Any]:
    return [await made.acomplete_structured(DIALOG, Verdict)]


@pytest.mark.parametrize("model", [UNPRICED, PRICED])
def test_a_dialog(model) -> None:
    (answer,) = both_ways(chat, model)
    assert answer["text"].startswith("Here is an answer about") and answer["limits"]["requests"] == "9999"
    assert (answer["cost"] is None) == (model == UNPRICED)


@pytest.mark.parametrize("model", [UNPRICED, PRICED], ids=["forced-tool", "json-output"])
def test_structured_output(model, monkeypatch: pytest.MonkeyPatch) -> None:
    from litellm import anthropic_beta_headers_manager as beta_headers

    fetched: list[str] = []  # litellm swallows a failed fetch (and uses its bundled table): record, do not raise

    def fetch(url: str, timeout: int = 5) -> dict:
        fetched.append(url)
        raise OSError("no network in tests")

    # JSON output sends a beta header, and litellm fetched its beta-header table from GitHub for it.
    monkeypatch.setattr(beta_headers.GetAnthropicBetaHeadersConfig, "fetch_remote_beta_headers_config", fetch)
    monkeypatch.setattr(beta_headers, "_BETA_HEADERS_CONFIG", None)  # loaded once per process: load it again
    (answer,) = both_ways(judged, model)
    assert answer["parsed"] == Verdict(answer="sample answer", score=1)
    assert fetched == [], "nothing may phone home"


def test_thinking() -> None:
    (answer,) = both_ways(chat, PRICED, params={"thinking": {"type": "enabled", "budget_tokens": 1024}})
    assert answer["reasoning"] == "Thinking about 3 messages before answering."


def test_prompt_cache_usage_and_cost() -> None:
    first, second = both_ways(twice, PRICED, params={"cache_control": {"type": "ephemeral"}})
    assert first["cache"][0] == 0 and first["cache"][1] > 0
    assert second["cache"] == (first["cache"][1], 0) and second["cost"] < first["cost"]


def test_an_answer_cut_by_max_tokens() -> None:
    (answer,) = both_ways(chat, max_tokens=3)
    assert answer["finish_reason"] == "length"


@pytest.mark.parametrize(
    "knobs,kind",
    [
        ({"fail_status": 429}, "rate_limit"),
        ({"fail_status": 529}, "rate_limit"),
        ({"fail_status": 401}, "auth"),
        ({"fail_status": 500}, "server"),
        ({"context_tokens": 5}, "context_limit"),
        ({"filter_words": ("collisions",)}, "content_filter"),
    ],
)
def test_errors(knobs, kind) -> None:
    (error,) = both_ways(chat, knobs=knobs)
    assert error["kind"] == kind


@pytest.mark.parametrize("model", [UNPRICED, PRICED], ids=["forced-tool", "json-output"])
def test_a_structured_answer_cut_by_max_tokens_fails_naming_the_limit(model) -> None:
    # Not compared: litellm reports a forced tool cut by max_tokens as finish_reason "stop" with input {},
    # which then fails validation and is asked again (and cut again). The direct transport keeps the
    # stop reason, so the cut answer fails at once, as every other transport's does.
    (error,) = asyncio.run(ask(judged, "anthropic", model, {}, max_tokens=3))
    assert error == {"kind": "truncated", "retryable": False, "status": None, "wait": None}
