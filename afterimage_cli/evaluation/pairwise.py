"""Pairwise judging: candidate answers to the same point of a conversation, shown side by side and scored in
both orders (A/B, then B/A). A pair is trusted only when both orders agree on which candidate is best and which
is worst, and by how much (`preference.min_margin`); everything else is a tie, a disagreement (a judge swayed by
where an answer stands is the usual cause: position bias) or too small a margin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..engine.together import together
from ..export.rows import row_pairs
from ..providers.base import Messages
from .grading import applicable_criteria, row_context
from .judge import ConversationJudge, asked, transcript

COMPARE_SYSTEM = (
    "You are a strict, fair judge comparing candidate answers that an AI assistant could give to the last user "
    "message of a conversation. First say in two or three sentences which candidate is better and why. Then, for "
    "each candidate, write one or two sentences of feedback and a score from 0 to 10: 10 flawless, 7 minor "
    "issues, 5 clear problems, 2 major problems, 0 unusable. Score each candidate on its own merits: the order "
    "in which the candidates are shown means nothing. Do not reward length for its own sake."
)
# Whole points, not fractions: a grammar-constrained server (llama.cpp) enforces an integer's bounds but not a
# float's (a small model wrote "score": 698 for a 0-1 float, and nothing stopped it). Scores are read as
# points / 10, so min_margin and the margins are on the 0-1 scale of every other score.
SCORE_POINTS = 10
LABELS = "ABCDEFGH"  # preference.candidates is at most 8
# Margins are means of scores the judge rounds as it likes: a hair below the bar is at the bar.
EPSILON = 1e-9

# degraded_won: both orders agreed, but on the answer written to be worse (strategy degrade): not a usable pair.
Outcome = Literal["kept", "tie", "disagreement", "margin", "degraded_won"]


class CandidateVerdict(BaseModel):
    """The judge's answer for one candidate; feedback comes first so the score follows the reasoning."""

    model_config = ConfigDict(extra="forbid")

    feedback: str = Field(description="Why the score; name the concrete problem if any.")
    score: int = Field(ge=0, le=SCORE_POINTS, description="0 (unusable) to 10 (flawless).")


@lru_cache(maxsize=8)
def comparison_schema(labels: tuple[str, ...]) -> type[BaseModel]:
    """A response model with the rationale first, then one verdict per shown candidate."""
    fields: dict[str, Any] = {
        "rationale": (str, Field(description="Which candidate is better and why, in two or three sentences.")),
        **{label: (CandidateVerdict, Field(description=f"Candidate {label}.")) for label in labels},
    }
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "CandidateComparison", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model


@dataclass(frozen=True)
class PairDecision:
    """What two orders of verdicts decide: the best and worst candidate (by index) when they agree."""

    outcome: Outcome
    best: int | None = None
    worst: int | None = None
    margin: float | None = None
    position_bias: bool = False  # a disagreement where each order's winner stood at the same place


@dataclass(frozen=True)
class Comparison:
    """Both orders' scores of the same candidates (indexed as given, whatever order they were shown in)."""

    forward: tuple[float, ...]
    backward: tuple[float, ...]
    rationales: tuple[str, str]
    judge_model: str

    @property
    def scores(self) -> list[float]:
        """Each candidate's mean score over both orders."""
        return [round((f + b) / 2, 4) for f, b in zip(self.forward, self.backward, strict=True)]

    def decide(self, min_margin: float) -> PairDecision:
        return decide(self.forward, self.backward, min_margin)


def _extremes(scores: Sequence[float]) -> tuple[int, int] | None:
    """(best, worst) of one order, or None when either is shared (a tie)."""
    top, bottom = max(scores), min(scores)
    best = [i for i, s in enumerate(scores) if s == top]
    worst = [i for i, s in enumerate(scores) if s == bottom]
    if top == bottom or len(best) > 1 or len(worst) > 1:
        return None
    return best[0], worst[0]


def decide(forward: Sequence[float], backward: Sequence[float], min_margin: float) -> PairDecision:
    """Keep a pair only when both orders pick the same best and worst candidate, by at least min_margin."""
    first, second = _extremes(forward), _extremes(backward)
    if first is None or second is None:
        return PairDecision("tie")
    if first != second:
        # Shown backwards, candidate i stands at place k-1-i: the same place twice means the place won.
        return PairDecision("disagreement", position_bias=first[0] == len(forward) - 1 - second[0])
    best, worst = first
    margin = round(((forward[best] - forward[worst]) + (backward[best] - backward[worst])) / 2, 4)
    if margin + EPSILON < min_margin:
        return PairDecision("margin", best, worst, margin)
    return PairDecision("kept", best, worst, margin)


class PairwiseJudge:
    """Compares candidate answers through the conversation judge's model, context and criteria."""

    def __init__(self, judge: ConversationJudge) -> None:
        self.judge = judge

    @property
    def model_name(self) -> str:
        return self.judge.provider.model_name

    def messages(self, row: dict[str, Any], answers: Sequence[str], criteria: tuple[str, ...]) -> Messages:
        """The request showing `answers` in the given order after the row's conversation (ending with the user)."""
        shown = "\n\n".join(
            f"[Answer {label}]\n{text}\n[/Answer {label}]" for label, text in zip(LABELS, answers, strict=False)
        )
        parts = [
            self.judge.context_part(row),
            f"Conversation so far:\n{transcript(row)}",
            f"Candidate answers to the last user message:\n\n{shown}",
            f"Judge each candidate on these criteria:\n{asked(criteria)}",
        ]
        return [{"role": "system", "content": COMPARE_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]

    async def compare(self, row: dict[str, Any], answers: Sequence[str]) -> Comparison:
        """Score `answers` (two or more) as shown, and shown in reverse, at once; ProviderError propagates."""
        criteria = applicable_criteria(bool(row_context(row)), self.judge.cfg.context_criteria)
        count = len(answers)
        schema = comparison_schema(tuple(LABELS[:count]))
        provider = self.judge.provider
        forward, backward = await together(
            provider.acomplete_structured(self.messages(row, answers, criteria), schema),
            provider.acomplete_structured(self.messages(row, list(reversed(answers)), criteria), schema),
        )
        forward_scores = [getattr(forward.parsed, LABELS[i]).score / SCORE_POINTS for i in range(count)]
        backward_scores = [getattr(backward.parsed, LABELS[count - 1 - i]).score / SCORE_POINTS for i in range(count)]
        return Comparison(
            tuple(forward_scores),
            tuple(backward_scores),
            (forward.parsed.rationale, backward.parsed.rationale),
            provider.model_name,
        )

    async def review(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """evaluate: each pair the row holds compared again in both orders, and set against its labels."""
        contexts = {key: row.get(key) for key in ("instruction_context", "response_context")}
        pairs = row_pairs(row)
        comparisons = await together(
            *(
                self.compare({**contexts, "conversations": prompt}, [c["content"], r["content"]])
                for prompt, c, r in pairs
            )
        )
        return [
            pair_review(sum(1 for turn in prompt if turn.get("role") == "user"), comparison)  # tool steps: no turn
            for (prompt, _, _), comparison in zip(pairs, comparisons, strict=True)
        ]


def pair_review(turn: int, comparison: Comparison) -> dict[str, Any]:
    """What evaluate records of one pair (candidate 0 the row's chosen, 1 its rejected): which one both orders
    prefer (None: a tie or orders that disagree), the margin of chosen over rejected (negative when the judge
    prefers the rejected answer) and whether a disagreement followed the answers' places."""
    decision = decide(comparison.forward, comparison.backward, 0.0)
    chosen, rejected = comparison.scores
    prefers = None if decision.best is None else ("chosen", "rejected")[decision.best]
    return {
        "turn": turn,
        "prefers": prefers,
        "outcome": decision.outcome if prefers is None else "agree",
        "scores": {"chosen": chosen, "rejected": rejected},
        "margin": round(chosen - rejected, 4),
        "position_bias": decision.position_bias,
        "judge_model": comparison.judge_model,
    }
