"""The input row's shape, checked with plain code: pydantic per row would halve export's throughput.

Rows follow seeds/jsonl-schema.txt (``afterimage_cli.types.ConversationRow``). Only the fields export
reads are checked; everything else passes through untouched, so rows written by the published
afterimage (no ``id``, no ``evaluation``, ``final_score`` absent or null, no ``reasoning_content``)
load as well as our own.
"""

from __future__ import annotations

from typing import Any

from ..types import GRADES

Row = dict[str, Any]
"""One parsed JSONL row that passed `row_problem`."""

Record = dict[str, Any]
"""One output row in a target format."""

_NEXT_ROLE = {"user": "assistant", "assistant": "user"}
_GRADE_LIST = ", ".join(GRADES)


def row_problem(row: Any) -> str | None:
    """Return what is wrong with a parsed row as 'field.path: message', or None when export can use it."""
    if type(row) is not dict:
        return f"expected a JSON object, got {_json_type(row)}"
    turns = row.get("conversations")
    if type(turns) is not list or not turns:
        return "conversations: expected a non-empty list of turns"
    expected = "user"
    for index, turn in enumerate(turns):
        problem = _turn_problem(turn, expected)
        if problem is not None:
            return f"conversations[{index}]{problem}"
        expected = _NEXT_ROLE[expected]
    if expected == "assistant":
        return f"conversations[{len(turns) - 1}]: the last turn is a user turn with no assistant answer"
    return _metadata_problem(row)


def _turn_problem(turn: Any, expected: str) -> str | None:
    """Check one turn; the message starts with the sub-path ('.role: …') or ': …' for the turn itself."""
    if type(turn) is not dict:
        return f": expected an object with role and content, got {_json_type(turn)}"
    role = turn.get("role")
    if role != expected:
        if role not in _NEXT_ROLE:
            return f".role: expected 'user' or 'assistant', got {role!r}"
        return f".role: expected {expected!r} (turns alternate user/assistant, starting with user), got {role!r}"
    if type(turn.get("content")) is not str:
        return f".content: expected a string, got {_json_type(turn.get('content'))}"
    reasoning = turn.get("reasoning_content")
    if reasoning is not None and type(reasoning) is not str:
        return f".reasoning_content: expected a string or null, got {_json_type(reasoning)}"
    return None


def _metadata_problem(row: Row) -> str | None:
    """Check the optional fields export reads: id, final_score, evaluation.overall_grade."""
    row_id = row.get("id")
    if row_id is not None and type(row_id) not in (str, int):
        return f"id: expected a string or integer, got {_json_type(row_id)}"
    score = row.get("final_score")
    if score is not None and type(score) not in (float, int):
        return f"final_score: expected a number or null, got {_json_type(score)}"
    evaluation = row.get("evaluation")
    if evaluation is None:
        return None
    if type(evaluation) is not dict:
        return f"evaluation: expected an object or null, got {_json_type(evaluation)}"
    grade = evaluation.get("overall_grade")
    if grade is not None and grade not in GRADES:
        return f"evaluation.overall_grade: expected one of {_GRADE_LIST}, got {grade!r}"
    return None


def row_score(row: Row) -> float | None:
    """The row's final_score, or None when the row was not evaluated.

    The published afterimage serializes unevaluated rows with its model default ``final_score: 0.0``
    and ``evaluation: null``; that 0.0 is not a verdict, so it must not make a row "rejected" in DPO.
    """
    score = row.get("final_score")
    if score is None or (score == 0 and row.get("evaluation") is None):
        return None
    return float(score)


def row_grade(row: Row) -> str | None:
    """The judge's overall grade, or None when the row was not evaluated."""
    evaluation = row.get("evaluation")
    return evaluation.get("overall_grade") if evaluation else None


def _json_type(value: Any) -> str:
    """Name a parsed JSON value's type the way JSON does."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
