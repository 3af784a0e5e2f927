"""Keep only rows whose judge's verdict reaches a minimum final_score and/or overall grade, and (with
--drop-unclean) whose every turn passes the turn hygiene checks."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UsageError
from ..registry import did_you_mean
from ..types import GRADES
from .rows import Row, row_grade, row_score

RowFilter = Callable[[Row], bool]

# GRADES runs best → worst, so a lower rank is a better grade.
_GRADE_RANK: dict[str, int] = {grade: rank for rank, grade in enumerate(GRADES)}


def make_row_filter(
    min_score: float | None = None, min_grade: str | None = None, drop_unclean: bool = False
) -> RowFilter | None:
    """A predicate keeping rows at or above both minimums (unevaluated rows fail either) and, with
    `drop_unclean`, without a turn that fails a hygiene check; None keeps all."""
    if min_score is not None and not 0.0 <= min_score <= 1.0:
        raise UsageError(f"--min-score {min_score} is outside 0..1 (final_score is a 0-1 composite)")
    if min_grade is not None and min_grade not in _GRADE_RANK:
        raise UsageError(
            f"--min-grade {min_grade!r}{did_you_mean(min_grade, list(GRADES))} is not a grade; "
            f"grades from best to worst: {', '.join(GRADES)}"
        )
    if min_score is None and min_grade is None and not drop_unclean:
        return None
    max_rank = None if min_grade is None else _GRADE_RANK[min_grade]
    clean = _clean_rows() if drop_unclean else None

    def keep(row: Row) -> bool:
        if clean is not None and not clean(row):
            return False
        if min_score is not None:
            score = row_score(row)
            if score is None or score < min_score:
                return False
        if max_rank is not None:
            grade = row_grade(row)
            if grade is None or _GRADE_RANK[grade] > max_rank:
                return False
        return True

    return keep


def _clean_rows() -> RowFilter:
    """Whether a row passes every turn hygiene check at its default settings (see README, Turn hygiene)."""
    from ..config import HygieneConfig
    from ..hygiene import TurnChecker

    checker = TurnChecker.from_config(HygieneConfig())
    assert checker is not None

    def clean(row: Row) -> bool:
        return not checker.row(row)

    return clean
