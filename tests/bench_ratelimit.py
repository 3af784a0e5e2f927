"""Bench scenarios for rate limits: does adaptive concurrency reach a provider's limit without tripping it?

Two servers a user meets: one that admits a fixed number of requests per second and answers the rest
429 (a real rate limit), and one that answers a share of requests 429 whatever the load (a flaky
gateway). The first must be used up to its limit with few refused requests — also when the run has to
share its core with a busy loop, as on a loaded CI machine; the second must not make us slow down. The controller's
logic is tested on a simulated clock (tests/test_adaptive_sim.py); these are the real-time figures.

Run them alone with `python -m tests.bench_ratelimit`; `make bench` includes them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.bench import FakeServer, generate, http, note, write_config


@dataclass(frozen=True)
class Scenario:
    name: str
    knobs: dict[str, Any]
    conversations: int
    latency: float = 0.05
    concurrency: int = 64
    busy_core: bool = False  # the run shares one core with a busy loop
    retry: dict[str, float] | None = None


ADMITS_200 = {"admit_rps": 200, "rate_429": 0.0, "retry_after": None}
# test_throughput's old admission test, which failed on a loaded 2-core machine: quick retries, 20 ms answers.
ADMITS_100 = {"admit_rps": 100, "rate_429": 0.0, "retry_after": None}
QUICK_RETRY = {"max_attempts": 20, "base_delay": 0.05, "max_delay": 0.5}
SCENARIOS = (
    Scenario("admits 200 req/s", ADMITS_200, 3_000),
    Scenario("admits 200 req/s, on a busy core", ADMITS_200, 3_000, busy_core=True),
    Scenario("admits 100 req/s, 20 ms, quick retries", ADMITS_100, 800, 0.02, retry=QUICK_RETRY),
    Scenario("admits 100 req/s, 20 ms, quick retries, on a busy core", ADMITS_100, 800, 0.02, 64, True, QUICK_RETRY),
    Scenario("20 % stray 429s", {"admit_rps": None, "rate_429": 0.2, "retry_after": 0.1}, 6_000),
)
BUSY_LOOP = [sys.executable, "-c", "while True: pass"]


@contextmanager
def busy_core(busy: bool) -> Iterator[None]:
    """Run what is started meanwhile on one core, shared with a busy loop: a loaded machine, reproducibly.
    (Children inherit this process's CPU affinity; the fake server, started earlier, keeps every core.)"""
    if not busy or not hasattr(os, "sched_setaffinity"):
        yield
        return
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    spinner = subprocess.Popen(BUSY_LOOP)
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()
        os.sched_setaffinity(0, cores)


def steady_rate(samples: list[tuple[float, int]], total: int) -> float | None:
    """Successes/s between 10 % and 90 % of them: neither start-up nor the draining tail counts."""
    start = next((s for s in samples if s[1] >= 0.1 * total), None)
    end = next((s for s in samples if s[1] >= 0.9 * total), None)
    if start is None or end is None or end[0] <= start[0]:
        return None
    return (end[1] - start[1]) / (end[0] - start[0])


def run_scenarios(server_url: str, workdir: Path) -> list[dict[str, object]]:
    """One row per scenario: successful calls/s in the steady state against what the server allows, and
    how many requests were refused over the whole run (its start included)."""
    try:
        return [run_scenario(server_url, sc, workdir / f"ratelimit-{i}.yaml") for i, sc in enumerate(SCENARIOS)]
    finally:
        http(f"{server_url}/_knobs", {"latency": 0.05, "admit_rps": None, "rate_429": 0.0, "retry_after": 0.05})


def run_scenario(server_url: str, sc: Scenario, config: Path) -> dict[str, object]:
    """One scenario's row."""
    note(f"rate limits: {sc.name}, concurrency {sc.concurrency}, n={sc.conversations} …")
    http(f"{server_url}/_knobs", {"latency": sc.latency, **sc.knobs})
    before = http(f"{server_url}/_stats")
    write_config(config, {"model": "openai/fake-model", "api_base": f"{server_url}/v1"}, sc.concurrency)
    if sc.retry:
        config.write_text(config.read_text() + yaml.safe_dump({"retry": sc.retry}))
    samples: list[tuple[float, int]] = []  # (time, successes so far)

    def sample(pid: int) -> None:
        samples.append((time.monotonic(), http(f"{server_url}/_stats")["ok"] - before["ok"]))

    with busy_core(sc.busy_core):
        summary, _ = generate(config, sc.conversations, sc.concurrency, config.parent, sample, allow_errors=True)
    after = http(f"{server_url}/_stats")
    ok, refused = after["ok"] - before["ok"], after["429"] - before["429"]
    allowed = sc.knobs["admit_rps"] or sc.concurrency / sc.latency * (1 - float(sc.knobs["rate_429"] or 0))
    return {
        "scenario": sc.name,
        "concurrency": sc.concurrency,
        "ok_per_s": steady_rate(samples, ok) or ok / float(summary["elapsed_s"]),
        "allowed_per_s": float(allowed),
        "refused_share": refused / max(ok + refused, 1),
        "refused_per_success": refused / max(ok, 1),
        "cuts": summary["concurrency_cuts"],
    }


def table_lines(rows: list[dict[str, object]]) -> list[str]:
    """The scenarios as a Markdown table."""
    lines = [
        "| server | concurrency | successful calls/s | the server allows | used | refused (429) share "
        "| refused per success | cuts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok, allowed = float(str(r["ok_per_s"])), float(str(r["allowed_per_s"]))
        lines.append(
            f"| {r['scenario']} | {r['concurrency']} | {ok:,.0f} | {allowed:,.0f} | {ok / allowed:.0%} "
            f"| {float(str(r['refused_share'])):.0%} | {float(str(r['refused_per_success'])):.2f} | {r['cuts']} |"
        )
    return lines


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="afterimage-bench-") as tmp, FakeServer() as server:
        print("\n".join(table_lines(run_scenarios(server.url, Path(tmp)))))
