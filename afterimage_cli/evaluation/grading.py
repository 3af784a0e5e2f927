"""From per-criterion scores to final_score and a grade: weights, applicability and thresholds.

Which criteria apply: `grounding` asks whether the answers stay within the context the row was
generated from, so it is judged only when the row has an instruction_context or response_context
(the `context_criteria` setting). Relevance, coherence, factuality and helpfulness are judged against
the user's own messages and the judge's knowledge, so they always apply. A criterion that does not
apply is stored with `applicable: false` and no score, and final_score is the weighted mean of the
applicable criteria with weights renormalised over them — never a free 1.0 that inflates the score.
`tool_use` (right tool, right arguments, the result used) is asked only of rows that offer tools or call
them; other rows are judged, and written, exactly as before it existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..config import EvaluationConfig, GradeThresholds
from ..types import GRADES, NO_RETRIEVAL_CONTEXT, Grade

CRITERIA: tuple[str, ...] = ("coherence", "factuality", "grounding", "helpfulness", "relevance", "tool_use")
TOOL_CRITERION = "tool_use"
TOOL_USE_WEIGHT = 0.25
"""tool_use's weight unless `evaluation.weights` sets one. Kept out of the default weights so that the
evaluation fingerprint of configs that never judge tools stays what it was (resumes keep working)."""
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


def applicable_criteria(has_context: bool, context_criteria: Sequence[str], has_tools: bool = False) -> tuple[str, ...]:
    """The criteria the judge is asked about for a row with or without a context, with or without tools."""
    return tuple(
        c for c in CRITERIA if (has_context or c not in context_criteria) and (has_tools or c != TOOL_CRITERION)
    )


def criterion_weight(weights: Mapping[Any, float], name: str) -> float:
    return weights.get(name, TOOL_USE_WEIGHT if name == TOOL_CRITERION else 0.0)


def final_score(scores: Mapping[str, float], weights: Mapping[Any, float]) -> float | None:
    """Weighted mean of the applicable scores, weights renormalised over them; None if none weigh."""
    total = sum(criterion_weight(weights, name) for name in scores)
    if total <= 0:
        return None
    return round(sum(score * criterion_weight(weights, name) for name, score in scores.items()) / total, 4)


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
        "weights": {**dict(cfg.weights), TOOL_CRITERION: criterion_weight(cfg.weights, TOOL_CRITERION)},
        "grades": cfg.grades.model_dump(),
        "context_criteria": list(cfg.context_criteria),
    }
