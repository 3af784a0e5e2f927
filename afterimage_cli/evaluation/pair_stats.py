"""What a run's pairwise verdicts came to: pairs kept and dropped (ties, disagreements, small margins), the
agreement and position-bias rates and the margins of kept pairs — generate's summary and evaluate's report."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .pairwise import PairDecision

MARGIN_BINS = 10  # a histogram of fixed size: a million pairs cost no more memory than ten


class PairStats:
    """Counts of pairwise decisions; `record` one per comparison, `skipped` for candidates never compared."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.position_bias = 0
        self.skipped: Counter[str] = Counter()  # e.g. identical candidates: nothing to judge
        self.margin_bins = [0] * MARGIN_BINS
        self.margin_sum = 0.0

    def record(self, decision: PairDecision) -> None:
        self.outcomes[decision.outcome] += 1
        self.position_bias += decision.position_bias
        if decision.outcome == "kept" and decision.margin is not None:
            self.margin_sum += decision.margin
            self.margin_bins[min(int(decision.margin * MARGIN_BINS), MARGIN_BINS - 1)] += 1

    def skip(self, cause: str) -> None:
        self.skipped[cause] += 1

    @property
    def judged(self) -> int:
        return sum(self.outcomes.values())

    def summary(self) -> dict[str, Any]:
        judged, kept = self.judged, self.outcomes["kept"]
        # Both orders named the same best and worst (whether or not the pair was then kept).
        agreed = kept + self.outcomes["margin"] + self.outcomes["degraded_won"]

        def rate(count: int) -> float | None:
            return round(count / judged, 4) if judged else None

        return {
            "judged": judged,
            "kept": kept,
            "ties": self.outcomes["tie"],
            "disagreements": self.outcomes["disagreement"],
            "position_bias": self.position_bias,
            "below_min_margin": self.outcomes["margin"],
            "degraded_won": self.outcomes["degraded_won"],
            "not_judged": dict(self.skipped),
            "agreement_rate": rate(agreed),
            "position_bias_rate": rate(self.position_bias),
            "tie_rate": rate(self.outcomes["tie"]),
            "margin": {
                "mean": round(self.margin_sum / kept, 4) if kept else None,
                "histogram": {
                    f"{i / MARGIN_BINS:.1f}-{(i + 1) / MARGIN_BINS:.1f}": n for i, n in enumerate(self.margin_bins)
                },
            },
        }

    def line(self) -> str:
        """One line for the terminal summary."""
        s = self.summary()
        agreement = "–" if s["agreement_rate"] is None else f"{s['agreement_rate']:.0%}"
        mean = "–" if s["margin"]["mean"] is None else f"{s['margin']['mean']:.2f}"
        skipped = sum(self.skipped.values())
        return (
            f"pairs: {s['kept']} kept of {s['judged']} judged · agreement {agreement} · ties {s['ties']} · "
            f"disagreements {s['disagreements']} (position bias {s['position_bias']}) · below min_margin "
            f"{s['below_min_margin']} · mean margin {mean}"
            + (f" · degraded answer won {s['degraded_won']}" if s["degraded_won"] else "")
            + (f" · not judged: {', '.join(f'{c} {n}' for c, n in self.skipped.items())}" if skipped else "")
        )
