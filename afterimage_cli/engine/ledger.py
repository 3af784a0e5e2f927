"""The run ledger: a JSONL file beside a run's output that says what happened to the run — each session's
start and end, cost checkpoints, and every item rejected with its cause. `generate` and `evaluate` write
it; `afterimage status` reads it without calling anything; a resumed run reads it to skip rejected items."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from ..errors import RunAborted

CHECKPOINT_SECONDS = 10.0
# Rejections are judged against the budget only once this many happened: a few early rejections in a
# large run are noise, and every item being refused still stops the run after this many.
MIN_REJECTIONS_JUDGED = 10


def ledger_path(output: str | Path) -> Path | None:
    """`out/run.jsonl` → `out/run.ledger.jsonl`; None when the output is stdout (nothing to resume)."""
    if str(output) == "-":
        return None
    path = Path(output)
    return path.with_name(path.stem + ".ledger.jsonl")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Rejection:
    """One rejected item: which, why, after how many attempts, and what it cost."""

    item: int
    id: str
    cause: str
    error: str
    attempts: int
    usage: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"event": "rejected", **self.__dict__}


class RunLedger:
    """Appends a run's events to its ledger file (flushed and fsynced: it is what a resume trusts)."""

    def __init__(self, path: Path | None, command: str, fingerprint: str) -> None:
        self.path = path
        self.command = command
        self.fingerprint = fingerprint
        self._fh: IO[bytes] | None = None
        self._last_checkpoint = time.monotonic()
        self.previous: list[dict[str, Any]] = []  # what earlier sessions of this run recorded (set by open)

    def open(self, *, overwrite: bool = False) -> dict[int, Rejection]:
        """Start a session; return the items earlier sessions of this run rejected (by item number).

        A ledger of another run (the output was replaced) is started afresh."""
        previous = read_ledger(self.path) if self.path is not None and not overwrite else []
        if any(r.get("fingerprint") not in (None, self.fingerprint) for r in previous if r["event"] == "start"):
            previous, overwrite = [], True
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "wb" if overwrite else "ab")
        self.previous = previous
        rejected: dict[int, Rejection] = {}
        for record in previous:
            if record["event"] == "rejected":
                fields = {k: v for k, v in record.items() if k != "event"}
                rejected[int(record["item"])] = Rejection(**fields)
        return rejected

    def start(self, target: int | None, **extra: Any) -> None:
        self._write(
            {
                "event": "start",
                "command": self.command,
                "fingerprint": self.fingerprint,
                "target": target,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "time": _now(),
                **extra,
            }
        )

    def reject(self, rejection: Rejection) -> None:
        self._write(rejection.record())

    def checkpoint(
        self, rows: int, usage: dict[str, Any] | Callable[[], dict[str, Any]], *, force: bool = False
    ) -> None:
        """The session's rows and spending so far, at most every CHECKPOINT_SECONDS (`usage` may be a function,
        called only then: the per-endpoint figures cost more than a row's worth of CPU to gather)."""
        now = time.monotonic()
        if force or now - self._last_checkpoint >= CHECKPOINT_SECONDS:
            self._last_checkpoint = now
            spent = usage() if callable(usage) else usage
            self._write({"event": "checkpoint", "rows": rows, "usage": spent, "time": _now()})

    def end(self, status: str, rows: int, usage: dict[str, Any], reason: str | None = None) -> None:
        """How the session ended: `finished`, `stopped` (a budget), or `interrupted`."""
        self._write({"event": "end", "status": status, "reason": reason, "rows": rows, "usage": usage, "time": _now()})
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def record(self, record: dict[str, Any], *, sync: bool = True) -> None:
        """Append any event (batch mode records its batches and answers); `sync=False` leaves the fsync to
        the next synced record, for events written many at a time."""
        self._write(record, sync=sync)

    def _write(self, record: dict[str, Any], *, sync: bool = True) -> None:
        if self._fh is None:
            return
        self._fh.write(orjson.dumps(record) + b"\n")
        if sync:
            self._fh.flush()
            os.fsync(self._fh.fileno())


# Batch mode records every answer as one line; most readers skip them unparsed (they are most of the file).
ANSWER_PREFIX = b'{"event":"batch_line"'


def read_ledger(path: Path | None, *, answers: bool = False) -> list[dict[str, Any]]:
    """The ledger's records (without batch mode's answer lines unless `answers`); a line torn by a kill
    (the last one) is skipped."""
    return list(iter_ledger(path, answers=answers))


def iter_ledger(path: Path | None, *, answers: bool = True, only_answers: bool = False) -> Iterator[dict[str, Any]]:
    """The ledger's records one at a time, so a large ledger is never held in memory."""
    if path is None or not path.exists():
        return
    with open(path, "rb") as fh:
        for line in fh:
            is_answer = line.startswith(ANSWER_PREFIX)
            if (is_answer and not answers) or (only_answers and not is_answer):
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict) and "event" in record:
                yield record


@dataclass(frozen=True)
class FilterBudget:
    """Rejections a kind of run expects (a preference run's undecided pairs): judged against their own share."""

    causes: frozenset[str]
    max_share: float
    setting: str  # the config field of max_share, named when the budget stops the run


class RejectionBudget:
    """Stops a run whose items are rejected too often: then the config, not one item, is the problem.

    Rejections whose cause a `FilterBudget` names are counted apart, against its own share of finished items."""

    def __init__(
        self,
        max_share: float,
        rows: int = 0,
        rejected: int = 0,
        *,
        filtered: FilterBudget | None = None,
        earlier_causes: Iterable[str] = (),
    ) -> None:
        self.max_share = max_share
        self.rows = rows
        self.causes: Counter[str] = Counter()
        self.last_error: dict[str, str] = {}
        self.rejected = rejected
        self.filter = filtered
        self.filtered = 0
        if filtered is not None:  # what earlier sessions rejected: each counts against its own budget
            earlier = [cause in filtered.causes for cause in earlier_causes]
            self.filtered = sum(earlier)
            self.rejected -= self.filtered

    def row_done(self) -> None:
        self.rows += 1

    def reject(self, cause: str, error: str) -> None:
        """Count a rejection; raise RunAborted when the share of rejected items is over budget."""
        self.causes[cause] += 1
        self.last_error[cause] = error
        if self.filter is not None and cause in self.filter.causes:
            self.filtered += 1
            self._check(self.filtered, self.filter.max_share, self.filter.setting, self.filter.causes)
            return
        self.rejected += 1
        self._check(self.rejected, self.max_share, "error_budget.max_rejected_share", None)

    def _check(self, count: int, share: float, setting: str, causes: frozenset[str] | None) -> None:
        finished = self.rows + self.rejected + self.filtered
        if count >= MIN_REJECTIONS_JUDGED and count / finished > share:
            what = "were rejected" if causes is None else "had their pair dropped by the judge"
            cause = "the config, not one item, is" if causes is None else "the candidates or the judge are"
            raise RunAborted(
                f"stopping: {count} of {finished} items {what} ({count / finished:.0%}; {setting} is {share:.0%}), "
                f"so {cause} the problem. Top causes: {self.top_causes(only=causes)}"
            )

    def top_causes(self, count: int = 3, only: frozenset[str] | None = None) -> str:
        ranked = [(cause, n) for cause, n in self.causes.most_common() if only is None or cause in only]
        return "; ".join(f"{cause} ×{n} (last: {self.last_error[cause]})" for cause, n in ranked[:count])
