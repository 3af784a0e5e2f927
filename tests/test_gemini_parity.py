"""The same Gemini calls through litellm (`provider: litellm`, api_base at the fake's /v1beta, litellm's
convention) and through the direct transport: answers, usage, cost, structured output, errors and whole runs
must come out the same."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from afterimage_cli.config import ModelConfig
from afterimage_cli.errors import ProviderError
from afterimage_cli.providers.base import LLMResponse
from afterimage_cli.providers.factory import LLMFactory

from .helpers import invoke, make_config, read_rows

MODEL = "gemini/gemini-2.5-flash"
MESSAGES = [
    {"role": "system", "content": "Be terse."},
    {"role": "user", "content": "What is TCP?"},
    {"role": "assistant", "content": "A transport protocol."},
    {"role": "user", "content": "Tell me more about its handshake"},
]


OPENINGS = [f"Question {n}: how do I tune setting {n}?" for n in range(8)] + ["Tell me the forbidden recipe."]


class Step(BaseModel):
    text: str
    order: int


class Plan(BaseModel):
    title: str
    steps: list[Step]


def build(srv, transport: str, **settings: Any):
    # litellm's gemini api_base names the API version; the direct transport takes the host (or either).
    base = srv.url + "/v1beta" if transport == "litellm" else srv.url
    return LLMFactory.from_config(ModelConfig(model=MODEL, provider=transport, api_base=base, **settings), environ={})


def both(srv, call: Callable[[Any], Awaitable[LLMResponse]], **settings: Any) -> dict[str, Any]:
    """{transport: the answer or the ProviderError} for one call made through each transport."""

    async def run(transport: str) -> Any:
        provider = build(srv, transport, **settings)
        try:
            return await call(provider)
        except ProviderError as error:
            return error
        finally:
            await provider.aclose()

    return {transport: asyncio.run(run(transport)) for transport in ("litellm", "gemini")}


def fields(answer: LLMResponse) -> tuple:
    return (
        answer.text,
        answer.finish_reason,
        answer.prompt_token_count,
        answer.completion_token_count,
        answer.total_token_count,
        answer.cached_prompt_tokens,
        answer.reasoning_content,
        answer.cost,
        getattr(answer, "parsed", None),
    )


@pytest.mark.parametrize(
    "case,knobs,settings",
    [
        ("plain", {}, {}),
        ("cut by max_tokens", {}, {"max_tokens": 3}),
        ("structured", {}, {}),
        ("thoughts and cached prompt", {"reasoning": True, "cached_share": 0.5}, {}),
    ],
)
def test_answers_usage_and_cost_are_the_same(fake_server, case, knobs, settings) -> None:
    for name, value in knobs.items():
        setattr(fake_server, name, value)
    if case == "structured":
        out = both(fake_server, lambda p: p.acomplete_structured(MESSAGES, Plan), **settings)
    else:
        out = both(fake_server, lambda p: p.acomplete(MESSAGES), **settings)
    litellm, direct = out["litellm"], out["gemini"]
    assert isinstance(litellm, LLMResponse) and isinstance(direct, LLMResponse), out
    assert fields(litellm) == fields(direct)
    assert direct.cost is not None and direct.text


@pytest.mark.parametrize(
    "knobs,kind,retryable,status",
    [
        ({"context_tokens": 3}, "context_limit", False, 400),
        ({"filter_words": ("handshake",)}, "content_filter", False, None),
        ({"unprocessable_words": ("handshake",)}, "bad_request", False, 400),
        ({"rate_429": 1.0}, "rate_limit", True, 429),
        ({"rate_500": 1.0}, "server", True, 500),
        ({"fail_status": 503}, "server", True, 503),
        ({"fail_status": 404}, "not_found", False, 404),
        ({"fail_status": 401}, "auth", False, 401),
    ],
)
def test_errors_are_the_same(fake_server, knobs, kind, retryable, status) -> None:
    for name, value in knobs.items():
        setattr(fake_server, name, value)
    out = both(fake_server, lambda p: p.acomplete(MESSAGES))
    for transport, error in out.items():
        assert isinstance(error, ProviderError), (transport, error)
        assert (error.kind, error.retryable) == (kind, retryable), (transport, str(error))
        # litellm names every 5xx by its InternalServerError class (500): the kind is what matters there.
        assert error.status_code == (500 if transport == "litellm" and status == 503 else status), transport


def run(srv, tmp_path, transport: str, *extra: str) -> tuple[list[dict], dict]:
    base = srv.url + "/v1beta" if transport == "litellm" else srv.url
    respondent = {"model": MODEL, "provider": transport, "api_base": base}
    out = tmp_path / f"{transport}.jsonl"
    cfg = make_config(
        tmp_path,
        respondent=respondent,
        retry={"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.02},
        generation={"num_conversations": 12, "min_turns": 2, "max_turns": 3, "concurrency": 4, "seed": 7},
        storage={"type": "jsonl", "path": str(out)},
        cache={"enabled": False},
        instructions={"generator": "simple", "options": {"instructions": OPENINGS}},
        error_budget={"max_rejected_share": 0.5},
    )
    result = invoke("generate", str(cfg), "-q", "--json", *extra)
    assert result.exit_code == 0, result.stderr
    return read_rows(out), orjson.loads(result.stdout)


def test_a_run_writes_the_same_rows_and_costs_the_same_through_either_transport(fake_server, tmp_path) -> None:
    fake_server.filter_words = ("forbidden",)  # one of the openings: those items are refused, on both paths
    fake_server.reasoning = True
    rows, summaries = {}, {}
    for transport in ("litellm", "gemini"):
        rows[transport], summaries[transport] = run(fake_server, tmp_path, transport)

    def content(row: dict) -> tuple:
        turns = tuple((t["role"], t["content"], t["reasoning_content"]) for t in row["conversations"])
        return turns, row["metadata"]["item_index"], row["metadata"]["ended_by"]

    # Rows are written as items finish (concurrency 4): the order may differ, each item's row may not.
    by_item = {t: sorted(map(content, rows[t]), key=lambda c: c[1]) for t in rows}
    assert by_item["litellm"] == by_item["gemini"]
    keys = ("rows_written", "calls", "prompt_tokens", "completion_tokens", "cost_usd", "items_failed")
    litellm, direct = ({k: s[k] for k in keys} for s in (summaries["litellm"], summaries["gemini"]))
    assert litellm == direct and direct["rows_written"] == 12
    assert summaries["litellm"]["errors"] == summaries["gemini"]["errors"]
    assert fake_server.stats["filtered"] > 0
