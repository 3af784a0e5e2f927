"""Live progress of an evaluate run on stderr (Rich), throttled so the offline path stays fast."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

REFRESH_SECONDS = 0.25


def count_lines(source: str) -> int | None:
    """Lines in an input file (the progress total), or None for stdin."""
    if source == "-":
        return None
    try:
        with open(Path(source), "rb") as fh:
            return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return None


class EvaluateProgress:
    """A progress bar over input rows; `tick` is cheap and redraws at most every REFRESH_SECONDS."""

    def __init__(self, console: Console, total: int | None, status: Callable[[], str]) -> None:
        self.console = console
        self.total = total
        self.status = status
        self.done = 0
        self._progress: Progress | None = None
        self._task: Any = None
        self._next_refresh = 0.0

    def tick(self, rows: int = 1) -> None:
        self.done += rows
        if self._progress is not None and time.monotonic() >= self._next_refresh:
            self._refresh()

    def _refresh(self) -> None:
        assert self._progress is not None
        self._next_refresh = time.monotonic() + REFRESH_SECONDS
        self._progress.update(self._task, completed=self.done, status=self.status())

    @contextmanager
    def display(self, quiet: bool) -> Iterator[EvaluateProgress]:
        """Show the bar while the body runs (nothing when quiet)."""
        if quiet:
            yield self
            return
        progress = Progress(
            TextColumn("[bold]evaluating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            transient=False,
            refresh_per_second=4,
        )
        self._progress = progress
        self._task = progress.add_task("evaluate", total=self.total, status="")
        with progress:
            try:
                yield self
            finally:
                self._refresh()
                self._progress = None
