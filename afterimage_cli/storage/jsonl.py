"""JSONL storage: one orjson row per line, flushed per row and fsynced every second and at close;
resumable after a crash or a power loss."""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

import orjson

from ..errors import DamagedOutputError, InputError, OutputConflictError
from ..providers.logging import warn
from .base import BaseStorage, Row, row_fingerprint

# An fsync costs ~2 ms on ext4 (130x a flush; see README "Storage"): once a second bounds what a power
# loss can take to a second of rows, at a cost no run notices.
FSYNC_INTERVAL_S = 1.0
_SCAN_CHUNK = 1 << 20


def resumable_rows(path: Path) -> Iterator[tuple[int, Row]]:
    """(line number, row) of an output being resumed; a bad line raises InputError naming it.

    The torn tail an interruption leaves is cut off: a last line without its newline (a kill), or a
    run of NUL bytes to the end of the file, maybe after the start of a row (what ext4 leaves of the
    blocks it had not written at a power loss). It is cut only after every line before it was read as
    a row, so a wrong path never loses a byte of someone else's file. NUL bytes followed by more data
    are damage in the middle: DamagedOutputError, and the file is left as it is.
    """
    torn_at: int | None = None
    nul_bytes = False
    with open(path, "rb") as fh:
        offset = 0
        for number, line in enumerate(fh, 1):
            nul = line.find(b"\0")
            if nul >= 0 or not line.endswith(b"\n"):
                start = line[: nul if nul >= 0 else len(line)].lstrip()
                if start and not start.startswith(b"{"):
                    raise InputError(f"{path}:{number}: not an afterimage row")
                if nul >= 0:
                    _check_nul_tail(path, number, line[nul:], fh)
                    nul_bytes = True
                torn_at = offset
                break
            offset += len(line)
            row = _parse_row(path, number, line)
            if row is not None:
                yield number, row
    if torn_at is not None:
        with open(path, "rb+") as fh:
            dropped = fh.seek(0, os.SEEK_END) - torn_at
            fh.truncate(torn_at)
        what = (
            f"a tail of {dropped:,} bytes ending in NUL bytes (blocks a power loss left unwritten)"
            if nul_bytes
            else "a torn last line left by an interrupted run"
        )
        warn(f"{path}: dropped {what}; every complete row before it is kept")


def lock_for_writing(fh: IO[bytes], path: Path) -> None:
    """Hold an exclusive lock on an output while this process writes it (released when `fh` closes).

    Two runs appending to one file would interleave and write rows twice; the second one is refused.
    """
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise OutputConflictError(
            f"{path} is being written by another afterimage run: wait for it, or write to another -o path"
        ) from None


def _check_nul_tail(path: Path, number: int, rest_of_line: bytes, fh: BinaryIO) -> None:
    """Raise DamagedOutputError unless nothing but NUL bytes and line breaks follow line `number`'s first NUL."""
    chunk = rest_of_line
    while chunk:
        if chunk.strip(b"\0\n"):
            raise DamagedOutputError(
                f"{path}:{number}: a region of NUL bytes (blocks a crash or power loss never wrote) is followed "
                f"by more data, so it is not a torn tail that can be cut; lines before {number} hold complete rows. "
                f"The file is left unchanged: move it aside (mv {path} {path}.damaged), keep its complete rows "
                f"(grep -a -v -P '\\x00' {path}.damaged > {path}), and re-run the same command to make the rest"
            )
        chunk = fh.read(_SCAN_CHUNK)


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

    def __init__(
        self, path: str | Path = "out/conversations.jsonl", *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.to_stdout = str(path) == "-"
        self.path = Path(path)
        self._fh: IO[bytes] | None = None
        self._clock = clock
        self._synced_at = 0.0

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
            lock_for_writing(self._fh, self.path)
        except OutputConflictError:
            self.close()
            raise
        self._synced_at = self._clock()
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
        except DamagedOutputError:
            raise  # its own advice: --overwrite would destroy the complete rows
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
        if not self.to_stdout and self._clock() - self._synced_at >= FSYNC_INTERVAL_S:
            self._sync()

    def _sync(self) -> None:
        assert self._fh is not None
        os.fsync(self._fh.fileno())
        self._synced_at = self._clock()

    def close(self) -> None:
        if self._fh is not None and not self.to_stdout:
            try:
                self._fh.flush()
                self._sync()  # "written" means on disk, not in the page cache a power loss empties
            finally:
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
