"""The streaming evaluate run: rows in, rows out, in input order, constant memory, resumable.

Rows are read one at a time; offline metrics are computed in input order (so duplicate flags are
deterministic); with a judge, up to `concurrency` rows are judged at once and a bounded window of
4 × concurrency rows keeps the output in input order. Every written row is flushed, so an interrupted
run resumes: rows already in the output (by id, or content hash when a row has none) are skipped.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from ..config import EvaluationConfig
from ..engine.retry import ErrorBudget
from ..errors import DamagedOutputError, InputError, OutputConflictError, ProviderError, RunAborted
from ..export.reader import RowReader
from ..export.rows import row_score
from ..storage.jsonl import lock_for_writing
from .duplicates import NearDuplicateIndex
from .judge import ConversationJudge, Verdict
from .metrics import RowMetrics
from .progress import EvaluateProgress
from .resume import FINGERPRINT_KEY, DoneKeys, digest_of, row_evaluation_fingerprint, row_key, scan_output
from .stats import EvaluationStats

Row = dict[str, Any]
WINDOW_PER_WORKER = 4
# Buffered writes on the offline path: a crash loses at most this many cheap rows, which resume redoes.
OFFLINE_FLUSH_EVERY = 1000
# A request the server refuses for this row alone (too long, filtered) fails the row, not the run.
ROW_LEVEL_KINDS = frozenset({"bad_request", "invalid_output"})


@dataclass
class Counts:
    """What happened to the rows of one run."""

    resumed: int = 0
    evaluated: int = 0
    written: int = 0
    dropped: int = 0
    unscored_dropped: int = 0
    failed: int = 0
    last_error: str = ""
    failed_examples: list[str] = field(default_factory=list)


class EvaluateRunner:
    """Evaluates one input stream into one output (a file, or stdout for '-')."""

    def __init__(
        self,
        cfg: EvaluationConfig,
        *,
        fingerprint: str,
        judge: ConversationJudge | None = None,
        budget: ErrorBudget | None = None,
        min_score: float | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.fingerprint = fingerprint
        self.judge = judge
        self.budget = budget
        self.min_score = min_score
        self.concurrency = concurrency or cfg.concurrency
        self.metrics = RowMetrics(NearDuplicateIndex(cfg.dedup_window, cfg.near_duplicate_threshold))
        self.stats = EvaluationStats()
        self.counts = Counts()
        self.done = DoneKeys()
        self.started = time.monotonic()
        self._out: IO[bytes] | None = None
        self._unflushed = 0

    # --- output -------------------------------------------------------------------------------

    def open_output(self, output: str, *, overwrite: bool = False) -> None:
        """Lock the output file, then resume from it (its rows join the statistics) or, with `overwrite`,
        empty it; rows are appended after. '-' writes stdout."""
        if output == "-":
            self._out = sys.stdout.buffer
            return
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        out = open(path, "ab")  # noqa: SIM115  (closed in close_output)
        try:
            lock_for_writing(out, path)  # before reading: a second evaluate must not resume a moving file
            if overwrite:
                out.truncate(0)
            else:
                self._resume(path)
        except BaseException:
            out.close()
            raise
        self._out = out

    def _resume(self, path: Path) -> None:
        """Take in the rows an earlier run of the same settings wrote; refuse rows of other settings."""
        digests = array("Q")
        try:
            for number, row in scan_output(path):
                if row_evaluation_fingerprint(row) != self.fingerprint:
                    raise OutputConflictError(
                        f"{path}:{number} holds a row evaluated with other settings (another judge model or its "
                        "parameters, or changed evaluation weights, grades, criteria or limits), or by an older "
                        "afterimage: pass --overwrite to evaluate into it afresh, or write to another -o path"
                    )
                digests.append(digest_of(row))
                self.stats.add(row, self._measure(row))
                self.counts.resumed += 1
        except DamagedOutputError:
            raise  # its own advice: --overwrite would destroy the complete rows
        except InputError as exc:
            raise OutputConflictError(
                f"{exc}: pass --overwrite to replace the file, or write to another -o path"
            ) from None
        self.done = DoneKeys(digests)

    def close_output(self) -> None:
        if self._out is None:
            return
        self._out.flush()
        if self._out is not sys.stdout.buffer:
            try:
                os.fsync(self._out.fileno())  # rows on disk, not in the page cache, when the run says done
            finally:
                self._out.close()
        self._out = None

    def _write(self, row: Row, *, flush: bool) -> None:
        assert self._out is not None
        self._out.write(orjson.dumps(row) + b"\n")
        self._unflushed += 1
        if flush or self._unflushed >= OFFLINE_FLUSH_EVERY:
            self._out.flush()
            self._unflushed = 0
        self.counts.written += 1

    # --- per row ------------------------------------------------------------------------------

    def _measure(self, row: Row) -> dict[str, Any]:
        label = row.get("id")
        return self.metrics.measure(row, None if label is None else str(label))

    def _prepare(self, row: Row) -> dict[str, Any] | None:
        """Metrics for a new row (stored in metadata.metrics); None when the output already holds it."""
        if self.done and row_key(row) in self.done:
            return None
        metrics = self._measure(row)
        metadata = row.get("metadata")
        if not isinstance(metadata, dict):
            metadata = row["metadata"] = {}
        metadata["metrics"] = metrics
        metadata[FINGERPRINT_KEY] = self.fingerprint
        return metrics

    def _finish(self, row: Row, metrics: dict[str, Any], *, flush: bool) -> None:
        """Count the evaluated row, then write it unless --min-score drops it."""
        self.counts.evaluated += 1
        self.stats.add(row, metrics)
        if self.min_score is not None:
            score = row_score(row)
            if score is None:
                self.counts.unscored_dropped += 1
                return
            if score < self.min_score:
                self.counts.dropped += 1
                return
        self._write(row, flush=flush)

    # --- runs ---------------------------------------------------------------------------------

    def run_offline(self, reader: RowReader, progress: EvaluateProgress) -> None:
        """Offline metrics only: a plain loop, no event loop, buffered writes."""
        for row in reader:
            metrics = self._prepare(row)
            if metrics is not None:
                self._finish(row, metrics, flush=False)
            progress.tick()

    async def run_judged(self, reader: RowReader, progress: EvaluateProgress, *, threaded_read: bool) -> None:
        """Judge rows concurrently; write them in input order through a bounded window."""
        assert self.judge is not None
        judge = self.judge
        window: asyncio.Queue[tuple[Row, dict[str, Any], asyncio.Task[Verdict | ProviderError]] | None] = asyncio.Queue(
            maxsize=self.concurrency * WINDOW_PER_WORKER
        )
        slots = asyncio.Semaphore(self.concurrency)

        async def judge_one(row: Row) -> Verdict | ProviderError:
            async with slots:
                try:
                    return await judge.judge(row)
                except ProviderError as error:  # handled in order by the writer
                    return error

        async def produce(group: asyncio.TaskGroup) -> None:
            rows: Iterator[Row] = iter(reader)
            while True:
                # stdin may block while an upstream command works: read it off the event loop.
                row = await asyncio.to_thread(next, rows, None) if threaded_read else next(rows, None)
                if row is None:
                    break
                metrics = self._prepare(row)
                if metrics is None:
                    progress.tick()
                    continue
                await window.put((row, metrics, group.create_task(judge_one(row))))
            await window.put(None)

        async def consume() -> None:
            while (item := await window.get()) is not None:
                row, metrics, task = item
                outcome = await task
                progress.tick()
                if isinstance(outcome, ProviderError):
                    self._failed(row, outcome)
                    continue
                if self.budget is not None:
                    self.budget.item_done(True)
                row["evaluation"] = outcome.evaluation
                row["final_score"] = outcome.final_score
                self._finish(row, metrics, flush=True)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce(group))
                group.create_task(consume())
        except* Exception as failed:  # a stop, a bad input line: report the error itself, not its group
            raise failed.exceptions[0] from None

    def _failed(self, row: Row, error: ProviderError) -> None:
        """A row the judge could not score: not written (a re-run retries it); fatal errors stop the run."""
        if not error.retryable and error.kind not in ROW_LEVEL_KINDS:
            raise RunAborted(f"stopping: {error}")
        self.counts.failed += 1
        self.counts.last_error = str(error)
        if len(self.counts.failed_examples) < 5:
            self.counts.failed_examples.append(f"{row_key(row)}: {error}")
        if self.budget is not None:
            self.budget.item_done(False)

    # --- results ------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts, statistics and diversity as plain data."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        c = self.counts
        duplicates = self.metrics.duplicates
        return {
            "rows": {
                "resumed": c.resumed,
                "evaluated": c.evaluated,
                "written": c.written,
                "dropped_below_min_score": c.dropped,
                "dropped_unscored": c.unscored_dropped,
                "judge_failed": c.failed,
            },
            "min_score": self.min_score,
            **self.stats.summary(),
            "duplicates": {"exact": duplicates.exact, "near": duplicates.near, "window": duplicates.window},
            "diversity": {
                "user": self.metrics.user_diversity.summary(),
                "assistant": self.metrics.assistant_diversity.summary(),
            },
            "elapsed_s": round(elapsed, 3),
            "rows_per_s": round(c.evaluated / elapsed, 1),
        }
