"""Stream rows from a JSONL file or stdin, one line at a time, naming the line of every bad row."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..errors import InputError, UsageError
from .rows import Row, row_problem

STDIN = "-"
_READ_BUFFER = 1 << 20
_SKIP_EXAMPLES = 5


RowCheck = Callable[[Any], str | None]
"""Says what is wrong with a parsed row ('field.path: message'), or None."""


class RowReader:
    """Iterates the valid rows of one input; counts rows read and (with skip_invalid) rows skipped.

    Without ``skip_invalid`` the first bad line raises `InputError` ("INPUT:LINE: what is wrong").
    Blank lines are not rows and are not counted. ``check`` decides what a valid row is: export's
    `row_problem` by default; a command that accepts other rows passes its own.
    """

    def __init__(
        self, stream: BinaryIO, name: str, *, skip_invalid: bool = False, check: RowCheck = row_problem
    ) -> None:
        self.stream = stream
        self.name = name
        self.skip_invalid = skip_invalid
        self.check = check
        self.read = 0
        self.skipped = 0
        self.skip_examples: list[str] = []

    def __iter__(self) -> Iterator[Row]:
        loads, problem_of, decode_error = orjson.loads, self.check, orjson.JSONDecodeError
        lineno = blank = 0
        try:
            for lineno, line in enumerate(self.stream, 1):
                try:
                    row = loads(line)
                except decode_error as exc:
                    # Checked only after a failed parse: a strip() per line would cost every row.
                    if not line.strip():
                        blank += 1
                    else:
                        self._invalid(lineno, f"not JSON ({exc})")
                    continue
                problem = problem_of(row)
                if problem is not None:
                    self._invalid(lineno, problem)
                    continue
                yield row
        finally:
            self.read = lineno - blank

    def _invalid(self, lineno: int, problem: str) -> None:
        """Raise for a bad line, or count it (and keep the first few messages) when skipping."""
        message = f"{self.name}:{lineno}: {problem}"
        if not self.skip_invalid:
            raise InputError(f"{message} (--skip-invalid skips bad rows)")
        self.skipped += 1
        if len(self.skip_examples) < _SKIP_EXAMPLES:
            self.skip_examples.append(message)


@contextmanager
def open_rows(source: str, *, skip_invalid: bool = False, check: RowCheck = row_problem) -> Iterator[RowReader]:
    """A `RowReader` over a JSONL path, or over stdin for '-'."""
    if source == STDIN:
        yield RowReader(sys.stdin.buffer, "<stdin>", skip_invalid=skip_invalid, check=check)
        return
    path = Path(source)
    if path.is_dir():
        raise UsageError(f"{source}: is a directory; give a JSONL file or - for stdin")
    try:
        stream = open(path, "rb", buffering=_READ_BUFFER)
    except OSError as exc:
        raise UsageError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    with stream:
        yield RowReader(stream, source, skip_invalid=skip_invalid, check=check)
