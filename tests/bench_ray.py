"""`make bench-ray`: calls/s of `afterimage generate --executor ray` against K workers (1, 2, 4) on the fake
server, through the direct transport and through litellm, next to the same run in one process
(`--executor local`); and what the global rate limits cost per call (the coordinator's round trip).

Run it with `python -m tests.bench_ray [--quick] [--seconds S]`. Throughput is the steady-state slope of the
server's answered count between 10 % and 90 % of the run's calls (tests/bench.py's method), so Ray's start-up
is left out of calls/s and reported on its own (seconds from launch to the first answered call). The Markdown
tables go to stdout, progress notes to stderr. Every worker and the driver share this machine's cores, so
the curve shows where one machine stops, not a cluster's slope.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from tests.bench import INSTRUCTIONS, FakeServer, child_env, fmt, generate, http, loadavg, note, table

WORKERS = (1, 2, 4)
CONCURRENCY = 256
LATENCY = 0.05
RATE_GUESS = {"openai_compat": 900.0, "litellm": 200.0, "offline": 1500.0}  # calls/s, to size runs to ~`seconds`


def write_config(path: Path, server_url: str, transport: str, executor: str, workers: int) -> None:
    """Single-turn conversations (one call each) with verbatim openings, as tests/bench.py's runs."""
    respondent = {"model": "openai/fake-model", "provider": transport, "api_base": server_url + "/v1"}
    cfg = {
        # offline: no server, no limiter; rows as fast as the engine makes them (the single writer's ceiling)
        "respondent": {"model": "offline"} if transport == "offline" else respondent,
        "generation": {"num_conversations": 1, "min_turns": 1, "max_turns": 1, "concurrency": CONCURRENCY},
        "instructions": {"generator": "simple", "options": {"instructions": INSTRUCTIONS}},
        "cache": {"enabled": False},
        "storage": {"type": "jsonl", "path": str(path.with_suffix(".jsonl"))},
        "execution": {"executor": executor, "workers": workers},
    }
    path.write_text(yaml.safe_dump(cfg))


def measure(
    server_url: str, transport: str, executor: str, workers: int, seconds: float, workdir: Path
) -> dict[str, Any]:
    """One run; its steady calls/s, seconds to the first answer, and the run's own summary figures."""
    http(server_url + "/_knobs", {"latency": LATENCY})
    base = http(server_url + "/_stats")["ok"]
    if transport == "offline":
        return _offline(server_url, executor, workers, seconds, workdir)
    n = int(RATE_GUESS[transport] * max(1, workers if executor == "ray" else 1) * seconds)
    config = workdir / f"{transport}-{executor}-{workers}.yaml"
    write_config(config, server_url, transport, executor, workers)
    samples: list[tuple[float, int]] = []
    launched = time.monotonic()

    def sample(pid: int) -> None:
        samples.append((time.monotonic(), http(server_url + "/_stats")["ok"] - base))

    summary, _ = generate(config, n, CONCURRENCY, workdir, sample, 0.1)
    return {"calls": summary["calls"], **_steady(samples, summary["calls"], launched)}


def _offline(server_url: str, executor: str, workers: int, seconds: float, workdir: Path) -> dict[str, Any]:
    """Rows/s with the offline model (no server, no limiter): the engine's and the single writer's ceiling,
    the steady slope of the output's line count."""
    n = int(RATE_GUESS["offline"] * seconds)
    config = workdir / f"offline-{executor}-{workers}.yaml"
    write_config(config, server_url, "offline", executor, workers)
    out = config.with_suffix(".jsonl")
    samples: list[tuple[float, int]] = []
    launched = time.monotonic()

    def sample(pid: int) -> None:
        rows = out.read_bytes().count(b"\n") if out.exists() else 0
        samples.append((time.monotonic(), rows))

    summary, _ = generate(config, n, CONCURRENCY, workdir, sample, 0.1)
    return {"calls": summary["rows_written"], **_steady(samples, summary["rows_written"], launched)}


def _steady(samples: list[tuple[float, int]], total: int, launched: float) -> dict[str, Any]:
    """The slope between 10 % and 90 % of `total`, and seconds from launch to the first count."""
    first = next((t for t, done in samples if done > 0), launched)
    start = next((s for s in samples if s[1] >= 0.1 * total), None)
    end = next((s for s in samples if s[1] >= 0.9 * total), None)
    steady = (end[1] - start[1]) / (end[0] - start[0]) if start and end and end[0] > start[0] else None
    return {"calls_per_s": steady, "first_call_s": first - launched}


async def _limiter_round_trips(calls: int, parallel: int) -> tuple[float, float]:
    """(µs per call, calls per grant) of SharedLimiter acquire + release against a coordinator actor, with
    `parallel` calls waiting at once (1: no batching possible)."""
    import ray

    from afterimage_cli.engine.ray_limits import LimitsCoordinator, SharedLimiter

    coordinator = ray.remote(num_cpus=0)(LimitsCoordinator).remote({"m": {"max_concurrency": None}})
    limiter = SharedLimiter(coordinator, "m", "bench")
    await limiter.acquire(0)  # the actor is up
    limiter.release(ok=True)

    async def one() -> None:
        for _ in range(calls // parallel):
            started = await limiter.acquire(0)
            await asyncio.sleep(0)
            limiter.release(ok=True, started=started)

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(parallel)))
    took = time.perf_counter() - began
    grants = (await coordinator.status.remote())["_grants"]
    ray.kill(coordinator)
    return 1e6 * took / calls, grants["granted"] / max(1, grants["grants"])


def limiter_overhead() -> list[list[str]]:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        rows = [["calls waiting at once", "µs per call (acquire + release)", "calls per grant"]]
        for parallel in (1, 16, 256):
            us, per_grant = asyncio.run(_limiter_round_trips(2048, parallel))
            rows.append([str(parallel), fmt(us, 0), fmt(per_grant, 1)])
        return rows
    finally:
        ray.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="workers 1 and 2, direct transport only")
    parser.add_argument("--seconds", type=float, default=10.0, help="about how long each run's calls take")
    args = parser.parse_args()
    transports = ("openai_compat",) if args.quick else ("openai_compat", "litellm", "offline")
    workers = WORKERS[:2] if args.quick else WORKERS
    rows = [["transport", "executor", "workers", "calls", "calls/s (steady)", "s to first call"]]
    with tempfile.TemporaryDirectory() as tmp, FakeServer() as server:
        workdir = Path(tmp)
        os.environ.update(child_env(workdir))
        for transport in transports:
            plan = [("local", 1)] + [("ray", k) for k in workers]
            for executor, k in plan:
                note(f"{transport}: {executor} × {k} …")
                r = measure(server.url, transport, executor, k, args.seconds, workdir)
                note(f"  {fmt(r['calls_per_s'], 0)} calls/s, first call after {fmt(r['first_call_s'])} s")
                rows.append(
                    [transport, executor, str(k), str(r["calls"]), fmt(r["calls_per_s"], 0), fmt(r["first_call_s"])]
                )
    print(f"## Ray executor: calls/s against workers (c={CONCURRENCY}, {LATENCY * 1000:.0f} ms latency)\n")
    print(table(rows), flush=True)
    note("the coordinator's round trip …")
    overhead = limiter_overhead()
    print("\n## Global rate limits: cost of the coordinator per call\n")
    print(table(overhead))
    print(f"\nload average at the end: {loadavg()} ({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
