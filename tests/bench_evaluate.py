"""Peak memory of `afterimage evaluate --no-judge` as rows grow: it streams, so memory stays flat.

`make bench` calls `evaluate_rss(workdir, sizes)` (RSS depends on the machine and its allocator, so it is a
benchmark figure, not a `make test` assertion); run it alone with `python -m tests.bench_evaluate`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from tests.evaluate_helpers import conversation_row

ROOT = Path(__file__).resolve().parent.parent
# Runs the command as a grandchild and prints its peak RSS (KiB on Linux), free of the caller's memory.
PEAK_RSS = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)
ALLOWED_GROWTH_MB = 6.0  # 80k more rows: a leak of 75 bytes per row would show


def peak_rss_mb(source: Path, out: Path) -> float:
    """Peak RSS of one `evaluate --no-judge` run over `source`."""
    command = [sys.executable, "-m", "afterimage_cli", "evaluate", str(source), "--no-judge", "-o", str(out), "-q"]
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command], cwd=ROOT, capture_output=True, check=True, timeout=600
    )
    return int(done.stdout.decode().split()[-1]) / 1024


def evaluate_rss(workdir: Path, sizes: tuple[int, int] = (20_000, 100_000)) -> dict[int, float]:
    """Peak RSS (MB) of `evaluate --no-judge` over the first `size` of the same rows, for each size."""
    rows = [orjson.dumps(conversation_row(i, context=i % 2 == 0)) + b"\n" for i in range(max(sizes))]
    peaks = {}
    for size in sizes:
        source = workdir / f"evaluate-{size}.jsonl"
        source.write_bytes(b"".join(rows[:size]))
        out = workdir / f"evaluate-{size}.out.jsonl"
        peaks[size] = peak_rss_mb(source, out)
        if sum(1 for _ in open(out, "rb")) != size:
            raise RuntimeError(f"evaluate wrote the wrong number of rows for {size:,}")
        source.unlink()
        out.unlink()
    return peaks


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        for size, mb in evaluate_rss(Path(tmp)).items():
            print(f"{size:,} rows: peak RSS {mb:.1f} MB")
