"""A row's shape, checked with plain code (pydantic per row would halve export's throughput).

Rows follow seeds/jsonl-schema.txt (``afterimage_cli.types.ConversationRow``). Only the fields the
commands read are checked; everything else passes through untouched, so rows written by the published
afterimage (no ``id``, no ``evaluation``, ``final_score`` absent or null, no ``reasoning_content``)
load as well as our own.
"""

from __future__ import annotations

from typing import Any

from .types import GRADES

_NEXT_ROLE = {"user": "assistant", "assistant": "user"}
_GRADE_LIST = ", ".join(GRADES)
_OPTIONAL_TEXT = ("instruction_context", "response_context", "persona")


def row_problem(row: Any, *, strict_turns: bool = True) -> str | None:
    """What is wrong with a parsed row, as 'field.path: message', or None.

    `strict_turns` also demands user/assistant alternation from a user turn to an assistant turn
    (export needs it); without it, broken alternation is left for the caller to report as a metric.
    """
    if type(row) is not dict:
        return f"expected a JSON object, got {json_type(row)}"
    turns = row.get("conversations")
    if type(turns) is not list or not turns:
        return "conversations: expected a non-empty list of turns"
    expected = "user"
    for index, turn in enumerate(turns):
        problem = _turn_problem(turn, expected if strict_turns else None)
        if problem is not None:
            return f"conversations[{index}]{problem}"
        expected = _NEXT_ROLE[expected]
    if strict_turns and expected == "assistant":
        return f"conversations[{len(turns) - 1}]: the last turn is a user turn with no assistant answer"
    return _fields_problem(row)


def _turn_problem(turn: Any, expected: str | None) -> str | None:
    """Check one turn; the message starts with the sub-path ('.role: …') or ': …' for the turn itself."""
    if type(turn) is not dict:
        return f": expected an object with role and content, got {json_type(turn)}"
    role = turn.get("role")
    if role not in _NEXT_ROLE:
        return f".role: expected 'user' or 'assistant', got {role!r}"
    if expected is not None and role != expected:
        return f".role: expected {expected!r} (turns alternate user/assistant, starting with user), got {role!r}"
    if type(turn.get("content")) is not str:
        return f".content: expected a string, got {json_type(turn.get('content'))}"
    reasoning = turn.get("reasoning_content")
    if reasoning is not None and type(reasoning) is not str:
        return f".reasoning_content: expected a string or null, got {json_type(reasoning)}"
    return None


def _fields_problem(row: dict[str, Any]) -> str | None:
    """Check the optional top-level fields the commands read or write."""
    metadata = row.get("metadata")
    if metadata is not None and type(metadata) is not dict:
        return f"metadata: expected an object, got {json_type(metadata)}"
    for key in _OPTIONAL_TEXT:
        value = row.get(key)
        if value is not None and type(value) is not str:
            return f"{key}: expected a string or null, got {json_type(value)}"
    row_id = row.get("id")
    if row_id is not None and type(row_id) not in (str, int):
        return f"id: expected a string or integer, got {json_type(row_id)}"
    score = row.get("final_score")
    if score is not None and type(score) not in (float, int):
        return f"final_score: expected a number or null, got {json_type(score)}"
    if "chosen" in row or "rejected" in row or "earlier_pairs" in row:
        problem = _pairs_problem(row)
        if problem is not None:
            return problem
    evaluation = row.get("evaluation")
    if evaluation is None:
        return None
    if type(evaluation) is not dict:
        return f"evaluation: expected an object or null, got {json_type(evaluation)}"
    grade = evaluation.get("overall_grade")
    if grade is not None and grade not in GRADES:
        return f"evaluation.overall_grade: expected one of {_GRADE_LIST}, got {grade!r}"
    return None


def pair_turn(row: dict[str, Any]) -> int:
    """The user turn (1-based) a row's chosen/rejected pair answers: metadata.preference.turn, else the last."""
    metadata = row.get("metadata")
    preference = metadata.get("preference") if type(metadata) is dict else None
    turn = preference.get("turn") if type(preference) is dict else None
    return turn if type(turn) is int else len(row["conversations"]) // 2


def _pairs_problem(row: dict[str, Any]) -> str | None:
    """Check a preference row's pairs: assistant answers, at a turn the conversation has."""
    turns = len(row["conversations"]) // 2
    problem = _pair_problem(row, "", pair_turn(row), turns)
    if problem is not None:
        return problem
    earlier = row.get("earlier_pairs")
    if earlier is None:
        return None
    if type(earlier) is not list:
        return f"earlier_pairs: expected a list, got {json_type(earlier)}"
    for index, pair in enumerate(earlier):
        if type(pair) is not dict:
            return f"earlier_pairs[{index}]: expected an object with turn, chosen and rejected, got {json_type(pair)}"
        problem = _pair_problem(pair, f"earlier_pairs[{index}].", pair.get("turn"), turns)
        if problem is not None:
            return problem
    return None


def _pair_problem(holder: dict[str, Any], prefix: str, turn: Any, turns: int) -> str | None:
    if type(turn) is not int or not 1 <= turn <= turns:
        where = f"{prefix}turn" if prefix else "metadata.preference.turn"
        return f"{where}: expected a user turn of the conversation (1-{turns}), got {turn!r}"
    for side in ("chosen", "rejected"):
        answer = holder.get(side)
        if type(answer) is not dict:
            return f"{prefix}{side}: expected an assistant message, got {json_type(answer)}"
        if answer.get("role") != "assistant":
            return f"{prefix}{side}.role: expected 'assistant', got {answer.get('role')!r}"
        problem = _turn_problem(answer, None)
        if problem is not None:
            return f"{prefix}{side}{problem}"
    return None


def json_type(value: Any) -> str:
    """Name a parsed JSON value's type the way JSON does."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
