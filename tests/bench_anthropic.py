"""Bench: `anthropic/…` models through the direct Anthropic Messages transport and through litellm, against the
fake server's Anthropic routes, at concurrency 64 and 500 ms latency: calls/s and the client's CPU per call.
The issue's target: the direct transport costs at least 5× less CPU per call than litellm.

Run it alone with `python -m tests.bench_anthropic [--quick]`; `make bench` includes it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.bench import FakeServer, Run, measure, note, table

MODEL = "anthropic/claude-bench"
CONCURRENCY, LATENCY = 64, 0.5
# (the bench's name for the run, the model block's provider)
TRANSPORTS = (("anthropic", "anthropic"), ("litellm-anthropic", "litellm"))
CPU_RATIO_TARGET = 5.0


def anthropic_runs(server_url: str, workdir: Path, server_pid: int | None, quick: bool = False) -> list[Run]:
    """One run per transport of single-turn conversations; the config's api_base is the fake server's root,
    as ANTHROPIC_BASE_URL would be."""
    seconds = 3.0 if quick else 10.0
    n = int(max(CONCURRENCY / LATENCY * seconds, 12 * CONCURRENCY))
    runs = []
    for name, provider in TRANSPORTS:
        note(f"{name}: concurrency {CONCURRENCY}, latency {LATENCY * 1000:.0f} ms, n={n} …")
        respondent = {"model": MODEL, "provider": provider, "api_base": server_url}
        run = measure(server_url, name, CONCURRENCY, LATENCY, n, workdir, server_pid=server_pid, respondent=respondent)
        note(f"  {run.calls_per_s:,.0f} calls/s, {run.cpu_ms_per_call:.2f} CPU ms/call")
        runs.append(run)
    return runs


def cpu_target(runs: list[Run]) -> list[tuple[str, str, bool]]:
    """(target, measured, passed): litellm's CPU per call over the direct transport's, for anthropic/…."""
    cpu = {r.transport: r.cpu_ms_per_call for r in runs}
    direct, through_litellm = cpu.get("anthropic"), cpu.get("litellm-anthropic")
    if not direct or not through_litellm:
        return []
    ratio = through_litellm / direct
    label = f"anthropic/… direct: CPU per call ≥ {CPU_RATIO_TARGET:g}× lower than litellm"
    return [(label, f"{ratio:.1f}× ({direct:.2f} vs {through_litellm:.2f} ms)", ratio >= CPU_RATIO_TARGET)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="afterimage-bench-") as tmp, FakeServer() as server:
        runs = anthropic_runs(server.url, Path(tmp), server.proc.pid, args.quick)
    head = ["transport", "concurrency", "latency ms", "ideal calls/s", "n", "calls/s", "efficiency", "CPU ms/call"]
    body = [
        [r.transport, str(r.concurrency), f"{r.latency * 1000:.0f}", f"{r.ideal:,.0f}", f"{r.n:,}"]
        + [f"{r.calls_per_s:,.1f}", f"{r.efficiency:.2f}", f"{r.cpu_ms_per_call:.2f}"]
        for r in runs
    ]
    print(table([head, *body]))
    for target, measured, passed in cpu_target(runs):
        print(f"\n{target}: {measured} — {'PASS' if passed else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
