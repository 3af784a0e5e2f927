"""`make bench`'s hosted-model comparison (issue 16): HOSTED_MODEL with the fake server's URL in
OPENAI_BASE_URL, through the transport the table picks for it (the direct openai_compat) and with
`provider: litellm`, at concurrency 64 and 500 ms latency. `python -m tests.bench --hosted` runs only this."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.bench import (
    HOSTED_GRID,
    HOSTED_MODEL,
    BenchError,
    FakeServer,
    Run,
    loadavg,
    measure,
    note,
    run_size,
    runs_table,
    verdict_table,
)


def hosted_runs(server: FakeServer, workdir: Path, seconds: float) -> list[Run]:
    """HOSTED_MODEL through its default (direct) transport and through `provider: litellm`, on HOSTED_GRID."""
    runs = []
    for concurrency, latency in HOSTED_GRID:
        for transport in ("openai_compat", "litellm"):
            n = run_size(transport, concurrency, latency, seconds)
            note(f"{HOSTED_MODEL} via {transport} (OPENAI_BASE_URL): concurrency {concurrency}, n={n} …")
            run = measure(
                server.url, transport, concurrency, latency, n, workdir, server_pid=server.proc.pid, hosted=True
            )
            note(f"  {run.calls_per_s:,.0f} calls/s, efficiency {run.efficiency:.2f}, {run.cpu_ms_per_call:.2f} ms CPU")
            runs.append(run)
    return runs


def hosted_targets(runs: list[Run]) -> list[tuple[str, str, bool]]:
    """Issue 16's targets: the direct path's CPU per call ≥ 5× below litellm's, efficiency ≥ 0.9 at c=64, 500 ms."""
    out = []
    by = {r.transport: r for r in runs}
    direct, litellm = by.get("openai_compat"), by.get("litellm")
    if direct and litellm:
        ratio = litellm.cpu_ms_per_call / direct.cpu_ms_per_call if direct.cpu_ms_per_call else float("inf")
        label = f"{HOSTED_MODEL}: CPU per call ≥ 5× lower direct than with provider: litellm"
        out.append(
            (label, f"{ratio:.1f}× ({direct.cpu_ms_per_call:.2f} vs {litellm.cpu_ms_per_call:.2f} ms)", ratio >= 5)
        )
    if direct:
        label = f"{HOSTED_MODEL} direct: efficiency ≥ 0.9 (c={direct.concurrency}, {direct.latency * 1000:.0f} ms)"
        out.append((label, f"{direct.efficiency:.2f}", direct.efficiency >= 0.9))
    return out


def main_hosted(seconds: float, quick: bool) -> int:
    """`--hosted`: only the hosted-model comparison."""
    load_before = loadavg()
    try:
        with tempfile.TemporaryDirectory(prefix="afterimage-bench-") as tmp, FakeServer() as server:
            runs = hosted_runs(server, Path(tmp), seconds)
    except BenchError as exc:
        note(f"bench failed: {exc}")
        return 1
    print(
        f"## afterimage bench --hosted{' --quick' if quick else ''}: {os.cpu_count()} cores, fake server on "
        f"127.0.0.1 (load average {load_before} before, {loadavg()} after)\n"
    )
    print(runs_table(runs))
    print("\n### Targets\n")
    print(verdict_table(hosted_targets(runs)))
    return 0
