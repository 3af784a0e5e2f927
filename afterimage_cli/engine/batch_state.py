"""Batch mode's durable state, kept in the run ledger: every batch submitted (its id, model, round and the
custom ids it carries) and every request's outcome once its batch ended. A re-run reads it back: finished
requests are answered from it (so each item's dialog replays up to where it stood), batches still running
at the provider are picked up by id, and no request is submitted twice."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ProviderError
from .ledger import iter_ledger

if TYPE_CHECKING:
    from ..providers.batch import BatchInfo, LineResult
    from .ledger import RunLedger


@dataclass
class SubmittedBatch:
    """A batch this run submitted, as the ledger recorded it."""

    id: str
    model: str
    round: int
    custom_ids: list[str]
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    """A request's recorded answer: the response body (and its headers), or the error its line got."""

    body: dict[str, Any] | None
    headers: dict[str, str]
    error: ProviderError | None
    online: bool = False  # answered online (the tail of a round), so priced at the online rate


def item_of(custom_id: str) -> int | None:
    """The item number a custom id (`<item>-<attempt>-<digest>-<occurrence>`) belongs to."""
    head = custom_id.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def error_record(error: ProviderError) -> dict[str, Any]:
    return {
        "message": str(error),
        "kind": error.kind,
        "retryable": error.retryable,
        "status": error.status_code,
    }


def error_from(record: dict[str, Any]) -> ProviderError:
    return ProviderError(
        str(record.get("message") or "batch request failed"),
        retryable=bool(record.get("retryable")),
        kind=str(record.get("kind") or "error"),
        status_code=record.get("status"),
    )


class BatchState:
    """What the ledger says about this run's batches, and the writer of what happens to them next."""

    def __init__(self) -> None:
        self.ledger: RunLedger | None = None
        self.outcomes: dict[str, Outcome] = {}
        self.pending: dict[str, SubmittedBatch] = {}  # batch id → batch not yet ended (as far as we know)
        self.unconfirmed: list[SubmittedBatch] = []  # submissions a crash may have cut before their id was recorded
        self.rounds = 0
        self.batches_submitted = 0
        self.requests_submitted = 0
        self._batch_of: dict[str, str] = {}

    def load(self, ledger: RunLedger, finished: Callable[[int], bool]) -> None:
        """Take in what earlier sessions recorded (the ledger is open); answers of items whose rows are
        written (`finished`) are left out, no resume asks for them."""
        self.ledger = ledger
        answers = iter_ledger(ledger.path, only_answers=True) if ledger.previous else iter(())
        self._read(itertools.chain(ledger.previous, answers), finished)

    def _read(self, records: Iterable[dict[str, Any]], finished: Callable[[int], bool]) -> None:
        submitting: dict[str, SubmittedBatch] = {}
        for record in records:
            event = record.get("event")
            if event == "batch_submitting":
                batch = SubmittedBatch(
                    "", record["model"], int(record["round"]), list(record["custom_ids"]), dict(record["metadata"])
                )
                submitting[_meta_key(batch.metadata)] = batch
            elif event == "batch_submitted":
                batch = SubmittedBatch(
                    record["id"],
                    record["model"],
                    int(record["round"]),
                    list(record["custom_ids"]),
                    dict(record.get("metadata") or {}),
                )
                submitting.pop(_meta_key(batch.metadata), None)
                self.pending[batch.id] = batch
                self.rounds = max(self.rounds, batch.round)
            elif event == "batch_line":
                custom_id = record["custom_id"]
                item = item_of(custom_id)
                if item is not None and finished(item):
                    continue  # its row is written: a resume never asks again
                error = record.get("error")
                self.outcomes[custom_id] = Outcome(
                    record.get("body"),
                    dict(record.get("headers") or {}),
                    error_from(error) if error else None,
                    bool(record.get("online")),
                )
            elif event == "batch_ended":
                self.pending.pop(record["id"], None)
        self.unconfirmed = list(submitting.values())
        for batch in self.pending.values():
            for custom_id in batch.custom_ids:
                if custom_id not in self.outcomes:
                    self._batch_of[custom_id] = batch.id

    # --- reading ------------------------------------------------------------------------------------

    def take(self, custom_id: str) -> Outcome | None:
        """The recorded outcome of a request (once: an identical later request is another call)."""
        return self.outcomes.pop(custom_id, None)

    def batch_of(self, custom_id: str) -> str | None:
        """The id of a batch still running that carries this request."""
        return self._batch_of.get(custom_id)

    # --- writing ------------------------------------------------------------------------------------

    def submitting(self, model: str, round_: int, metadata: dict[str, str], custom_ids: list[str]) -> None:
        """Before a submission: what it carries, so a crash before its id is recorded can find it again."""
        self._write(
            {
                "event": "batch_submitting",
                "model": model,
                "round": round_,
                "metadata": metadata,
                "custom_ids": custom_ids,
            }
        )

    def submitted(self, batch: SubmittedBatch, *, adopted: bool = False) -> None:
        self.pending[batch.id] = batch
        for custom_id in batch.custom_ids:
            self._batch_of[custom_id] = batch.id
        if not adopted:
            self.batches_submitted += 1
            self.requests_submitted += len(batch.custom_ids)
        self._write(
            {
                "event": "batch_submitted",
                "id": batch.id,
                "model": batch.model,
                "round": batch.round,
                "metadata": batch.metadata,
                "custom_ids": batch.custom_ids,
                "adopted": adopted,
            }
        )

    def status(self, info: BatchInfo) -> None:
        """A batch moved on (validating → in_progress → finalizing), with its counts then."""
        self._write(
            {
                "event": "batch_status",
                "id": info.id,
                "status": info.status,
                "completed": info.completed,
                "failed": info.failed,
            }
        )

    def ended(self, batch_id: str, info: BatchInfo, results: dict[str, LineResult]) -> None:
        """A batch ended: every line it answered is recorded (one fsync for all), then the end itself."""
        for custom_id, line in results.items():
            self.outcomes[custom_id] = Outcome(line.body, dict(line.headers), line.error)
            self._write(_line_record(custom_id, line.body, line.headers, line.error), sync=False)
        self._write(
            {
                "event": "batch_ended",
                "id": batch_id,
                "status": info.status,
                "total": info.total,
                "completed": info.completed,
                "failed": info.failed,
                "answered": len(results),
            }
        )
        batch = self.pending.pop(batch_id, None)
        for custom_id in batch.custom_ids if batch else ():
            self._batch_of.pop(custom_id, None)

    def answered_online(
        self, custom_id: str, body: dict[str, Any] | None, headers: dict[str, str], error: ProviderError | None
    ) -> None:
        """A request of a round's tail, sent online instead: recorded like a batch line."""
        self._write({**_line_record(custom_id, body, headers, error), "online": True})

    def _write(self, record: dict[str, Any], *, sync: bool = True) -> None:
        if self.ledger is not None:
            self.ledger.record(record, sync=sync)


def _line_record(
    custom_id: str, body: dict[str, Any] | None, headers: dict[str, str], error: ProviderError | None
) -> dict[str, Any]:
    record: dict[str, Any] = {"event": "batch_line", "custom_id": custom_id}
    if error is not None:
        record["error"] = error_record(error)
    else:
        record["body"] = body
        if headers:
            record["headers"] = headers
    return record


def _meta_key(metadata: dict[str, str]) -> str:
    return "|".join(f"{k}={metadata[k]}" for k in sorted(metadata))
