"""The set-wide profile of a large file, counted by a second process while this one builds the catalog.

Both processes parse every row, which costs CPU, but the profile and the catalog then take a core each:
on two idle cores a 100k-row page is written about a quarter sooner. Small files, stdin and one-core
machines are counted inline, since a process costs ~0.3 s to start. The second process is spawned, not
forked: forking a process that may run other threads (a library caller's) can deadlock the child.
"""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.connection import Connection
from typing import Any

from ..dataset_profile import DatasetProfile
from ..export.reader import STDIN, RowReader
from ..rowshape import view_row_problem

PARALLEL_FROM_BYTES = 32 * 2**20


def count_rows(source: str, limit: int | None = None) -> DatasetProfile:
    """The profile of the first `limit` valid rows of a file (all of them by default), bad rows skipped
    (the catalog's reader has already stopped at them, or counted them, as the user asked)."""
    profile = DatasetProfile()
    if limit == 0:
        return profile
    with open(source, "rb") as stream:
        for row in RowReader(stream, source, skip_invalid=True, check=view_row_problem):
            profile.add(row)
            if profile.rows == limit:
                break
    return profile


def _count_into(source: str, sender: Connection) -> None:
    try:
        sender.send(count_rows(source))
    finally:
        sender.close()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class SideProfile:
    """Starts counting `source` in another process when that pays (`active`); `result` collects it."""

    def __init__(self, source: str, min_bytes: int | None = None) -> None:
        self.source = source
        self._process: Any = None
        self._receiver: Connection | None = None
        if source == STDIN or _cores() < 2:
            return
        try:
            if os.stat(source).st_size < (PARALLEL_FROM_BYTES if min_bytes is None else min_bytes):
                return
        except OSError:
            return  # the catalog's reader names the problem
        context = multiprocessing.get_context("spawn")
        self._receiver, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_count_into, args=(source, sender), daemon=True)
        self._process.start()
        sender.close()

    @property
    def active(self) -> bool:
        return self._process is not None

    def result(self, rows: int) -> DatasetProfile:
        """The profile of the `rows` valid rows the catalog read: the other process's count when it counted
        exactly those (a file still being written may have grown since), else counted here again."""
        profile = None
        if self._receiver is not None:
            try:
                profile = self._receiver.recv()
            except (EOFError, OSError):
                profile = None  # the process died (killed, out of memory): count here
        self.close()
        if isinstance(profile, DatasetProfile) and profile.rows == rows:
            return profile
        return count_rows(self.source, rows)

    def close(self) -> None:
        """Stop the other process (the catalog failed, or its answer is in)."""
        if self._receiver is not None:
            self._receiver.close()
            self._receiver = None
        if self._process is not None:
            if self._process.is_alive():
                self._process.terminate()
            self._process.join()
            self._process = None
