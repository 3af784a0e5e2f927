"""Bench: the direct transports of providers' own protocols (`anthropic/…` over Anthropic Messages, `gemini/…`
over Gemini generateContent) and the same models through litellm, against the fake server's routes for each
protocol, at concurrency 64 and 500 ms latency: calls/s and the client's CPU per call. The issue's target: each
direct transport costs at least 5× less CPU per call than litellm.

Run it alone with `python -m tests.bench_native [--quick] [--only anthropic|gemini]`; `make bench` includes it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bench import FakeServer, Run, measure, note, table

CONCURRENCY, LATENCY = 64, 0.5
CPU_RATIO_TARGET = 5.0
# protocol → (model, its model block's api_base given the fake server's URL, for the direct transport and for
# litellm). litellm's gemini api_base names the API version; the direct transports take the host root, as
# ANTHROPIC_BASE_URL and GEMINI_API_BASE would be.
PROTOCOLS: dict[str, tuple[str, Callable[[str], str], Callable[[str], str]]] = {
    "anthropic": ("anthropic/claude-bench", lambda url: url, lambda url: url),
    "gemini": ("gemini/gemini-bench", lambda url: url, lambda url: url + "/v1beta"),
}
MODEL = PROTOCOLS["anthropic"][0]


def native_runs(
    server_url: str, workdir: Path, server_pid: int | None, quick: bool = False, only: str | None = None
) -> list[Run]:
    """One run per protocol and transport (the protocol's own, then `litellm-<protocol>`) of single-turn
    conversations."""
    seconds = 3.0 if quick else 10.0
    n = int(max(CONCURRENCY / LATENCY * seconds, 12 * CONCURRENCY))
    runs = []
    for protocol, (model, direct_base, litellm_base) in PROTOCOLS.items():
        if only and protocol != only:
            continue
        both = ((protocol, protocol, direct_base), (f"litellm-{protocol}", "litellm", litellm_base))
        for name, provider, base in both:
            note(f"{name}: concurrency {CONCURRENCY}, latency {LATENCY * 1000:.0f} ms, n={n} …")
            respondent: dict[str, Any] = {"model": model, "provider": provider, "api_base": base(server_url)}
            run = measure(
                server_url, name, CONCURRENCY, LATENCY, n, workdir, server_pid=server_pid, respondent=respondent
            )
            note(f"  {run.calls_per_s:,.0f} calls/s, {run.cpu_ms_per_call:.2f} CPU ms/call")
            runs.append(run)
    return runs


def cpu_target(runs: list[Run]) -> list[tuple[str, str, bool]]:
    """(target, measured, passed) per protocol measured both ways: litellm's CPU per call over the direct
    transport's."""
    cpu = {r.transport: r.cpu_ms_per_call for r in runs}
    out = []
    for protocol in PROTOCOLS:
        direct, through_litellm = cpu.get(protocol), cpu.get(f"litellm-{protocol}")
        if not direct or not through_litellm:
            continue
        ratio = through_litellm / direct
        label = f"{protocol}/… direct: CPU per call ≥ {CPU_RATIO_TARGET:g}× lower than litellm"
        out.append((label, f"{ratio:.1f}× ({direct:.2f} vs {through_litellm:.2f} ms)", ratio >= CPU_RATIO_TARGET))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--only", choices=tuple(PROTOCOLS), help="measure one protocol")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="afterimage-bench-") as tmp, FakeServer() as server:
        runs = native_runs(server.url, Path(tmp), server.proc.pid, args.quick, args.only)
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
