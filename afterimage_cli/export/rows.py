"""Rows as export sees them: the shape check (shared with evaluate, in rowcheck) and the verdict fields."""

from __future__ import annotations

from typing import Any

from ..rowcheck import pair_turn, row_problem, user_turn_indices

__all__ = ["Message", "Record", "Row", "row_grade", "row_pairs", "row_problem", "row_score"]

Row = dict[str, Any]
"""One parsed JSONL row that passed `row_problem`."""

Record = dict[str, Any]
"""One output row in a target format."""

Message = dict[str, Any]
"""One turn of a row: role, content, reasoning_content (and tool_calls, or a tool's tool_call_id and name)."""


def row_pairs(row: Row) -> list[tuple[list[Message], Message, Message]]:
    """The row's preference pairs in turn order, each (the conversation up to the user turn it answers, chosen,
    rejected): earlier_pairs (at_turn every), then chosen/rejected; empty for a row without a pair."""
    turns = row["conversations"]
    users = user_turn_indices(turns)
    pairs = [(turns[: users[p["turn"] - 1] + 1], p["chosen"], p["rejected"]) for p in row.get("earlier_pairs") or ()]
    if row.get("chosen") is not None and row.get("rejected") is not None:
        pairs.append((turns[: users[pair_turn(row) - 1] + 1], row["chosen"], row["rejected"]))
    return pairs


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
