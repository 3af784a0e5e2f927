"""Input rows for evaluate: export's streaming RowReader with a shape check that lets odd turns through.

Export rejects a conversation whose turns do not alternate, because no training format can hold it.
Evaluate must accept it and report it (the `broken_alternation` issue), so only the structure is
checked here: what makes a row unreadable, not what makes it a poor example.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..export.reader import RowReader, open_rows
from ..rowcheck import row_problem


def conversation_problem(row: Any) -> str | None:
    """What makes a parsed row unusable, as 'field.path: message', or None."""
    return row_problem(row, strict_turns=False)


@contextmanager
def open_conversations(source: str, *, skip_invalid: bool = False) -> Iterator[RowReader]:
    """Export's RowReader over a JSONL path (or stdin for '-'), checking rows with `conversation_problem`."""
    with open_rows(source, skip_invalid=skip_invalid, check=conversation_problem) as reader:
        yield reader
