"""Bench of several replicas for one model: calls/s of `afterimage generate` (direct transport) against one
fake replica and against two, each a server with a fixed number of slots and a fixed latency (a GPU
server's shape: `slots` requests worked on at once, the rest queued), so one replica tops out at
slots / latency calls/s and two should double it. Also the client CPU per call, which the routing adds to.

Run it alone with `python -m tests.bench_replicas [--quick]` (it starts its own fake servers); `make bench`
calls `run_replicas`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.bench import (
    BenchError,
    FakeServer,
    cpu_seconds,
    generate,
    http,
    note,
    table,
    write_config,
)

LATENCY = 0.05
# (slots per replica, the run's concurrency): small servers, where a second one doubles the rate; and servers
# without a slot limit, where one process's CPU is the ceiling and the figure is what routing costs per call.
SHAPES: tuple[tuple[int | None, int], ...] = ((8, 64), (None, 256))
QUICK_SHAPES: tuple[tuple[int | None, int], ...] = ((8, 64),)


def replicas_run(
    urls: list[str], workdir: Path, n: int, poll: float = 0.05, slots: int | None = 8, concurrency: int = 64
) -> dict[str, float]:
    """n single-turn conversations over the replicas at `urls`: steady-state calls/s (the slope between
    10 % and 90 % of the calls, summed over the servers' own counters) and client CPU ms per call."""
    for url in urls:
        http(url + "/_knobs", {"latency": LATENCY, "slots": slots})
    bases = [http(url + "/_stats")["ok"] for url in urls]
    config = workdir / f"replicas-{len(urls)}.yaml"
    api_base: Any = [url + "/v1" for url in urls] if len(urls) > 1 else urls[0] + "/v1"
    write_config(config, {"model": "openai/fake-model", "provider": "openai_compat", "api_base": api_base}, concurrency)
    samples: list[tuple[float, int, float]] = []

    def sample(pid: int) -> None:
        done = sum(http(url + "/_stats")["ok"] for url in urls) - sum(bases)
        samples.append((time.monotonic(), done, cpu_seconds(pid)))

    try:
        summary, usage = generate(config, n, concurrency, workdir, sample, poll)
    finally:
        for url in urls:  # the servers go back to how the other scenarios found them
            http(url + "/_knobs", {"slots": None})
    calls = summary["calls"]
    start = next((s for s in samples if s[1] >= 0.1 * calls), None)
    end = next((s for s in samples if s[1] >= 0.9 * calls), None)
    if start and end and end[1] > start[1] and end[0] > start[0]:
        calls_per_s, cpu_ms = (
            (end[1] - start[1]) / (end[0] - start[0]),
            1000 * (end[2] - start[2]) / (end[1] - start[1]),
        )
    else:  # too short to sample: whole-run figures (start-up included)
        calls_per_s, cpu_ms = summary["calls_per_s"], 1000 * (usage.ru_utime + usage.ru_stime) / calls
    per_server = [http(url + "/_stats")["ok"] - base for url, base in zip(urls, bases, strict=True)]
    return {
        "calls_per_s": calls_per_s,
        "cpu_ms_per_call": cpu_ms,
        "summary_calls_per_s": summary["calls_per_s"],
        "share": min(per_server) / max(per_server),
    }


def run_replicas(urls: list[str], workdir: Path, quick: bool) -> list[str]:
    """The Markdown lines: for each shape, one replica, then two."""
    seconds = 2.0 if quick else 8.0
    header = ["slots × replicas", "concurrency", "calls/s", "ideal (slots / latency × replicas)", "client CPU ms/call"]
    rows = [[*header, "smaller/larger share"]]
    for slots, concurrency in QUICK_SHAPES if quick else SHAPES:
        ceiling = slots / LATENCY if slots else None
        shown = str(slots or "unlimited")
        for count in (1, 2):
            n = int(min(ceiling * count, 1500) * seconds) if ceiling else int(1000 * seconds)
            note(f"replicas: {count} × ({shown} slots, {LATENCY * 1000:.0f} ms), concurrency {concurrency}, n={n} …")
            run = replicas_run(urls[:count], workdir, n, slots=slots, concurrency=concurrency)
            note(f"  {run['calls_per_s']:,.0f} calls/s")
            rows.append(
                [
                    f"{shown} × {count}",
                    str(concurrency),
                    f"{run['calls_per_s']:,.0f}",
                    f"{ceiling * count:,.0f}" if ceiling else "(client CPU)",
                    f"{run['cpu_ms_per_call']:.2f}",
                    f"{run['share']:.2f}" if count > 1 else "-",
                ]
            )
    return [
        f"#### Replicas (direct transport, {LATENCY * 1000:.0f} ms per request, one afterimage process)",
        "",
        table(rows),
    ]


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small runs (smoke test)")
    args = parser.parse_args(argv)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="afterimage-bench-replicas-") as tmp,
            FakeServer() as a,
            FakeServer() as b,
        ):
            print("\n".join(run_replicas([a.url, b.url], Path(tmp), args.quick)))
    except BenchError as exc:
        note(f"bench failed: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
