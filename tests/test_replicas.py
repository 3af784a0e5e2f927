"""ReplicaSet routing and health on a simulated clock: fewest in flight (ties round robin), failover to an
endpoint the call has not tried, out after a burst of failures, probes on a doubling schedule, back in at the
first answer, 429s preferring the others, per-endpoint limits; and the config that lists several endpoints."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from afterimage_cli.config import Config, ModelConfig
from afterimage_cli.engine.fingerprint import run_fingerprint
from afterimage_cli.errors import ConfigError, ProviderError
from afterimage_cli.providers.base import BaseProvider, LLMResponse, Messages
from afterimage_cli.providers.factory import LLMFactory, endpoint_configs, resolve_route
from afterimage_cli.providers.ratelimit import RateLimiter
from afterimage_cli.providers.replicas import FAILURES_TO_OUT, PROBE_MAX, Replica, ReplicaSet

ASK: Messages = [{"role": "user", "content": "hi"}]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Endpoint(BaseProvider):
    """A transport whose next answers a test decides: 'ok', or a ProviderError kind to fail with."""

    def __init__(self, name: str) -> None:
        self.model_name = name
        self.failing: str | None = None
        self.retry_after: float | None = None
        self.calls = 0
        self.hold: asyncio.Event | None = None  # when set, calls wait for it (to keep them in flight)
        self.headers: dict[str, str] | None = None

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        self.calls += 1
        if self.hold is not None:
            await self.hold.wait()
        if self.failing is not None:
            status = {"rate_limit": 429, "server": 503, "auth": 401}.get(self.failing)
            raise ProviderError(
                f"{self.model_name}: {self.failing}",
                retryable=self.failing != "auth",
                status_code=status,
                retry_after=self.retry_after,
                kind=self.failing,
            )
        return LLMResponse(text=f"from {self.model_name}", model_name=self.model_name, headers=self.headers)


def replica_set(*names: str, clock: Clock | None = None, **limits: Any) -> tuple[ReplicaSet, list[Endpoint]]:
    clock = clock or Clock()
    endpoints = [Endpoint(name) for name in names]
    replicas = [Replica(e.model_name, e, RateLimiter(adaptive=False, clock=clock, **limits)) for e in endpoints]
    return ReplicaSet("openai/m", replicas, clock=clock, probe_first=0.5), endpoints


async def ask(replicas: ReplicaSet) -> str:
    return (await replicas.acomplete(ASK)).text


def test_calls_spread_round_robin_when_none_is_busier() -> None:
    replicas, _ = replica_set("a", "b", "c")

    async def run() -> list[str]:
        return [await ask(replicas) for _ in range(6)]

    assert asyncio.run(run()) == ["from a", "from b", "from c"] * 2


def test_a_call_goes_to_the_endpoint_with_the_fewest_in_flight() -> None:
    replicas, (a, b) = replica_set("a", "b")

    async def run() -> list[str]:
        a.hold = asyncio.Event()
        held = [asyncio.create_task(ask(replicas)) for _ in range(1)]  # one call stays in flight on a
        await asyncio.sleep(0)
        answers = [await ask(replicas) for _ in range(3)]  # b has none in flight each time
        a.hold.set()
        return answers + [await held[0]]

    assert asyncio.run(run()) == ["from b", "from b", "from b", "from a"]


def test_per_endpoint_max_concurrency_holds_calls_until_a_slot_frees() -> None:
    replicas, (a, b) = replica_set("a", "b", max_concurrency=2)

    async def run() -> tuple[int, int, int]:
        a.hold, b.hold = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(ask(replicas)) for _ in range(6)]
        await asyncio.sleep(0.01)
        in_flight = (replicas.replicas[0].in_flight, replicas.replicas[1].in_flight, a.calls + b.calls)
        a.hold.set()
        b.hold.set()
        await asyncio.gather(*tasks)
        return in_flight

    assert asyncio.run(run()) == (2, 2, 4)  # the other two wait for a slot


def test_a_failed_call_is_sent_at_once_to_another_endpoint_and_a_burst_takes_one_out() -> None:
    replicas, (a, b) = replica_set("a", "b")
    failovers: list[str] = []
    replicas.on_failover = failovers.append
    a.failing = "connection"

    async def run() -> list[str]:
        return [await ask(replicas) for _ in range(6)]

    assert asyncio.run(run()) == ["from b"] * 6
    assert a.calls == FAILURES_TO_OUT  # then it is out: no more calls until its probe time
    assert replicas.replicas[0].state == "out" and failovers == ["connection"] * FAILURES_TO_OUT
    assert replicas.summary()[0]["errors"] == FAILURES_TO_OUT and replicas.summary()[1]["calls"] == 6


def test_an_out_endpoint_is_probed_on_a_doubling_schedule_and_back_at_its_first_answer() -> None:
    clock = Clock()
    replicas, (a, b) = replica_set("a", "b", clock=clock)
    a.failing = "connection"

    async def run() -> list[float]:
        for _ in range(FAILURES_TO_OUT):
            await ask(replicas)
        probe_times = []
        while len(probe_times) < 6:
            before = a.calls
            await ask(replicas)
            if a.calls > before:
                probe_times.append(clock.now)
            clock.now += 0.25
        return probe_times

    out_at = clock.now
    times = asyncio.run(run())
    gaps = [round(t - s, 2) for s, t in zip([out_at, *times], times, strict=False)]
    assert gaps == [0.5, 1.0, 2.0, 4.0, PROBE_MAX, PROBE_MAX]

    a.failing = None
    clock.now += PROBE_MAX

    async def back() -> list[str]:
        return [await ask(replicas) for _ in range(4)]

    assert asyncio.run(back())[0] == "from a"  # the probe answered: a is back in the rotation
    assert replicas.replicas[0].state == "up" and a.calls == FAILURES_TO_OUT + 6 + 2


def test_every_endpoint_out_fails_the_call_naming_each() -> None:
    replicas, (a, b) = replica_set("http://a/v1", "http://b/v1")
    a.failing = b.failing = "connection"

    async def run() -> ProviderError:
        for _ in range(FAILURES_TO_OUT + 2):
            try:
                await ask(replicas)
            except ProviderError as error:
                last = error
        return last

    error = asyncio.run(run())
    assert error.kind == "connection" and error.retryable
    assert "http://a/v1" in str(error) and "http://b/v1" in str(error)
    # Out, both of them, yet each call still tries them: the outage rules above decide when to stop.
    assert {r.state for r in replicas.replicas} == {"out"} and a.calls == b.calls == FAILURES_TO_OUT + 2


def test_a_429_makes_an_endpoint_the_last_choice_until_its_retry_after() -> None:
    clock = Clock()
    replicas, (a, b) = replica_set("a", "b", clock=clock)
    a.failing, a.retry_after = "rate_limit", 10.0

    async def run() -> list[str]:
        first = await ask(replicas)  # a refuses, b answers
        a.failing = None
        while_cooling = [await ask(replicas) for _ in range(3)]
        clock.now += 10.0
        return [first, *while_cooling, *[await ask(replicas) for _ in range(2)]]

    assert asyncio.run(run()) == ["from b", "from b", "from b", "from b", "from a", "from b"]


def test_a_used_up_limit_pauses_its_endpoint_only() -> None:
    clock = Clock()
    replicas, (a, b) = replica_set("a", "b", clock=clock)
    a.headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "30s"}

    async def run() -> list[LLMResponse]:
        return [await replicas.acomplete(ASK) for _ in range(4)]

    answers = asyncio.run(run())
    assert [r.text for r in answers] == ["from a", "from b", "from b", "from b"]  # a waits for its reset
    assert all(r.headers is None for r in answers)  # so the whole model's limiter above does not pause
    assert replicas.replicas[0].limiter.paused_until == clock.now + 30


def test_a_deployment_whose_key_is_refused_is_no_longer_used() -> None:
    replicas, (a, b) = replica_set("a", "b")
    a.failing = "auth"

    async def run() -> list[str]:
        return [await ask(replicas) for _ in range(4)]

    assert asyncio.run(run()) == ["from b"] * 4
    assert a.calls == 1 and replicas.replicas[0].state == "disabled"


def test_each_deployment_keeps_its_own_rpm() -> None:
    clock = Clock()
    slow, fast = Endpoint("slow"), Endpoint("fast")
    replicas = ReplicaSet(
        "openai/m",
        [
            Replica("slow", slow, RateLimiter(rpm=60, adaptive=False, clock=clock)),  # one a second
            Replica("fast", fast, RateLimiter(rpm=600, adaptive=False, clock=clock)),  # ten a second
        ],
        clock=clock,
    )

    async def run() -> None:
        for _ in range(30):  # 30 calls over 3 simulated seconds
            await ask(replicas)
            clock.now += 0.1

    asyncio.run(run())
    assert slow.calls <= 4 and fast.calls >= 26  # 1 + 3 s at 1/s; the rest within the other's 10/s


# --- the config -----------------------------------------------------------------------------------------


def test_api_base_takes_a_list_of_urls_or_url_and_max_concurrency() -> None:
    cfg = ModelConfig(
        model="llama",
        api_base=["http://127.0.0.1:8001/v1", {"url": "http://127.0.0.1:8002/v1", "max_concurrency": 4}],
    )
    endpoints = endpoint_configs(cfg)
    assert [(e.name, e.max_concurrency) for e in endpoints] == [
        ("http://127.0.0.1:8001/v1", None),
        ("http://127.0.0.1:8002/v1", 4),
    ]
    provider = LLMFactory.from_config(cfg)
    assert isinstance(provider, ReplicaSet) and provider.model_name == "openai/llama"
    assert "http://127.0.0.1:8002/v1" in resolve_route(cfg).describe()


@pytest.mark.parametrize(
    ("api_base", "deployments", "message"),
    [
        ([], None, "api_base is an empty list"),
        (["http://a/v1", "http://a/v1"], None, "lists http://a/v1 twice"),
        (["ftp://a"], None, "must be an http:// or https:// URL"),
        (["http://a/v1"], [{"rpm": 5}], "use one of them"),
        (None, [], "deployments is an empty list"),
    ],
)
def test_a_wrong_endpoint_list_is_refused(api_base: Any, deployments: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModelConfig(model="m", api_base=api_base, deployments=deployments)


def test_deployments_inherit_the_block_and_are_named_by_region_and_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_A", "a")
    monkeypatch.setenv("KEY_B", "b")
    cfg = ModelConfig(
        model="openai/gpt-4o-mini",
        temperature=0.3,
        deployments=[
            {"api_key_env": "KEY_A", "rpm": 500},
            {"api_key_env": "KEY_B", "rpm": 100},
            {
                "model": "azure/mini-eu",
                "api_base": "https://x.openai.azure.com",
                "api_key_env": "KEY_A",
                "region": "eu",
            },
        ],
    )
    endpoints = endpoint_configs(cfg)
    assert [e.name for e in endpoints] == [
        "https://api.openai.com/v1 (KEY_A)",
        "https://api.openai.com/v1 (KEY_B)",
        "eu (azure/mini-eu)",
    ]
    assert [e.rpm for e in endpoints] == [500, 100, None]
    assert all(e.config.temperature == 0.3 and e.config.rpm is None for e in endpoints)
    provider = LLMFactory.from_config(cfg)
    assert isinstance(provider, ReplicaSet) and provider.model_name == "openai/gpt-4o-mini"
    assert provider.replicas[0].limiter.requests is not None  # its own rpm bucket


def test_a_deployment_without_a_url_is_refused_naming_it() -> None:
    cfg = ModelConfig(model="openai/m", deployments=[{}, {"model": "azure/m"}])
    with pytest.raises(ConfigError, match=r"deployments\[1\]: azure/m has no URL"):
        endpoint_configs(cfg)


def test_the_fingerprint_ignores_which_and_how_many_endpoints_serve_the_model() -> None:
    base = {"respondent": {"model": "llama"}, "instructions": {"generator": "simple"}}
    one = Config.model_validate({**base, "respondent": {"model": "llama", "api_base": "http://a/v1"}})
    two = Config.model_validate(
        {**base, "respondent": {"model": "llama", "api_base": ["http://a/v1", {"url": "http://b/v1"}]}}
    )
    hosted = Config.model_validate(
        {**base, "respondent": {"model": "llama", "deployments": [{"api_base": "http://c/v1", "rpm": 3}]}}
    )
    served = {"respondent": "llama#1234"}
    assert (
        run_fingerprint(one, served=served)
        == run_fingerprint(two, served=served)
        == run_fingerprint(hosted, served=served)
    )


def test_ray_workers_endpoint_reports_merge_into_one_summary() -> None:
    from afterimage_cli.monitor import GenerationMonitor
    from afterimage_cli.providers.replicas import merge_summaries

    def entry(endpoint: str, state: str, calls: int, p50: float | None, p95: float | None, **errors: int) -> dict:
        return {
            "endpoint": endpoint,
            "state": state,
            "calls": calls,
            "errors": sum(errors.values()),
            "errors_by_kind": errors,
            "p50_ms": p50,
            "p95_ms": p95,
            "times_out": 1 if state == "out" else 0,
        }

    one = {"m": [entry("http://a", "up", 30, 10.0, 20.0), entry("http://b", "out", 0, None, None, connection=3)]}
    two = {"m": [entry("http://a", "up", 10, 30.0, 50.0, server=1), entry("http://b", "up", 20, 5.0, 9.0)]}
    merged = merge_summaries([one, two])
    a, b = merged["m"]
    assert (a["calls"], a["errors"], a["errors_by_kind"], a["p50_ms"], a["p95_ms"]) == (
        40,
        1,
        {"server": 1},
        15.0,
        50.0,
    )
    assert (b["state"], b["calls"], b["errors_by_kind"], b["times_out"]) == ("up", 20, {"connection": 3}, 1)

    monitor = GenerationMonitor(1)
    monitor.worker_endpoints = {"w1": one}  # the driver shows what the workers saw, not its own unused set
    assert monitor.endpoints_summary() == merge_summaries([one])
    assert "1/2 up" in monitor._endpoints_text()
    assert any("http://a: 30 calls" in line for line in monitor.endpoint_lines())
