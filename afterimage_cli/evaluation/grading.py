"""From per-criterion scores to final_score and a grade: weights, applicability and thresholds.

Which criteria apply: `grounding` asks whether the answers stay within the context the row was
generated from, so it is judged only when the row has an instruction_context or response_context
(the `context_criteria` setting). Relevance, coherence, factuality and helpfulness are judged against
the user's own messages and the judge's knowledge, so they always apply. A criterion that does not
apply is stored with `applicable: false` and no score, and final_score is the weighted mean of the
applicable criteria with weights renormalised over them — never a free 1.0 that inflates the score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..config import EvaluationConfig, GradeThresholds
from ..types import GRADES, NO_RETRIEVAL_CONTEXT, Grade

CRITERIA: tuple[str, ...] = ("coherence", "factuality", "grounding", "helpfulness", "relevance")
NOT_APPLICABLE_FEEDBACK = "not applicable: the row has no context to be grounded in"


def row_context(row: Mapping[str, Any]) -> str:
    """The context a row's answers should rest on: instruction and response contexts, deduplicated."""
    parts: list[str] = []
    for key in ("instruction_context", "response_context"):
        value = row.get(key)
        if isinstance(value, str):
            text = value.strip()
            if text and text != NO_RETRIEVAL_CONTEXT and text not in parts:
                parts.append(text)
    return "\n\n".join(parts)


def applicable_criteria(has_context: bool, context_criteria: Sequence[str]) -> tuple[str, ...]:
    """The criteria the judge is asked about for a row with or without a context."""
    return CRITERIA if has_context else tuple(c for c in CRITERIA if c not in context_criteria)


def final_score(scores: Mapping[str, float], weights: Mapping[Any, float]) -> float | None:
    """Weighted mean of the applicable scores, weights renormalised over them; None if none weigh."""
    total = sum(weights.get(name, 0.0) for name in scores)
    if total <= 0:
        return None
    return round(sum(score * weights.get(name, 0.0) for name, score in scores.items()) / total, 4)


def grade_for(score: float, thresholds: GradeThresholds) -> Grade:
    """The highest grade whose threshold the score reaches."""
    if score >= thresholds.perfect:
        return "perfect"
    if score >= thresholds.good:
        return "good"
    if score >= thresholds.needs_improvement:
        return "needs_improvement"
    if score >= thresholds.bad:
        return "bad"
    return "not_acceptable"


def grade_rank(grade: str | None) -> int:
    """0 for perfect … 4 for not_acceptable; 5 for no grade (sorts last)."""
    return GRADES.index(grade) if grade in GRADES else len(GRADES)  # type: ignore[arg-type]


def meets(grade: str | None, min_grade: str) -> bool:
    """Whether `grade` is at least as good as `min_grade`."""
    return grade_rank(grade) <= grade_rank(min_grade)


def describe(cfg: EvaluationConfig) -> dict[str, Any]:
    """The scoring rules in force, for the summary and the report."""
    return {
        "weights": dict(cfg.weights),
        "grades": cfg.grades.model_dump(),
        "context_criteria": list(cfg.context_criteria),
    }
