"""JSONL storage: one orjson row per line, flushed per row; resumable after a crash."""

from __future__ import annotations

import fcntl
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from ..errors import InputError, OutputConflictError
from ..providers.logging import warn
from .base import BaseStorage, Row, row_fingerprint


def resumable_rows(path: Path) -> Iterator[tuple[int, Row]]:
    """(line number, row) of an output being resumed; a bad line raises InputError naming it.

    A last line without its newline is a row torn by a kill: it is cut off, but only after every other
    line was read as a row, so a wrong path never loses a byte of someone else's file.
    """
    torn_at: int | None = None
    with open(path, "rb") as fh:
        offset = 0
        for number, line in enumerate(fh, 1):
            if not line.endswith(b"\n"):
                if not line.lstrip().startswith(b"{"):
                    raise InputError(f"{path}:{number}: not an afterimage row")
                torn_at = offset
                break
            offset += len(line)
            row = _parse_row(path, number, line)
            if row is not None:
                yield number, row
    if torn_at is not None:
        with open(path, "rb+") as fh:
            fh.truncate(torn_at)
        warn(f"{path}: dropped a torn last line left by an interrupted run")


def iter_rows(path: Path) -> Iterator[tuple[int, Row]]:
    """(line number, row) for each non-empty line; a bad line raises InputError naming it."""
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            row = _parse_row(path, number, line)
            if row is not None:
                yield number, row


def _parse_row(path: Path, number: int, line: bytes) -> Row | None:
    """One line as a row (None for a blank line); InputError names the file and line otherwise."""
    if not line.strip():
        return None
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise InputError(f"{path}:{number}: not valid JSON") from None
    if not isinstance(row, dict):
        raise InputError(f"{path}:{number}: a row must be a JSON object")
    return row


class JSONLStorage(BaseStorage):
    """Rows in a JSONL file ('-' streams to stdout); documents in a sibling `.documents.jsonl`."""

    def __init__(self, path: str | Path = "out/conversations.jsonl") -> None:
        self.to_stdout = str(path) == "-"
        self.path = Path(path)
        self._fh: IO[bytes] | None = None

    @property
    def documents_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".documents.jsonl")

    def open_run(self, fingerprint: str, *, overwrite: bool = False) -> set[str]:
        if self.to_stdout:
            self._fh = sys.stdout.buffer
            self.rows_on_open = 0
            return set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab")
        try:
            # Two runs appending to one file would write every row twice; the second one is refused.
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise OutputConflictError(
                f"{self.path} is being written by another afterimage run: wait for it, or write to another -o path"
            ) from None
        if overwrite:
            self._fh.truncate(0)
            self.rows_on_open = 0
            return set()
        try:
            existing = self._scan(fingerprint)
        except BaseException:
            self.close()
            raise
        self.rows_on_open = len(existing)
        return existing

    def _scan(self, fingerprint: str) -> set[str]:
        """The ids already written; refuses a file that holds anything but this run's rows."""
        existing: set[str] = set()
        try:
            for number, row in resumable_rows(self.path):
                if row_fingerprint(row) != fingerprint:
                    raise OutputConflictError(
                        f"{self.path}:{number} holds a row of a different run (the config, prompts, models or "
                        "seed changed): pass --overwrite to replace the file, or write to another -o path"
                    )
                existing.add(str(row.get("id")))
        except InputError as exc:
            raise OutputConflictError(
                f"{exc}: pass --overwrite to replace the file, or write to another -o path"
            ) from None
        return existing

    def append(self, row: Row) -> None:
        if self._fh is None:
            raise RuntimeError("open_run() must be called before append()")
        self._fh.write(orjson.dumps(row) + b"\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None and not self.to_stdout:
            self._fh.close()
        self._fh = None

    def load_conversations(self, limit: int | None = None, offset: int | None = None) -> list[Row]:
        return _slice((row for _, row in iter_rows(self.path)), limit, offset)

    def save_documents(self, documents: Iterable[Row]) -> None:
        self.documents_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.documents_path, "ab") as fh:
            for doc in documents:
                fh.write(orjson.dumps(doc) + b"\n")

    def load_documents(self, limit: int | None = None, offset: int | None = None) -> list[Row]:
        if not self.documents_path.exists():
            return []
        return _slice((row for _, row in iter_rows(self.documents_path)), limit, offset)


def _slice(rows: Iterator[Any], limit: int | None, offset: int | None) -> list[Row]:
    out: list[Row] = []
    for index, row in enumerate(rows):
        if offset and index < offset:
            continue
        if limit is not None and len(out) >= limit:
            break
        out.append(row)
    return out
