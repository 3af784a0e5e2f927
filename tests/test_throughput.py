"""Rate limits, key pool, response cache and spending budgets."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest

from afterimage_cli.config import ErrorBudgetConfig, RetryConfig
from afterimage_cli.engine.attempts import rate_limit_delay
from afterimage_cli.engine.retry import ErrorBudget, RetryingProvider
from afterimage_cli.errors import MissingCredentialsError, ProviderError
from afterimage_cli.monitor import GenerationMonitor
from afterimage_cli.providers.base import BaseProvider, LLMResponse, Messages
from afterimage_cli.providers.keypool import ApiKey, SmartKeyPool
from afterimage_cli.providers.ratelimit import RateLimiter, parse_duration

from .helpers import invoke, make_config, read_rows

FAST_RETRY = {"max_attempts": 10, "base_delay": 0.01, "max_delay": 0.1}


def run(endpoint, cfg, *extra: str):
    return invoke("generate", str(cfg), *endpoint.args(), "-q", "--json", *extra)


def test_parse_duration() -> None:
    assert parse_duration("1s") == 1.0
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration("0.5") == 0.5
    assert parse_duration(None) is None and parse_duration("soon") is None


class FakeClock:
    """Time that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rpm_bucket_spaces_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=600, clock=clock)  # 10/s, burst 10
    for _ in range(20):
        while (delay := limiter.try_acquire()) > 0:
            clock.now += delay
        limiter.release(ok=True)
    assert clock.now == pytest.approx(1.0)  # ten at once, then one every 0.1 s


def test_refused_request_holds_its_slot_for_an_answers_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(max_concurrency=1, adaptive=False, clock=clock)
    assert limiter.try_acquire() == 0.0
    clock.now = 0.5
    limiter.release(ok=True, started=0.0)  # answers take half a second
    assert limiter.try_acquire() == 0.0
    clock.now = 0.51
    limiter.release(ok=False, rate_limited=True, started=0.5)  # refused at once
    assert limiter.try_acquire() == pytest.approx(0.49)  # the slot frees when an answer would have come
    clock.now = 1.0
    assert limiter.try_acquire() == 0.0
    limiter.release(ok=False, started=1.0)  # any other failure frees its slot at once
    assert limiter.try_acquire() == 0.0


def test_concurrency_limit_is_never_exceeded() -> None:
    async def main() -> int:
        limiter = RateLimiter(max_concurrency=8)
        peak = 0

        async def call() -> None:
            nonlocal peak
            await limiter.acquire()
            peak = max(peak, limiter.in_flight)
            await asyncio.sleep(0.002)
            limiter.release(ok=True)

        await asyncio.gather(*(call() for _ in range(80)))
        return peak

    assert asyncio.run(main()) == 8


def test_header_pause() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    assert limiter.try_acquire() == 0.0
    limiter.release(ok=True, headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "300ms"})
    assert limiter.try_acquire() == pytest.approx(0.3)
    clock.now = 0.3
    assert limiter.try_acquire() == 0.0


def test_key_pool_skips_cooling_key_and_disables_rejected(capsys) -> None:
    async def main() -> list[str]:
        pool = SmartKeyPool([ApiKey("KEY_A", "sk-aaa"), ApiKey("KEY_B", "sk-bbb")], cooldown=30)
        first = await pool.acquire()
        pool.report_error(first, 429)
        picked = [(await pool.acquire()).env_name for _ in range(3)]
        other = next(k for k in pool.keys if k is not first)
        pool.report_error(other, 401)
        first.cooling_until = 0
        picked += [(await pool.acquire()).env_name for _ in range(2)]
        return [first.env_name, *picked]

    first, *picked = asyncio.run(main())
    other = "KEY_B" if first == "KEY_A" else "KEY_A"
    assert picked[:3] == [other] * 3
    assert picked[3:] == [first] * 2
    err = capsys.readouterr().err
    assert f"{other} was rejected" in err and "sk-" not in err


def test_key_pool_waits_while_every_key_cools() -> None:
    clock = FakeClock()
    pool = SmartKeyPool([ApiKey("A", "1"), ApiKey("B", "2")], clock=clock)
    pool.report_error(pool.keys[0], 429, retry_after=0.2)
    clock.now = 0.1
    pool.report_error(pool.keys[1], 429, retry_after=0.2)
    assert pool.try_acquire() == pytest.approx(0.1)  # until A cools down
    clock.now = 0.2
    assert pool.try_acquire() is pool.keys[0]


def test_key_pool_all_rejected_fails_with_names() -> None:
    async def main() -> None:
        pool = SmartKeyPool([ApiKey("A", "1")])
        pool.report_error(pool.keys[0], 401)
        await pool.acquire()

    with pytest.raises(MissingCredentialsError, match="every API key was rejected"):
        asyncio.run(main())


def test_requests_spread_over_keys_and_rejected_key_is_dropped(endpoint, tmp_path, monkeypatch) -> None:
    from afterimage_cli.providers import logging as provider_logging

    monkeypatch.setattr(provider_logging, "_seen", set())  # each warning is said once per process: say it here
    monkeypatch.setenv("KEY_ONE", "sk-one")
    monkeypatch.setenv("KEY_TWO", "sk-two")
    endpoint.server.reject_keys = {"sk-two"}
    cfg = make_config(tmp_path, retry=FAST_RETRY, respondent={"model": "x", "api_key_env": ["KEY_ONE", "KEY_TWO"]})
    result = run(endpoint, cfg, "-n", "10")
    assert result.exit_code == 0, result.stderr
    assert "KEY_TWO was rejected" in result.stderr and "sk-two" not in result.stderr
    by_key = endpoint.server.stats["by_key"]
    assert by_key["sk-two"] <= 4 and by_key["sk-one"] > 20


def test_cached_rerun_makes_zero_calls(endpoint, tmp_path) -> None:
    cfg = make_config(tmp_path, retry=FAST_RETRY)
    assert run(endpoint, cfg, "-n", "8").exit_code == 0
    first = sorted(read_rows(tmp_path / "out.jsonl"), key=lambda r: r["id"])
    calls = endpoint.server.stats["requests"]
    result = run(endpoint, cfg, "-n", "8", "--overwrite")
    assert result.exit_code == 0
    summary = orjson.loads(result.stdout)
    assert endpoint.server.stats["requests"] == calls
    assert summary["calls"] == 0 and summary["cache_hits"] >= 8 and summary["rows_written"] == 8
    assert sorted(read_rows(tmp_path / "out.jsonl"), key=lambda r: r["id"]) == first
    result = run(endpoint, cfg, "-n", "8", "--overwrite", "--no-cache")
    assert endpoint.server.stats["requests"] == 2 * calls


def test_changed_prompt_recalls_only_what_changed(endpoint, tmp_path) -> None:
    cfg = make_config(tmp_path, retry=FAST_RETRY, generation={"min_turns": 1, "max_turns": 1})
    assert run(endpoint, cfg, "-n", "6").exit_code == 0
    calls = endpoint.server.stats["requests"]  # 6 instruction calls + 6 answers
    changed = make_config(
        tmp_path, retry=FAST_RETRY, generation={"min_turns": 1, "max_turns": 1, "system_prompt": "Be terse."}
    )
    assert run(endpoint, changed, "-n", "6", "--overwrite").exit_code == 0
    # The opening questions are unchanged (cached); only the six answers are asked again.
    assert endpoint.server.stats["requests"] - calls == 6


def test_max_cost_stops_cleanly_and_resumes(endpoint, tmp_path) -> None:
    priced = {"model": "x", "input_cost_per_million": 20.0, "output_cost_per_million": 20.0}
    cfg = make_config(tmp_path, retry=FAST_RETRY, respondent=priced, generation={"concurrency": 2})
    result = run(endpoint, cfg, "-n", "30", "--max-cost", "0.1")
    assert result.exit_code == 1
    assert "cost budget reached" in result.stderr and "re-run" in result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert 0 < len(rows) < 30
    spent = sum(r["metadata"]["usage"]["cost_usd"] for r in rows)
    assert spent < 0.1 + 0.05  # calls in flight when the budget was reached may finish
    result = run(endpoint, cfg, "-n", "30")
    assert result.exit_code == 0
    assert len(read_rows(tmp_path / "out.jsonl")) == 30


def test_max_total_tokens_budget(endpoint, tmp_path) -> None:
    cfg = make_config(tmp_path, retry=FAST_RETRY, generation={"concurrency": 1})
    result = run(endpoint, cfg, "-n", "50", "--max-total-tokens", "2000")
    assert result.exit_code == 1 and "token budget reached" in result.stderr
    assert "--max-total-tokens" in result.stderr  # the error names what to raise
    assert 0 < len(read_rows(tmp_path / "out.jsonl")) < 50


def test_config_token_budget_is_max_total_tokens(endpoint, tmp_path) -> None:
    cfg = make_config(tmp_path, retry=FAST_RETRY, generation={"concurrency": 1}, budget={"max_total_tokens": 2000})
    result = run(endpoint, cfg, "-n", "50")
    assert result.exit_code == 1 and "budget.max_total_tokens" in result.stderr
    assert 0 < len(read_rows(tmp_path / "out.jsonl")) < 50


def test_old_token_budget_names_are_refused_with_the_new_ones(tmp_path) -> None:
    """--max-tokens and budget.max_tokens read like the per-call limit: refused, naming what to use."""
    cfg = make_config(tmp_path)
    result = invoke("generate", str(cfg), "--max-tokens", "2000")
    assert result.exit_code == 2
    assert "--max-tokens was renamed --max-total-tokens" in result.stderr and "model block" in result.stderr
    old = make_config(tmp_path, budget={"max_tokens": 2000})
    result = invoke("generate", str(old), "-q")
    assert result.exit_code == 2
    assert "budget.max_tokens was renamed budget.max_total_tokens" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_adaptive_concurrency_cuts_under_an_admission_limit(endpoint, tmp_path) -> None:
    # The wiring: the retrying provider feeds every 429 to the limiter, which cuts. How well it then
    # settles is timing, tested on a simulated clock (test_adaptive_sim.py) and measured by `make bench`.
    endpoint.server.admit_rps = 50  # 64 workers start at once against a bucket of 50: refused whatever the machine
    endpoint.server.latency = 0.02
    endpoint.server.retry_after = None
    cfg = make_config(
        tmp_path,
        retry={"max_attempts": 20, "base_delay": 0.05, "max_delay": 0.5},
        generation={"min_turns": 1, "max_turns": 1, "concurrency": 64},
        instructions={"generator": "simple", "options": {"instructions": ["Hello?"]}},
    )
    result = run(endpoint, cfg, "-n", "200")
    assert result.exit_code == 0, result.stderr
    summary = orjson.loads(result.stdout)
    assert summary["concurrency_cuts"] >= 1 and endpoint.server.stats["429"] > 0
    assert summary["errors"]["rate_limit"] == endpoint.server.stats["429"]
    assert len(read_rows(tmp_path / "out.jsonl")) == 200


def test_rate_limit_delays_trust_retry_after_then_back_off() -> None:
    cfg, rng = RetryConfig(base_delay=0.5, max_delay=30), random.Random(0)
    assert all(0.1 <= rate_limit_delay(n, cfg, 0.1, rng) <= 0.11 for n in range(6))
    assert 0.25 <= rate_limit_delay(6, cfg, 0.1, rng) <= 0.5
    assert 2.0 <= rate_limit_delay(9, cfg, 0.1, rng) <= 4.0
    assert 0.25 <= rate_limit_delay(0, cfg, None, rng) <= 0.5  # no Retry-After: backoff from the start
    assert rate_limit_delay(20, cfg, 0.1, rng) <= 30


def test_429s_do_not_use_up_attempts(endpoint, tmp_path) -> None:
    endpoint.server.rate_429 = 0.6
    endpoint.server.retry_after = 0.01
    cfg = make_config(tmp_path, retry={"max_attempts": 1, "base_delay": 0.01, "max_delay": 0.02})
    result = run(endpoint, cfg, "-n", "10")
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout)["errors"]["rate_limit"] == endpoint.server.stats["429"] > 0


def test_rate_limit_patience_bounds_the_wait(endpoint, tmp_path) -> None:
    endpoint.server.rate_429 = 1.0
    endpoint.server.retry_after = 0.05
    cfg = make_config(tmp_path, retry={"rate_limit_patience": 0.3, "base_delay": 0.05, "max_delay": 0.1})
    result = run(endpoint, cfg, "-n", "3")
    assert result.exit_code == 1 and "rate limited (429)" in result.stderr


def test_a_call_waits_out_429s_for_its_patience_then_fails() -> None:
    class Throttled(BaseProvider):
        model_name = "m"
        calls = 0

        async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
            self.calls += 1
            raise ProviderError("m: rate limited (429)", retryable=True, retry_after=0.05, kind="rate_limit")

    inner = Throttled()
    retry = RetryConfig(rate_limit_patience=0.3, base_delay=0.05, max_delay=0.1)
    provider = RetryingProvider(inner, retry, ErrorBudget(ErrorBudgetConfig()), GenerationMonitor())
    with pytest.raises(ProviderError, match="rate limited"):
        asyncio.run(provider.acomplete([{"role": "user", "content": "hi"}]))
    # 0.3 s of patience is five waits of 0.05 s (+ up to 10 % jitter): the call gives up at its sixth 429.
    assert inner.calls == 6


def test_another_seed_is_not_answered_from_the_cache(endpoint, tmp_path) -> None:
    cfg = make_config(
        tmp_path,
        retry=FAST_RETRY,
        personas=[],
        modifiers=[],
        generation={"min_turns": 1, "max_turns": 1},
        instructions={"generator": "simple", "options": {"instructions": ["Same question?"]}},
    )
    assert run(endpoint, cfg, "-n", "4").exit_code == 0
    calls = endpoint.server.stats["requests"]
    assert run(endpoint, cfg, "-n", "4", "--seed", "9", "-o", str(tmp_path / "other.jsonl")).exit_code == 0
    assert endpoint.server.stats["requests"] == 2 * calls


def test_every_key_rejected_says_so(endpoint, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KEY_ONE", "sk-one")
    monkeypatch.setenv("KEY_TWO", "sk-two")
    endpoint.server.reject_keys = {"sk-one", "sk-two"}
    cfg = make_config(tmp_path, retry=FAST_RETRY, respondent={"model": "x", "api_key_env": ["KEY_ONE", "KEY_TWO"]})
    result = run(endpoint, cfg, "-n", "5")
    assert result.exit_code in (1, 2)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines and ("rejected" in lines[0]) and "internal error" not in result.stderr
    assert "sk-one" not in result.stderr and "sk-two" not in result.stderr


def test_summary_says_what_the_cache_answered(fake_server, tmp_path) -> None:
    cfg = make_config(tmp_path, retry=FAST_RETRY)
    base = ("generate", str(cfg), "--model", "m", "--api-base", fake_server.api_base, "-n", "3")
    assert invoke(*base).exit_code == 0
    result = invoke(*base, "--overwrite")
    assert result.exit_code == 0 and "answered from the cache" in result.stderr
