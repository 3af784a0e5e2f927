"""Throughput of `afterimage export --format sharegpt` on typical 2-turn rows (the ≥150k rows/s target).

Run it alone with `python -m tests.bench_export [N_ROWS]`; `bench_export(n_rows)` is what `make bench` calls.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import orjson

from afterimage_cli.export import ExportOptions, open_rows, plan_outputs, run_export


def typical_row(index: int) -> dict[str, object]:
    """A 2-turn evaluated row shaped like seeds/jsonl-schema.txt (~1 KB of JSON)."""
    return {
        "id": f"run-1:{index}",
        "conversations": [
            {
                "role": "user",
                "content": f"Question {index}: what is Python used for in data work?",
                "reasoning_content": None,
            },
            {
                "role": "assistant",
                "content": "Python is a high-level programming language. " * 8,
                "reasoning_content": None,
            },
        ],
        "metadata": {"context_id": "doc-abc-123", "persona_name": "A curious beginner", "instruction_index": index},
        "instruction_context": "Python was created by Guido van Rossum...",
        "response_context": "Python documentation excerpt...",
        "persona": "A curious beginner",
        "evaluation": {
            "coherence": {"score": 0.92, "feedback": "Clear logical flow."},
            "helpfulness": {"score": 0.88, "feedback": "Helpful response."},
            "overall_grade": "good",
        },
        "final_score": 0.866,
    }


def write_rows(path: Path, n_rows: int) -> None:
    """Write ``n_rows`` typical rows as JSONL."""
    with open(path, "wb") as fh:
        for index in range(n_rows):
            fh.write(orjson.dumps(typical_row(index), option=orjson.OPT_APPEND_NEWLINE))


def bench_export(n_rows: int = 200_000, format_name: str = "sharegpt") -> float:
    """Export ``n_rows`` generated rows file-to-file in process; return rows per second (best of 3)."""
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "rows.jsonl", Path(tmp) / "out.jsonl"
        write_rows(source, n_rows)
        best = float("inf")
        for _ in range(3):
            plan = plan_outputs([format_name], str(target), split=False, output_format="jsonl", source=str(source))
            started = time.perf_counter()
            with open_rows(str(source)) as reader:
                stats = run_export(reader, plan, ExportOptions())
            best = min(best, time.perf_counter() - started)
            assert stats.read == n_rows, stats
    return n_rows / best


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    for name in sys.argv[2:] or ["sharegpt"]:
        print(f"export {name}: {bench_export(count, name):,.0f} rows/s ({count:,} rows)")
