"""generate's quality gate (`quality.auto_improve`): judge each conversation, regenerate it while it is
below `min_grade`, at most `max_attempts` generations, and keep the best one.

Every attempt goes through the same judge as `afterimage evaluate`, so the kept row carries its
`evaluation` and `final_score`, and `metadata.quality` records what the gate did.

With `quality.keep_pairs`, the attempts answer the same opening, and a kept attempt that passed makes a pair
with the worst attempt that did not: at the first turn where their dialogs part, its answer is `chosen` and
the failed attempt's `rejected` (the conversation-level verdicts decide which is which). Dialogs that part at a
simulated user's message, not an answer, make no pair.
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
        attempts: list[tuple[Row, Verdict]] = []
        for attempt in range(self.cfg.max_attempts):
            row = await make(attempt)
            verdict = await self.judge.judge(row)
            attempts.append((row, verdict))
            grades.append(verdict.grade)
            scores.append(verdict.final_score)
            if best is None or _better(verdict, best[1]):
                best = (row, verdict, attempt)
            if meets(verdict.grade, self.cfg.min_grade):
                break
        assert best is not None  # max_attempts >= 1
        row, verdict, kept = best
        if self.cfg.keep_pairs:
            self._pair(row, verdict, kept, attempts)
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
        if self.cfg.keep_pairs:
            metadata["quality"]["paired"] = "chosen" in row
        return row

    def _pair(self, row: Row, verdict: Verdict, kept: int, attempts: list[tuple[Row, Verdict]]) -> None:
        """Give the kept row `chosen`/`rejected` from the worst failed attempt it parts from at an answer."""
        if not meets(verdict.grade, self.cfg.min_grade) or verdict.final_score is None:
            return  # no attempt passed: there is no answer to prefer
        failed = [
            (number, other, judged)
            for number, (other, judged) in enumerate(attempts)
            if judged.final_score is not None and not meets(judged.grade, self.cfg.min_grade)
        ]
        for number, other, judged in sorted(failed, key=lambda entry: entry[2].final_score or 0.0):
            parted = _parting_answer(row["conversations"], other["conversations"])
            if parted is None:
                continue
            assert judged.final_score is not None
            row["chosen"] = row["conversations"][parted]
            row["rejected"] = other["conversations"][parted]
            row["metadata"]["preference"] = {
                "strategy": "quality_gate",
                "turn": sum(1 for turn in row["conversations"][:parted] if turn["role"] == "user"),
                "chosen_attempt": kept,
                "rejected_attempt": number,
                "scores": {"chosen": verdict.final_score, "rejected": judged.final_score},
                "margin": round(verdict.final_score - judged.final_score, 4),
                "judge_model": verdict.evaluation.get("judge_model"),
            }
            return


def _parting_answer(kept: list[dict[str, Any]], other: list[dict[str, Any]]) -> int | None:
    """The index of the first turn where two dialogs of one opening differ, when it is an answer in both (a tool
    step, which a chosen/rejected message cannot carry, is not)."""
    for index, (ours, theirs) in enumerate(zip(kept, other, strict=False)):
        if ours["content"] != theirs["content"] or ours.get("tool_calls") != theirs.get("tool_calls"):
            answers = ours["role"] == theirs["role"] == "assistant"
            return index if answers and not ours.get("tool_calls") and not theirs.get("tool_calls") else None
    return None


def _better(candidate: Verdict, incumbent: Verdict) -> bool:
    """A higher final_score wins; a scored verdict beats an unscored one; ties keep the earlier row."""
    if candidate.final_score is None:
        return False
    return incumbent.final_score is None or candidate.final_score > incumbent.final_score
