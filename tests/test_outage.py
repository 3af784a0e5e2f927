"""Outages: a server down for a few seconds is waited out (pause, probe, resume); one that stays down
stops the run after error_budget.max_outage_s. Timing logic on a simulated clock; behaviour through the CLI."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from afterimage_cli.config import ErrorBudgetConfig, RetryConfig
from afterimage_cli.engine.outage import PROBE_MAX_DELAY, OutageGate
from afterimage_cli.engine.retry import ErrorBudget, RetryingProvider
from afterimage_cli.errors import ProviderError, RunAborted
from afterimage_cli.monitor import GenerationMonitor
from afterimage_cli.providers.base import BaseProvider, LLMResponse, Messages
from afterimage_cli.types import ConversationRow

from .helpers import cli_subprocess, invoke, make_config, read_rows

DOWN = ProviderError("m: cannot reach the server", retryable=True, kind="connection")
UNAVAILABLE = ProviderError("m: server error (503)", retryable=True, status_code=503, kind="server")
THROTTLED = ProviderError("m: rate limited (429)", retryable=True, status_code=429, kind="rate_limit")
REFUSED = ProviderError("m: the request was refused (400)", retryable=False, status_code=400, kind="bad_request")


class SimulatedClock:
    """Time that passes only when someone sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


def budget_on(clock: SimulatedClock, **cfg: Any) -> ErrorBudget:
    return ErrorBudget(ErrorBudgetConfig(**cfg), clock=clock, sleep=clock.sleep)


def gate_on(clock: SimulatedClock, **cfg: Any) -> tuple[ErrorBudget, OutageGate]:
    budget = budget_on(clock, **cfg)
    return budget, budget.outage_gate("the server at http://gw/v1", base_delay=0.5)


# --- the gate on a simulated clock -------------------------------------------------------------


def test_consecutive_failures_declare_an_outage_once_the_server_has_answered() -> None:
    clock = SimulatedClock()
    budget, gate = gate_on(clock, max_consecutive_failures=3)
    gate.answered()
    for error in (DOWN, UNAVAILABLE, THROTTLED):  # a 429 is back-pressure: neither counts nor resets
        gate.attempt_failed(error)
    assert not gate.down and gate.consecutive == 2
    gate.attempt_failed(REFUSED)  # the server answered (about one request): the streak is over
    assert gate.consecutive == 0
    for _ in range(3):
        gate.attempt_failed(DOWN)
    assert gate.down and gate.holds(DOWN) and not gate.holds(REFUSED) and budget.reason is None


def test_a_server_that_never_answered_stops_the_run_at_once() -> None:
    clock = SimulatedClock()
    budget, gate = gate_on(clock, max_consecutive_failures=3)
    gate.attempt_failed(DOWN)
    gate.attempt_failed(DOWN)
    with pytest.raises(RunAborted, match="has not answered any of 3 attempts"):
        gate.attempt_failed(DOWN)
    with pytest.raises(RunAborted):
        budget.check()
    assert clock.sleeps == []


def test_calls_pause_one_probe_at_a_time_backs_off_and_all_resume_at_the_first_answer() -> None:
    clock = SimulatedClock()
    _, gate = gate_on(clock, max_consecutive_failures=2, max_outage_s=600)

    async def main() -> tuple[list[bool], list[float]]:
        gate.answered()
        gate.attempt_failed(DOWN)
        gate.attempt_failed(DOWN)
        assert gate.down
        calls = [asyncio.ensure_future(gate.admit()) for _ in range(5)]
        probe_delays: list[float] = []
        for failed_probes in range(8):
            await asyncio.sleep(0)
            while sum(c.done() for c in calls) == 0:
                await asyncio.sleep(0)
            probes = [c for c in calls if c.done()]
            assert len(probes) == 1 and probes[0].result() is True  # exactly one call goes out
            probe_delays.append(clock.sleeps[-1])
            calls.remove(probes[0])
            if failed_probes < 7:
                gate.attempt_failed(UNAVAILABLE)
                gate.probe_ended()
                calls.append(asyncio.ensure_future(gate.admit()))  # the failed probe waits again
        gate.answered()  # the last probe got an answer
        gate.probe_ended()
        return list(await asyncio.gather(*calls)), probe_delays

    resumed, delays = asyncio.run(main())
    assert resumed == [False] * 4  # every held call goes on, none as a probe
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0] and delays[4:] == [PROBE_MAX_DELAY] * 4
    assert not gate.down and gate.consecutive == 0 and gate.outages == 1


def test_a_server_that_stays_down_stops_the_run_within_max_outage_s() -> None:
    clock = SimulatedClock()
    budget, gate = gate_on(clock, max_consecutive_failures=2, max_outage_s=60)

    async def main() -> list[BaseException | bool]:
        gate.answered()
        started = clock.now
        gate.attempt_failed(DOWN)
        clock.now += 1
        gate.attempt_failed(DOWN)
        waiting = [asyncio.ensure_future(gate.admit()) for _ in range(3)]
        while True:
            await asyncio.sleep(0)
            probes = [c for c in waiting if c.done() and not c.exception() and c.result() is True]
            if all(c.done() for c in waiting) and not probes:
                break
            for probe in probes:  # each probe fails again; the caller comes back to the gate
                assert clock.now - started <= 60
                gate.attempt_failed(DOWN)
                gate.probe_ended()
                waiting[waiting.index(probe)] = asyncio.ensure_future(gate.admit())
        assert clock.now - started == pytest.approx(60)  # not a moment past the allowance
        return list(await asyncio.gather(*waiting, return_exceptions=True))

    outcomes = asyncio.run(main())
    assert all(isinstance(o, RunAborted) for o in outcomes)
    message = str(outcomes[0])
    assert "the server at http://gw/v1 has not answered for 60 s" in message and "cannot reach" in message
    with pytest.raises(RunAborted, match="has not answered for 60 s"):
        budget.check()


def test_the_status_line_says_while_a_server_is_waited_out() -> None:
    clock = SimulatedClock()
    _, gate = gate_on(clock, max_consecutive_failures=1)
    monitor = GenerationMonitor()
    monitor.outage_gates[gate.server] = gate
    gate.answered()
    assert "server down" not in monitor.status_line()
    gate.attempt_failed(DOWN)
    clock.now += 12
    assert monitor.status_line().endswith(" · server down 12s, probing")
    gate.answered()
    assert "server down" not in monitor.status_line() and monitor.summary()["outages"] == 1


class FlakyProvider(BaseProvider):
    """Fails with `errors` in turn, then answers."""

    model_name = "m"

    def __init__(self, errors: list[ProviderError]) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return LLMResponse(text="ok", prompt_token_count=3, completion_token_count=2, total_token_count=5)


def test_calls_failing_during_an_outage_wait_instead_of_using_up_attempts() -> None:
    clock = SimulatedClock()
    budget = budget_on(clock, max_consecutive_failures=2, max_outage_s=600)
    inner = FlakyProvider([DOWN] * 12)
    retry = RetryConfig(max_attempts=2, base_delay=0.0, max_delay=0.0)
    gate = budget.outage_gate("the server at http://gw/v1", base_delay=0.5)
    gate.answered()
    provider = RetryingProvider(inner, retry, budget, GenerationMonitor(), outage=gate)
    response = asyncio.run(provider.acomplete([{"role": "user", "content": "hi"}]))
    assert response.text == "ok" and inner.calls == 13  # 2 attempts would have failed the call at the 2nd
    assert gate.outages == 1 and not gate.down and sum(clock.sleeps) < 600


# --- through the CLI, against the fake server ----------------------------------------------------

FAST_RETRY = {"max_attempts": 6, "base_delay": 0.01, "max_delay": 0.05}
ONE_TURN = {"min_turns": 1, "max_turns": 1, "concurrency": 16}
VERBATIM = {"generator": "simple", "options": {"instructions": ["How do I sort a list?", "What is a cache?"]}}


def outage_config(tmp_path, transport: str | None, **sections: Any):
    sections.setdefault("respondent", {"model": "offline", "provider": transport, "timeout": 5})
    return make_config(
        tmp_path,
        retry=FAST_RETRY,
        generation=ONE_TURN,
        instructions=VERBATIM,
        **sections,
    )


@pytest.mark.parametrize(
    "transport,down_status",
    [("openai_compat", None), ("openai_compat", 503), ("litellm", None), ("openai_base_url", None)],
)
def test_a_short_outage_mid_run_is_waited_out(fake_server, tmp_path, transport, down_status, monkeypatch) -> None:
    fake_server.latency = 0.01
    fake_server.down_after, fake_server.down_for, fake_server.down_status = 40, 2.0, down_status
    if transport == "openai_base_url":  # the hosted openai/ model, its URL from OPENAI_BASE_URL
        monkeypatch.setenv("OPENAI_BASE_URL", fake_server.api_base)
        cfg = outage_config(tmp_path, None, respondent={"model": "openai/fake", "timeout": 5})
        target: tuple[str, ...] = ()
    else:
        cfg = outage_config(tmp_path, transport)
        target = ("--model", "fake", "--api-base", fake_server.api_base)
    result = invoke("generate", str(cfg), "-n", "120", *target, "-q", "--json")
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout)["outages"] >= 1
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 120 and len({r["id"] for r in rows}) == 120
    # More failed attempts than max_consecutive_failures (10) hit the outage: it used to end the run.
    assert fake_server.stats["down"] > 10


def test_a_server_that_stays_down_stops_after_max_outage_s_and_resumes(fake_server, tmp_path) -> None:
    fake_server.latency = 0.01
    fake_server.down_after, fake_server.down_for = 40, 3600.0
    cfg = outage_config(tmp_path, "openai_compat", error_budget={"max_outage_s": 2})
    args = ("generate", str(cfg), "-n", "120", "--model", "fake", "--api-base", fake_server.api_base, "-q")
    process = cli_subprocess(*args)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 1, stderr
    message = stderr.decode()
    assert f"the server at {fake_server.api_base} has not answered for 2 s" in message
    assert "rows written are kept" in message and "Traceback" not in message
    rows = read_rows(tmp_path / "out.jsonl")
    assert 0 < len(rows) < 120
    for row in rows:
        ConversationRow.model_validate(row)

    fake_server.down_after = None  # the server is back: the same command finishes the run
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    resumed = read_rows(tmp_path / "out.jsonl")
    assert len(resumed) == 120 and len({r["id"] for r in resumed}) == 120
