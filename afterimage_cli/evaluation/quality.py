"""generate's quality gate (`quality.auto_improve`): judge each conversation, regenerate it while it is
below `min_grade`, at most `max_attempts` generations, and keep the best one.

Every attempt goes through the same judge as `afterimage evaluate`, so the kept row carries its
`evaluation` and `final_score`, and `metadata.quality` records what the gate did.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..config import QualityConfig
from .grading import meets
from .judge import ConversationJudge, Verdict

Row = dict[str, Any]


class QualityGate:
    """Bounded regeneration around one item's generation."""

    def __init__(self, judge: ConversationJudge, cfg: QualityConfig) -> None:
        self.judge = judge
        self.cfg = cfg

    async def run(self, make: Callable[[int], Awaitable[Row]]) -> Row:
        """Call `make(attempt)` until a row meets min_grade or max_attempts are spent; return the best."""
        best: tuple[Row, Verdict, int] | None = None
        grades: list[str | None] = []
        scores: list[float | None] = []
        for attempt in range(self.cfg.max_attempts):
            row = await make(attempt)
            verdict = await self.judge.judge(row)
            grades.append(verdict.grade)
            scores.append(verdict.final_score)
            if best is None or _better(verdict, best[1]):
                best = (row, verdict, attempt)
            if meets(verdict.grade, self.cfg.min_grade):
                break
        assert best is not None  # max_attempts >= 1
        row, verdict, kept = best
        row["evaluation"] = verdict.evaluation
        row["final_score"] = verdict.final_score
        metadata = row.setdefault("metadata", {})
        metadata["quality"] = {
            "attempts": len(grades),
            "grades": grades,
            "scores": scores,
            "kept_attempt": kept,
            "min_grade": self.cfg.min_grade,
            "passed": meets(verdict.grade, self.cfg.min_grade),
        }
        return row


def _better(candidate: Verdict, incumbent: Verdict) -> bool:
    """A higher final_score wins; a scored verdict beats an unscored one; ties keep the earlier row."""
    if candidate.final_score is None:
        return False
    return incumbent.final_score is None or candidate.final_score > incumbent.final_score
