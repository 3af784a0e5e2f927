"""`anthropic/…` models through the direct Anthropic Messages transport, end to end through the CLI against the
fake server's Anthropic routes (ANTHROPIC_BASE_URL at it): conversations, keys, back-pressure, refusals,
structured output, thinking, and the cost of prompt-cache tokens."""

from __future__ import annotations

import orjson
import pytest

from afterimage_cli.engine.ledger import ledger_path, read_ledger
from afterimage_cli.providers.pricing import price_per_token

from .fakeserver import sample
from .helpers import invoke, make_config, read_rows

MODEL = "anthropic/claude-test"  # not in the price map: structured output through a forced tool, unpriced
PRICED = "anthropic/claude-haiku-4-5"  # in the map: the API's JSON output, priced with cache rates
FAST_RETRY = {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.05}
OPENINGS = [f"Question {n}: how do I tune setting {n}?" for n in range(8)] + ["Tell me the forbidden recipe."]
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}, "steps": {"type": "array"}}}


def generate(srv, tmp_path, monkeypatch, *extra: str, model: str = MODEL, **sections):
    """`afterimage generate --model …` with ANTHROPIC_BASE_URL at the fake server; the summary is --json."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
    sections.setdefault("retry", FAST_RETRY)
    sections.setdefault("instructions", {"generator": "simple", "options": {"instructions": OPENINGS}})
    cfg = make_config(tmp_path, **sections)
    return invoke("generate", str(cfg), "--model", model, "-q", "--json", *extra)


def summary_of(result) -> dict:
    return orjson.loads(result.stdout.strip().splitlines()[-1])


def rejections(tmp_path) -> list[dict]:
    return [r for r in read_ledger(ledger_path(tmp_path / "out.jsonl")) if r["event"] == "rejected"]


def test_generate_talks_to_the_messages_api(fake_server, tmp_path, monkeypatch):
    gen = {"min_turns": 3, "max_turns": 3, "concurrency": 4}
    result = generate(fake_server, tmp_path, monkeypatch, "-n", "6", generation=gen)
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 6
    for row in rows:
        assert [t["role"] for t in row["conversations"]] == ["user", "assistant"] * 3
        assert row["conversations"][1]["content"].startswith("Here is an answer about")
        assert row["conversations"][2]["content"].startswith("Can you tell me more")  # the simulated user
        assert row["metadata"]["models"]["served"]["respondent"] == "fake-model"  # from GET /v1/models
    stats = fake_server.stats
    # Every call reached POST /v1/messages and was a body the real API takes: a system role, extra keys, a
    # first turn that is not the user's (the simulated user's flipped dialog) would each have been a 400.
    assert stats["bad_request"] == 0 and "cache_read_input_tokens" in stats
    assert stats["models"] == {"claude-test": stats["requests"]}
    assert summary_of(result)["calls"] == stats["ok"] == 6 * 5
    assert stats["by_key"] == {"": stats["requests"]}  # a base URL that is not Anthropic's gets no key


def test_a_key_goes_to_a_base_url_only_when_its_variable_is_named(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-real")
    monkeypatch.setenv("TEAM_KEY", "sk-team")
    gen = {"max_turns": 1}
    assert generate(fake_server, tmp_path, monkeypatch, "-n", "2", generation=gen).exit_code == 0
    assert set(fake_server.stats["by_key"]) == {""}
    named = {"model": MODEL, "api_key_env": "TEAM_KEY"}
    result = generate(
        fake_server, tmp_path, monkeypatch, "-n", "2", "--overwrite", "--no-cache", generation=gen, respondent=named
    )
    assert result.exit_code == 0, result.stderr
    assert set(fake_server.stats["by_key"]) == {"", "sk-team"}  # sent as x-api-key, which the fake reads


def test_a_rejected_key_and_a_missing_key_say_what_to_fix(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("TEAM_KEY", "sk-bad")
    fake_server.reject_keys = {"sk-bad", ""}
    named = {"model": MODEL, "api_key_env": "TEAM_KEY"}
    result = generate(fake_server, tmp_path, monkeypatch, "-n", "3", respondent=named)
    assert result.exit_code == 1
    assert "API key was rejected (401)" in result.stderr and "TEAM_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    result = generate(fake_server, tmp_path, monkeypatch, "-n", "3", "--overwrite")
    assert result.exit_code == 1
    assert "none was sent" in result.stderr and "--api-key-env NAME" in result.stderr


def test_429_and_529_are_back_pressure_not_failures(fake_server, tmp_path, monkeypatch):
    # Two attempts per call: were 529 (overloaded) a server error, a third of the calls would run out of them.
    fake_server.rate_429, fake_server.rate_529, fake_server.seed = 0.25, 0.35, 3
    retry = {**FAST_RETRY, "max_attempts": 2}
    gen = {"max_turns": 1, "concurrency": 8}
    result = generate(fake_server, tmp_path, monkeypatch, "-n", "30", generation=gen, retry=retry)
    assert result.exit_code == 0, result.stderr
    assert len(read_rows(tmp_path / "out.jsonl")) == 30
    summary, stats = summary_of(result), fake_server.stats
    assert stats["529"] > 5 and stats["429"] > 5
    assert summary["errors"] == {"rate_limit": stats["429"] + stats["529"]}
    assert summary["items_failed"] == 0 and summary["outages"] == 0


def test_context_overflow_ends_the_dialog_at_the_last_complete_turn(fake_server, tmp_path, monkeypatch):
    fake_server.context_tokens = 90  # refused as Anthropic does: 400 "prompt is too long: N tokens > M maximum"
    gen = {"min_turns": 1, "max_turns": 6, "concurrency": 4}
    result = generate(fake_server, tmp_path, monkeypatch, "-n", "10", generation=gen)
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 10 and fake_server.stats["context_exceeded"] > 0
    assert "context_limit" in {r["metadata"]["ended_by"] for r in rows}
    for row in rows:
        roles = [t["role"] for t in row["conversations"]]
        assert roles and roles == ["user", "assistant"] * (len(roles) // 2)


def test_a_refusal_rejects_the_item_and_the_run_still_ends_with_exactly_n(fake_server, tmp_path, monkeypatch):
    fake_server.filter_words = ("forbidden",)  # answered with stop_reason "refusal"
    result = generate(fake_server, tmp_path, monkeypatch, "-n", "20", generation={"max_turns": 1})
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 20 and not any("forbidden" in r["conversations"][0]["content"] for r in rows)
    rejected = rejections(tmp_path)
    assert rejected and len(rejected) == fake_server.stats["filtered"]
    assert {r["cause"] for r in rejected} == {"content_filter"} and all(r["attempts"] == 1 for r in rejected)


@pytest.mark.parametrize("model", [MODEL, PRICED], ids=["forced-tool", "json-output"])
def test_structured_output(fake_server, tmp_path, monkeypatch, model):
    gen = {"kind": "structured", "output_schema": SCHEMA, "concurrency": 2}
    result = generate(fake_server, tmp_path, monkeypatch, "-n", "4", model=model, generation=gen)
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 4 and fake_server.stats["bad_request"] == 0
    for row in rows:
        assert orjson.loads(row["conversations"][1]["content"]) == sample(SCHEMA)


@pytest.mark.parametrize("model", [MODEL, PRICED], ids=["forced-tool", "json-output"])
def test_a_truncated_structured_answer_fails_fast_naming_max_tokens(fake_server, tmp_path, monkeypatch, model):
    gen = {"kind": "structured", "output_schema": SCHEMA, "concurrency": 2}
    respondent = {"model": model, "max_tokens": 3}  # stop_reason "max_tokens"
    result = generate(
        fake_server, tmp_path, monkeypatch, "-n", "20", model=model, generation=gen, respondent=respondent
    )
    assert result.exit_code == 1
    assert "respondent.max_tokens" in result.stderr and "Traceback" not in result.stderr
    assert fake_server.stats["requests"] <= 12  # no retries of a cut answer: it would be cut again


def test_thinking_blocks_become_reasoning_content(fake_server, tmp_path, monkeypatch):
    fake_server.models_status = 404  # no model list: the served model is asked with a one-token request
    respondent = {"model": MODEL, "params": {"thinking": {"type": "enabled", "budget_tokens": 1024}}}
    result = generate(fake_server, tmp_path, monkeypatch, "-n", "3", generation={"max_turns": 1}, respondent=respondent)
    assert result.exit_code == 0, result.stderr
    for row in read_rows(tmp_path / "out.jsonl"):
        assert row["conversations"][1]["reasoning_content"] == "Thinking about 1 messages before answering."
        assert row["metadata"]["models"]["served"]["respondent"] == "claude-test"  # the probe's answer


def test_structured_output_with_thinking_offers_the_tool_without_forcing_it(fake_server, tmp_path, monkeypatch):
    # The API refuses a forced tool choice with thinking on (the fake too, with a 400).
    respondent = {"model": MODEL, "params": {"thinking": {"type": "enabled", "budget_tokens": 1024}}}
    gen = {"kind": "structured", "output_schema": SCHEMA, "concurrency": 2}
    result = generate(fake_server, tmp_path, monkeypatch, "-n", "3", generation=gen, respondent=respondent)
    assert result.exit_code == 0, result.stderr
    assert fake_server.stats["bad_request"] == 0
    assert all(r["conversations"][1]["reasoning_content"] for r in read_rows(tmp_path / "out.jsonl"))


def test_prompt_cache_tokens_are_priced_at_their_own_rates(fake_server, tmp_path, monkeypatch):
    respondent = {"model": PRICED, "params": {"cache_control": {"type": "ephemeral"}}}
    gen = {"min_turns": 3, "max_turns": 3, "concurrency": 2}
    result = generate(
        fake_server, tmp_path, monkeypatch, "-n", "4", model=PRICED, generation=gen, respondent=respondent
    )
    assert result.exit_code == 0, result.stderr
    stats, summary = fake_server.stats, summary_of(result)
    read, written = stats["cache_read_input_tokens"], stats["cache_creation_input_tokens"]
    assert read > 0 and written > 0  # each turn re-reads the dialog its previous turn wrote
    assert summary["prompt_tokens"] == stats["prompt_tokens"]  # cache tokens count as prompt tokens
    price = price_per_token(PRICED, PRICED.split("/")[1])
    assert price is not None and price.cache_read < price.input < price.cache_creation
    fresh = stats["prompt_tokens"] - read - written
    expected = fresh * price.input + read * price.cache_read + written * price.cache_creation
    expected += stats["completion_tokens"] * price.output
    assert summary["cost_usd"] == pytest.approx(expected, abs=2e-6)


def test_a_base_url_that_is_not_a_url_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "localhost:8080")
    result = invoke("validate", str(make_config(tmp_path, respondent={"model": MODEL})))
    assert result.exit_code == 2
    assert "ANTHROPIC_BASE_URL must be an http:// or https:// URL" in result.stderr
