"""`evaluate --no-judge` streams: peak memory does not grow with the number of rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from .evaluate_helpers import conversation_row
from .helpers import ROOT

# Runs the command as a grandchild and prints its peak RSS (KiB on Linux), free of pytest's own memory.
PEAK_RSS = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)
ALLOWED_GROWTH_KIB = 6 * 1024  # 80k more rows: a leak of 75 bytes per row would show


def peak_rss_kib(source: Path, out: Path) -> int:
    command = [sys.executable, "-m", "afterimage_cli", "evaluate", str(source), "--no-judge", "-o", str(out), "-q"]
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command], cwd=ROOT, capture_output=True, check=True, timeout=120
    )
    return int(done.stdout.decode().split()[-1])


def test_no_judge_memory_is_flat_from_20k_to_100k_rows(tmp_path) -> None:
    rows = [orjson.dumps(conversation_row(i, context=i % 2 == 0)) + b"\n" for i in range(100_000)]
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    small.write_bytes(b"".join(rows[:20_000]))
    large.write_bytes(b"".join(rows))
    del rows
    small_peak = peak_rss_kib(small, tmp_path / "small.out.jsonl")
    large_peak = peak_rss_kib(large, tmp_path / "large.out.jsonl")
    assert sum(1 for _ in open(tmp_path / "large.out.jsonl", "rb")) == 100_000
    assert large_peak - small_peak < ALLOWED_GROWTH_KIB, (small_peak, large_peak)
