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
from ..export.rows import _json_type
from ..types import GRADES

_ROLES = ("user", "assistant")
_OPTIONAL_TEXT = ("instruction_context", "response_context", "persona")


def conversation_problem(row: Any) -> str | None:
    """What makes a parsed row unusable, as 'field.path: message', or None."""
    if type(row) is not dict:
        return f"expected a JSON object, got {_json_type(row)}"
    turns = row.get("conversations")
    if type(turns) is not list or not turns:
        return "conversations: expected a non-empty list of turns"
    for index, turn in enumerate(turns):
        if type(turn) is not dict:
            return f"conversations[{index}]: expected an object with role and content, got {_json_type(turn)}"
        if turn.get("role") not in _ROLES:
            return f"conversations[{index}].role: expected 'user' or 'assistant', got {turn.get('role')!r}"
        if type(turn.get("content")) is not str:
            return f"conversations[{index}].content: expected a string, got {_json_type(turn.get('content'))}"
        reasoning = turn.get("reasoning_content")
        if reasoning is not None and type(reasoning) is not str:
            return f"conversations[{index}].reasoning_content: expected a string or null, got {_json_type(reasoning)}"
    return _fields_problem(row)


def _fields_problem(row: dict[str, Any]) -> str | None:
    """Check the optional top-level fields evaluate reads or writes."""
    metadata = row.get("metadata")
    if metadata is not None and type(metadata) is not dict:
        return f"metadata: expected an object, got {_json_type(metadata)}"
    for key in _OPTIONAL_TEXT:
        value = row.get(key)
        if value is not None and type(value) is not str:
            return f"{key}: expected a string or null, got {_json_type(value)}"
    row_id = row.get("id")
    if row_id is not None and type(row_id) not in (str, int):
        return f"id: expected a string or integer, got {_json_type(row_id)}"
    score = row.get("final_score")
    if score is not None and type(score) not in (float, int):
        return f"final_score: expected a number or null, got {_json_type(score)}"
    evaluation = row.get("evaluation")
    if evaluation is not None:
        if type(evaluation) is not dict:
            return f"evaluation: expected an object or null, got {_json_type(evaluation)}"
        grade = evaluation.get("overall_grade")
        if grade is not None and grade not in GRADES:
            return f"evaluation.overall_grade: expected one of {', '.join(GRADES)}, got {grade!r}"
    return None


@contextmanager
def open_conversations(source: str, *, skip_invalid: bool = False) -> Iterator[RowReader]:
    """Export's RowReader over a JSONL path (or stdin for '-'), checking rows with `conversation_problem`."""
    with open_rows(source, skip_invalid=skip_invalid, check=conversation_problem) as reader:
        yield reader
