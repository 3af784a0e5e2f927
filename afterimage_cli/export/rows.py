"""Rows as export sees them: the shape check (shared with evaluate, in rowcheck) and the verdict fields."""

from __future__ import annotations

from typing import Any

from ..rowcheck import row_problem

__all__ = ["Record", "Row", "row_grade", "row_problem", "row_score"]

Row = dict[str, Any]
"""One parsed JSONL row that passed `row_problem`."""

Record = dict[str, Any]
"""One output row in a target format."""


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
