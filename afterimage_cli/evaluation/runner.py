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
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from ..config import EvaluationConfig
from ..engine.ledger import Rejection, RejectionBudget, RunLedger
from ..engine.retry import ErrorBudget
from ..engine.rounds import BatchRounds
from ..errors import OutputConflictError, ProviderError, RunAborted, is_item_level
from ..export.reader import RowReader
from ..export.rows import row_score
from ..monitor import GenerationMonitor, Usage, current_usage
from ..providers.cache import CallScope, current_scope
from ..storage.jsonl import lock_for_writing, resume_errors
from .duplicates import NearDuplicateIndex
from .judge import ConversationJudge, Verdict
from .metrics import RowMetrics
from .progress import EvaluateProgress
from .resume import FINGERPRINT_KEY, DoneKeys, digest_of, row_evaluation_fingerprint, row_key, scan_output
from .stats import EvaluationStats

Row = dict[str, Any]
Judged = tuple[Verdict | ProviderError, Usage]
WINDOW_PER_WORKER = 4
# Buffered writes on the offline path: a crash loses at most this many cheap rows, which resume redoes.
OFFLINE_FLUSH_EVERY = 1000


@dataclass
class Counts:
    """What happened to the rows of one run."""

    resumed: int = 0
    evaluated: int = 0
    written: int = 0
    dropped: int = 0
    unscored_dropped: int = 0
    failed: int = 0  # rejected in this session (recorded in the ledger)
    rejected_skipped: int = 0  # rejected by an earlier session, not judged again
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
        ledger: RunLedger | None = None,
        retry_rejected: bool = False,
        max_rejected_share: float = 0.05,
        monitor: GenerationMonitor | None = None,
    ) -> None:
        self.cfg = cfg
        self.ledger = ledger
        self.retry_rejected = retry_rejected
        self.rejections = RejectionBudget(max_rejected_share)
        self.rejected_keys: set[str] = set()
        self.monitor = monitor
        self.fingerprint = fingerprint
        self.judge = judge
        self.budget = budget
        self.min_score = min_score
        self.concurrency = concurrency or cfg.concurrency
        self.metrics = RowMetrics(NearDuplicateIndex(cfg.dedup_window, cfg.near_duplicate_threshold))
        self.stats = EvaluationStats()
        self.counts = Counts()
        self.rounds: BatchRounds | None = None  # batch mode: judge calls wait for their round
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
            self._open_ledger(overwrite)
        except BaseException:
            out.close()
            raise
        self._out = out

    def _open_ledger(self, overwrite: bool) -> None:
        """Rows an earlier session rejected are not judged again (unless retry_rejected)."""
        if self.ledger is None:
            return
        earlier = self.ledger.open(overwrite=overwrite)
        if not self.retry_rejected:
            self.rejected_keys = {r.id for r in earlier.values()}
        self.rejections = RejectionBudget(
            self.rejections.max_share, rows=self.counts.resumed, rejected=len(self.rejected_keys)
        )

    def _resume(self, path: Path) -> None:
        """Take in the rows an earlier run of the same settings wrote; refuse rows of other settings."""
        digests = array("Q")
        with resume_errors():
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
        if self.rejected_keys and row_key(row) in self.rejected_keys:
            self.counts.rejected_skipped += 1
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
        window: asyncio.Queue[tuple[int, Row, dict[str, Any], asyncio.Task[Judged]] | None] = asyncio.Queue(
            maxsize=self.concurrency * WINDOW_PER_WORKER
        )
        slots = asyncio.Semaphore(self.concurrency)

        rounds = self.rounds

        async def judge_one(number: int, row: Row) -> Judged:
            usage = Usage()  # this row's calls: what a rejection cost, and whether a budget stop may refuse it
            current_usage.set(usage)
            if rounds is not None:  # the row's place in the input names its batch requests
                current_scope.set(CallScope(item=number))
            async with slots:
                try:
                    with rounds.item() if rounds is not None else nullcontext():
                        return await judge.judge(row), usage
                except ProviderError as error:  # handled in order by the writer
                    return error, usage

        async def put(entry: tuple[int, Row, dict[str, Any], asyncio.Task[Judged]] | None) -> None:
            """Into the window. In batch mode the reader counts as an item in flight while it reads, so a
            round waits for the rows still coming, but not while the full window holds the reader up."""
            if rounds is None or not window.full():
                await window.put(entry)
                return
            rounds.leave()
            try:
                await window.put(entry)
            finally:
                rounds.enter()

        async def produce(group: asyncio.TaskGroup) -> None:
            with rounds.item() if rounds is not None else nullcontext():
                await read(group)
            await window.put(None)

        async def read(group: asyncio.TaskGroup) -> None:
            rows: Iterator[Row] = iter(reader)
            number = 0
            while True:
                # stdin may block while an upstream command works: read it off the event loop.
                row = await asyncio.to_thread(next, rows, None) if threaded_read else next(rows, None)
                if row is None:
                    break
                number += 1
                metrics = self._prepare(row)
                if metrics is None:
                    progress.tick()
                    continue
                await put((number, row, metrics, group.create_task(judge_one(number, row))))

        async def consume() -> None:
            while (item := await window.get()) is not None:
                number, row, metrics, task = item
                outcome, usage = await task
                progress.tick()
                if isinstance(outcome, ProviderError):
                    self._failed(number, row, outcome, usage)
                    continue
                if self.budget is not None:
                    self.budget.item_done(True)
                row["evaluation"] = outcome.evaluation
                row["final_score"] = outcome.final_score
                self._finish(row, metrics, flush=True)
                self.rejections.row_done()
                if self.ledger is not None and self.monitor is not None:
                    self.ledger.checkpoint(self.counts.written, self.monitor.usage.as_dict())

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce(group))
                group.create_task(consume())
        except* Exception as failed:  # a stop, a bad input line: report the error itself, not its group
            raise failed.exceptions[0] from None

    def _failed(self, number: int, row: Row, error: ProviderError, usage: Usage) -> None:
        """A row the judge could not score (the server refused its request, or its calls kept failing): not
        written, recorded as rejected in the ledger (a re-run skips it unless --retry-rejected); a rejected
        key or unknown model stops the run, and so does a share of rejected rows over the budget."""
        if not error.retryable and not is_item_level(error):
            raise RunAborted(f"stopping: {error}")
        key = row_key(row)
        if self.ledger is not None:
            self.ledger.reject(Rejection(number, key, error.kind, str(error), 1, usage.as_dict()))
        self.counts.failed += 1
        self.counts.last_error = str(error)
        if len(self.counts.failed_examples) < 5:
            self.counts.failed_examples.append(f"{row_key(row)}: {error}")
        if self.budget is not None and not is_item_level(error):
            self.budget.item_done(False)
        self.rejections.reject(error.kind, str(error))

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
                "rejected_earlier_skipped": c.rejected_skipped,
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
