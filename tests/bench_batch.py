"""Bench of batch mode's own overhead: `afterimage generate --mode batch` against the fake server's batch
endpoint, which answers every batch at its first poll, so what is measured is ours: building each round's
requests, writing and uploading the file, reading the output file, recording every answer in the ledger
and moving every conversation on to its next call.

Three-turn conversations with verbatim openings: five calls, so five rounds, per conversation. Reported:
rounds, requests, wall seconds per round, and the CPU of the afterimage process (not the fake server's)
per request and per round.

Run it alone with `python -m tests.bench_batch [--quick]` (it starts its own fake server); `make bench`
calls `run_batch`.
"""

from __future__ import annotations

import resource
import subprocess
import time
from pathlib import Path

import orjson
import yaml

from tests.bench import INSTRUCTIONS, BenchError, afterimage_cmd, child_env, note, run_standalone, table

TURNS = 3


def batch_run(api_base: str, workdir: Path, n: int) -> dict[str, float]:
    """One batch-mode run of n conversations; its summary's batch counts, wall time and CPU."""
    work = workdir / f"batch-{n}"
    work.mkdir(parents=True, exist_ok=True)
    config = work / "batch.yaml"
    cfg = {
        "respondent": {"model": "fake-model", "api_base": api_base},
        "generation": {"num_conversations": n, "min_turns": TURNS, "max_turns": TURNS, "mode": "batch"},
        "instructions": {"generator": "simple", "options": {"instructions": INSTRUCTIONS}},
        "cache": {"enabled": False},
        "batch": {"poll_interval": 0.05, "items_in_flight": n},
        "storage": {"type": "jsonl", "path": str(work / "out.jsonl")},
    }
    config.write_text(yaml.safe_dump(cfg))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [*afterimage_cmd(), "generate", str(config), "--json", "-q", "--overwrite"],
        env=child_env(work),
        capture_output=True,
        timeout=1800,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise BenchError(f"batch mode, n={n}: exit {proc.returncode}: {proc.stderr.decode(errors='replace')[-800:]}")
    summary = orjson.loads(proc.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    batch = summary["batch"]
    return {
        "n": n,
        "rounds": batch["rounds"],
        "requests": batch["requests_submitted"],
        "wall_s": wall,
        "cpu_s": cpu,
    }


def run_batch(server_url: str, workdir: Path, quick: bool) -> list[str]:
    """The Markdown lines of the batch-mode table."""
    rows = []
    for n in (1_000,) if quick else (1_000, 10_000):
        note(f"batch mode: {n:,} conversations …")
        rows.append(batch_run(server_url + "/v1", workdir, n))
    head = ["conversations", "rounds", "requests", "wall s", "wall s/round", "CPU s", "CPU ms/request", "CPU s/round"]
    body = [
        [f"{r['n']:,}", f"{r['rounds']:.0f}", f"{r['requests']:,.0f}", f"{r['wall_s']:.1f}"]
        + [f"{r['wall_s'] / r['rounds']:.2f}", f"{r['cpu_s']:.1f}", f"{1000 * r['cpu_s'] / r['requests']:.3f}"]
        + [f"{r['cpu_s'] / r['rounds']:.2f}"]
        for r in rows
    ]
    return [
        "#### Batch mode: our overhead per round (fake batch endpoint answers at the first poll)",
        "",
        table([head, *body]),
    ]


def main(argv: list[str] | None = None) -> int:
    return run_standalone(__doc__, "batch", run_batch, argv)


if __name__ == "__main__":
    raise SystemExit(main())
