"""`make bench`: throughput, CPU and memory of `afterimage generate` against the fake server on 127.0.0.1.

Run it with `python -m tests.bench [--quick] [--only litellm|openai_compat] [--hosted]` (`--only` measures one
transport's runs and skips the sharing scenarios of bench_sharing; `--hosted` only compares the hosted
`openai/gpt-4o-mini`, its URL in OPENAI_BASE_URL, through its default direct transport and through
`provider: litellm`). The Markdown table goes to stdout, progress notes to stderr. A missed target is reported
(exit 0); a run that errors exits 1.

Throughput is measured in the steady state, not over the process lifetime: the bench polls the server's
`/_stats` and the child's CPU (/proc) every `poll` seconds and takes the slope between 10 % and 90 % of the
run's calls, so neither start-up (imports) nor the draining tail counts. `calls/s (summary)` is the run's
own `calls_per_s`, for comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
TRANSPORTS = ("litellm", "openai_compat")
# A hosted model whose URL comes from OPENAI_BASE_URL, as the SDKs read it: the transport table picks the
# direct transport for it; `provider: litellm` forces litellm (issue 16's comparison).
HOSTED_MODEL = "openai/gpt-4o-mini"
HOSTED_GRID = [(64, 0.5)]
GRID = [(c, lat) for lat in (0.05, 0.5) for c in (16, 64, 256)]
QUICK_GRID = [(64, 0.05)]
# A rough ceiling per transport (calls/s on this 2-core machine), only used to size runs to ~10 s.
EXPECTED_CAP = {"litellm": 250.0, "openai_compat": 1200.0}
TICK = os.sysconf("SC_CLK_TCK")
RUN_TIMEOUT = 300.0  # seconds one generate run may take before the bench calls it failed
INSTRUCTIONS = ["What is Python used for?", "How do hash maps work?", "Why is the sky blue?", "What is TCP?"]


class BenchError(RuntimeError):
    """A benchmark run itself failed (not a missed target)."""


@dataclass
class Run:
    """One measured `afterimage generate` run."""

    transport: str
    concurrency: int
    latency: float
    n: int
    rows: int
    calls: int
    conv_per_s: float
    calls_per_s: float
    summary_calls_per_s: float
    cpu_ms_per_call: float
    peak_rss_mb: float
    server_cpu_pct: float | None
    hosted: bool = False  # HOSTED_MODEL through OPENAI_BASE_URL, not openai/fake-model at an api_base

    @property
    def label(self) -> str:
        return f"{HOSTED_MODEL} via {self.transport}" if self.hosted else self.transport

    @property
    def ideal(self) -> float:
        return self.concurrency / self.latency

    @property
    def efficiency(self) -> float:
        return self.calls_per_s / self.ideal


def note(text: str) -> None:
    """A progress note on stderr."""
    print(text, file=sys.stderr, flush=True)


def afterimage_cmd() -> list[str]:
    """The installed console script (what users run), or `python -m afterimage_cli`."""
    script = Path(sys.executable).parent / "afterimage"
    return [str(script)] if script.exists() else [sys.executable, "-m", "afterimage_cli"]


def child_env(workdir: Path) -> dict[str, str]:
    """The environment of a child run: offline litellm price map, a private cache, no real keys."""
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL", "_API_BASE"))}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", XDG_CACHE_HOME=str(workdir / "xdg"))
    return env


def cpu_seconds(pid: int | None) -> float:
    """user+sys CPU seconds of a live process from /proc (0.0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def http(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET (or POST a JSON body to) the fake server's control endpoints."""
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return orjson.loads(response.read())  # type: ignore[no-any-return]


def write_config(path: Path, respondent: dict[str, Any], concurrency: int) -> None:
    """Single-turn conversations with verbatim openings: one conversation is exactly one call."""
    cfg = {
        "respondent": respondent,
        "generation": {"num_conversations": 1, "min_turns": 1, "max_turns": 1, "concurrency": concurrency},
        "instructions": {"generator": "simple", "options": {"instructions": INSTRUCTIONS}},
        "cache": {"enabled": False},
        "storage": {"type": "jsonl", "path": str(path.with_suffix(".jsonl"))},
    }
    path.write_text(yaml.safe_dump(cfg))


def generate(
    config: Path,
    n: int,
    concurrency: int,
    workdir: Path,
    sample: Any = None,
    poll: float = 0.1,
    allow_errors: bool = False,
    env: dict[str, str] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Run `afterimage generate` to completion (`env` added to the child's environment), calling
    `sample(pid)` every `poll` s; (summary, rusage)."""
    out = config.with_suffix(".jsonl")
    args = [*afterimage_cmd(), "generate", str(config), "-n", str(n), "--concurrency", str(concurrency)]
    args += ["-o", str(out), "--overwrite", "--json", "--quiet", "--no-cache"]
    with open(workdir / "stderr.txt", "w+b") as err:
        full_env = {**child_env(workdir), **(env or {})}
        proc = subprocess.Popen(args, cwd=workdir, env=full_env, stdout=subprocess.PIPE, stderr=err)
        deadline = time.monotonic() + RUN_TIMEOUT
        try:
            while True:  # wait4 reaps the child and gives its own rusage (peak RSS of this run only)
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"{config.name}: still running after {RUN_TIMEOUT:.0f} s")
                if sample is not None:
                    sample(proc.pid)
                time.sleep(poll)
        except BaseException:
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        proc.stdout.close()
        err.seek(0)
        errors = err.read().decode(errors="replace").strip()
    if proc.returncode != 0:
        raise BenchError(f"{config.name}: exit {proc.returncode}: {errors[-800:]}")
    summary = orjson.loads(stdout.strip().splitlines()[-1])
    if summary["rows_total"] != n or (summary["errors"] and not allow_errors):
        raise BenchError(f"{config.name}: rows {summary['rows_total']}/{n}, errors {summary['errors']}")
    out.unlink(missing_ok=True)
    return summary, usage


def measure(
    server_url: str,
    transport: str,
    concurrency: int,
    latency: float,
    n: int,
    workdir: Path,
    *,
    server_pid: int | None = None,
    poll: float = 0.05,
    respondent: dict[str, Any] | None = None,
    hosted: bool = False,
) -> Run:
    """One run of n single-turn conversations through `transport` against a server answering in `latency` s:
    openai/fake-model at its api_base, `respondent` (the model block, when it is not the OpenAI protocol's
    through that transport), or (`hosted`) HOSTED_MODEL with the server's URL in OPENAI_BASE_URL, by its
    default transport (openai_compat) or with `provider: litellm`."""
    http(server_url + "/_knobs", {"latency": latency})
    base = http(server_url + "/_stats")["ok"]
    config = workdir / f"{'hosted-' if hosted else ''}{transport}-{concurrency}-{int(latency * 1000)}.yaml"
    env: dict[str, str] | None = None
    if hosted:
        respondent = {"model": HOSTED_MODEL, **({"provider": "litellm"} if transport == "litellm" else {})}
        env = {"OPENAI_BASE_URL": server_url + "/v1"}
    respondent = respondent or {"model": "openai/fake-model", "provider": transport, "api_base": server_url + "/v1"}
    write_config(config, respondent, concurrency)
    samples: list[tuple[float, int, float, float]] = []  # (time, calls done, child CPU s, server CPU s)

    def sample(pid: int) -> None:
        done = http(server_url + "/_stats")["ok"] - base
        samples.append((time.monotonic(), done, cpu_seconds(pid), cpu_seconds(server_pid)))

    summary, usage = generate(config, n, concurrency, workdir, sample, poll, env=env)
    calls, elapsed = summary["calls"], summary["elapsed_s"]
    # Completions come in waves (all in flight answer together); both ends are the first sample past
    # a threshold, so each lags its wave's edge by under one poll interval and the lags cancel out.
    start = next((s for s in samples if s[1] >= 0.1 * calls), None)
    end = next((s for s in samples if s[1] >= 0.9 * calls), None)
    if start and end and end[0] - start[0] >= 10 * poll and end[1] > start[1]:
        (t0, d0, c0, s0), (t1, d1, c1, s1) = start, end
        calls_per_s, cpu_ms = (d1 - d0) / (t1 - t0), 1000 * (c1 - c0) / (d1 - d0)
        server_pct = 100 * (s1 - s0) / (t1 - t0) if server_pid else None
    else:  # too short to sample: whole-run figures (start-up included)
        calls_per_s, cpu_ms = calls / elapsed, 1000 * (usage.ru_utime + usage.ru_stime) / calls
        server_pct = None
    return Run(
        transport,
        concurrency,
        latency,
        n,
        summary["rows_total"],
        calls,
        conv_per_s=calls_per_s * summary["rows_written"] / calls,
        calls_per_s=calls_per_s,
        summary_calls_per_s=summary["calls_per_s"],
        cpu_ms_per_call=cpu_ms,
        peak_rss_mb=usage.ru_maxrss / 1024,
        server_cpu_pct=server_pct,
        hosted=hosted,
    )


class FakeServer:
    """`python -m tests.fakeserver` as a subprocess on 127.0.0.1, port 0."""

    def __enter__(self) -> FakeServer:
        cmd = [sys.executable, "-m", "tests.fakeserver", "--port", "0", "--latency", "0.05"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.proc.kill()
            raise BenchError("the fake server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def registered(transport: str) -> bool:
    """Whether the provider registry knows (and can import) this transport."""
    from afterimage_cli.errors import UnknownComponentError
    from afterimage_cli.registry import providers

    try:
        providers.get(transport)
    except UnknownComponentError:
        return False
    return True


def run_size(transport: str, concurrency: int, latency: float, seconds: float) -> int:
    """Conversations for a run of about `seconds` at the expected rate."""
    rate = min(concurrency / latency, EXPECTED_CAP[transport])
    return int(min(max(rate * seconds, 12 * concurrency), 20_000))


def help_time(runs: int = 5) -> float:
    """Median wall time of `afterimage --help` in a fresh process."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([*afterimage_cmd(), "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def offline_rss(n: int, workdir: Path) -> float:
    """Peak RSS (MB) of a run of n single-turn conversations with the offline model (engine + storage)."""
    config = workdir / f"offline-{n}.yaml"
    write_config(config, {"model": "offline"}, 64)
    return float(generate(config, n, 64, workdir)[1].ru_maxrss / 1024)


def loadavg() -> str:
    """The 1-minute load average (other work on the machine skews every number here)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def table(rows: list[list[str]]) -> str:
    """A Markdown table; the first row is the header."""
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "|" + "---|" * len(rows[0]))
    return "\n".join(lines)


def targets(
    runs: list[Run],
    help_s: float,
    rss: dict[int, float],
    export: float,
    evaluate: dict[int, float],
    hygiene_us: float | None = None,
) -> list[tuple[str, str, bool]]:
    """(target, measured, passed) for each target of the issue."""
    out = []
    for r in runs:
        if r.ideal <= 200:
            label = f"efficiency ≥ 0.9 ({r.transport}, c={r.concurrency}, {r.latency * 1000:.0f} ms)"
            out.append((label, f"{r.efficiency:.2f}", r.efficiency >= 0.9))
    peak = {t: max((r.calls_per_s for r in runs if r.transport == t), default=0.0) for t in TRANSPORTS}
    busy = [r for r in runs if r.transport == "litellm" and r.concurrency >= 64]
    if busy:
        best = max(busy, key=lambda r: r.calls_per_s)
        where = f"{best.calls_per_s:,.0f} (c={best.concurrency}, {best.latency * 1000:.0f} ms)"
        out.append(("≥ 250 calls/s per process via litellm (high concurrency)", where, best.calls_per_s >= 250))
    if peak["litellm"] and peak["openai_compat"]:
        ratio = peak["openai_compat"] / peak["litellm"]
        out.append(("fast path far above litellm (peak calls/s ≥ 2×)", f"{ratio:.1f}×", ratio >= 2))
    from tests.bench_native import cpu_target

    out.extend(cpu_target(runs))
    out.append(("`afterimage --help` ≤ 0.3 s", f"{help_s:.2f} s", help_s <= 0.3))
    (small, rs), (big, rb) = sorted(rss.items())
    flat = rb <= 200 and rb <= rs * 1.25 + 10
    out.append((f"RSS flat ≤ 200 MB over {big:,} conversations", f"{rs:.0f} → {rb:.0f} MB", flat))
    out.append(("export sharegpt ≥ 150k rows/s", f"{export:,.0f} rows/s", export >= 150_000))
    from tests.bench_evaluate import ALLOWED_GROWTH_MB

    (small, es), (big, eb) = sorted(evaluate.items())
    label = f"evaluate --no-judge RSS flat from {small:,} to {big:,} rows (≤ +{ALLOWED_GROWTH_MB:g} MB)"
    out.append((label, f"{es:.0f} → {eb:.0f} MB", eb - es <= ALLOWED_GROWTH_MB))
    if hygiene_us is not None:
        out.append(("turn hygiene checks ≤ 100 µs CPU per turn", f"{hygiene_us:.0f} µs", hygiene_us <= 100))
    return out


def runs_table(runs: list[Run]) -> str:
    head = ["transport", "concurrency", "latency ms", "ideal calls/s", "n", "conv/s", "calls/s", "efficiency"]
    head += ["target", "CPU ms/call", "peak RSS MB", "server CPU %", "calls/s (summary)"]
    body = [
        [r.label, str(r.concurrency), f"{r.latency * 1000:.0f}", f"{r.ideal:,.0f}", f"{r.n:,}"]
        + [fmt(r.conv_per_s), fmt(r.calls_per_s), f"{r.efficiency:.2f}", "≥ 0.9" if r.ideal <= 200 else ""]
        + [f"{r.cpu_ms_per_call:.2f}", f"{r.peak_rss_mb:.0f}", fmt(r.server_cpu_pct, 0), fmt(r.summary_calls_per_s)]
        for r in runs
    ]
    return table([head, *body])


def verdict_table(verdicts: list[tuple[str, str, bool]]) -> str:
    return table([["target", "measured", "verdict"], *[[t, m, "PASS" if ok else "FAIL"] for t, m, ok in verdicts]])


def run_standalone(doc: str | None, name: str, scenarios: Any, argv: list[str] | None = None) -> int:
    """`python -m tests.bench_<name> [--quick]`: one scenario module's Markdown lines, against a fake server
    of its own (`scenarios(server_url, workdir, quick)`)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true", help="small runs (smoke test)")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix=f"afterimage-bench-{name}-") as tmp, FakeServer() as server:
            print("\n".join(scenarios(server.url, Path(tmp), args.quick)))
    except BenchError as exc:
        note(f"bench failed: {exc}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one pair per transport, small runs (smoke test)")
    parser.add_argument("--only", choices=TRANSPORTS, help="measure one transport")
    parser.add_argument("--hosted", action="store_true", help=f"only {HOSTED_MODEL}: direct vs provider: litellm")
    args = parser.parse_args(argv)
    grid, seconds = (QUICK_GRID, 3.0) if args.quick else (GRID, 10.0)
    if args.hosted:
        from tests.bench_hosted import main_hosted

        return main_hosted(seconds, args.quick)
    hosted: list[Run] = []
    skipped: list[str] = []
    runs: list[Run] = []
    load_before = loadavg()
    try:
        with tempfile.TemporaryDirectory(prefix="afterimage-bench-") as tmp, FakeServer() as server:
            workdir = Path(tmp)
            for transport in [args.only] if args.only else TRANSPORTS:
                if not registered(transport):
                    skipped.append(f"{transport}: not registered as a provider yet, skipped")
                    note(skipped[-1])
                    continue
                for concurrency, latency in grid:
                    n = run_size(transport, concurrency, latency, seconds)
                    note(f"{transport}: concurrency {concurrency}, latency {latency * 1000:.0f} ms, n={n} …")
                    run = measure(server.url, transport, concurrency, latency, n, workdir, server_pid=server.proc.pid)
                    note(f"  {run.calls_per_s:,.0f} calls/s, efficiency {run.efficiency:.2f}")
                    runs.append(run)
            if not args.only:
                from tests.bench_hosted import hosted_runs
                from tests.bench_native import native_runs

                hosted = hosted_runs(server, workdir, seconds)
                runs += native_runs(server.url, workdir, server.proc.pid, args.quick)
            from tests.bench_ratelimit import run_scenarios

            limits = [] if args.only == "litellm" else run_scenarios(server.url, workdir)
            from tests.bench_sharing import run_all as sharing_scenarios

            sharing = [] if args.only else sharing_scenarios(server.url, workdir, args.quick)
            from tests.bench_batch import run_batch

            sharing += [] if args.only else ["", *run_batch(server.url, workdir, args.quick)]
            if not args.only:
                from tests.bench_replicas import run_replicas

                with FakeServer() as second:
                    sharing += ["", *run_replicas([server.url, second.url], workdir, args.quick)]
            note("afterimage --help …")
            help_s = help_time()
            sizes = (1_000, 10_000) if args.quick else (10_000, 100_000)
            rss = {}
            for n in sizes:
                note(f"offline: {n:,} conversations …")
                rss[n] = offline_rss(n, workdir)
            from tests.bench_evaluate import evaluate_rss

            note("evaluate --no-judge: peak RSS …")
            evaluate = evaluate_rss(workdir, (2_000, 10_000) if args.quick else (20_000, 100_000))
        note("export …")
        from tests.bench_export import bench_export

        export_rows = 20_000 if args.quick else 200_000
        export = bench_export(export_rows)
        note("turn hygiene checks …")
        from tests.bench_hygiene import bench_hygiene

        hygiene_dialogs = 500 if args.quick else 2_000
        hygiene_us = bench_hygiene(hygiene_dialogs)
        note("view …")
        from tests.bench_view import bench_view, view_lines, view_targets

        view = bench_view(10_000 if args.quick else 100_000)
    except BenchError as exc:
        note(f"bench failed: {exc}")
        return 1

    print(
        f"## afterimage bench{' (--quick)' if args.quick else ''}: {os.cpu_count()} cores, fake server on 127.0.0.1"
        f" (load average {load_before} before, {loadavg()} after)\n"
    )
    print(runs_table(runs) if runs else "(no generate runs)")
    if hosted:
        print(f"\n#### Hosted model: {HOSTED_MODEL}, its URL in OPENAI_BASE_URL\n")
        print(runs_table(hosted))
    for line in skipped:
        print(f"\n- {line}")
    (small, rs), (big, rb) = sorted(rss.items())
    print("\n" + table([["measure", "value"], ["`afterimage --help` wall time (median of 5)", f"{help_s:.3f} s"]]))
    for size, mb in ((small, rs), (big, rb)):
        print(f"| peak RSS, {size:,} offline conversations | {mb:.0f} MB |")
    print(f"| export sharegpt, {export_rows:,} rows | {export:,.0f} rows/s |")
    print(f"| turn hygiene checks, {hygiene_dialogs:,} six-turn dialogs | {hygiene_us:.0f} µs CPU per turn |")
    for size, mb in sorted(evaluate.items()):
        print(f"| peak RSS, evaluate --no-judge of {size:,} rows | {mb:.0f} MB |")
    print("\n".join(view_lines(view)))
    if limits:
        from tests.bench_ratelimit import table_lines

        print("\n#### Rate limits (direct transport, 50 ms latency unless said)\n")
        print("\n".join(table_lines(limits)))
    if sharing:
        print("\n" + "\n".join(sharing))
    print("\n### Targets\n")
    from tests.bench_hosted import hosted_targets

    verdicts = targets(runs, help_s, rss, export, evaluate, hygiene_us) + hosted_targets(hosted) + view_targets(view)
    print(verdict_table(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
