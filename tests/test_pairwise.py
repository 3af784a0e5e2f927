"""The pairwise decision: both orders must name the same best and worst candidate, by at least min_margin."""

from __future__ import annotations

import pytest

from afterimage_cli.evaluation.pair_stats import PairStats
from afterimage_cli.evaluation.pairwise import PairDecision, decide


@pytest.mark.parametrize(
    "forward,backward,outcome,best,worst,bias",
    [
        ((0.9, 0.6), (0.8, 0.5), "kept", 0, 1, False),
        ((0.6, 0.9), (0.5, 0.8), "kept", 1, 0, False),
        # Each order prefers whatever it shows first (candidate 0 forward, candidate 1 backward): position bias.
        ((0.9, 0.6), (0.5, 0.8), "disagreement", None, None, True),
        ((0.7, 0.7), (0.9, 0.2), "tie", None, None, False),
        # Three candidates: orders agree on the best, not the worst; the winner stood in different places.
        ((0.9, 0.5, 0.4), (0.9, 0.4, 0.5), "disagreement", None, None, False),
        # Three candidates: each order's winner stood first.
        ((0.9, 0.5, 0.4), (0.4, 0.5, 0.9), "disagreement", None, None, True),
        ((0.9, 0.5, 0.5), (0.9, 0.4, 0.4), "tie", None, None, False),  # a shared worst
        ((0.8, 0.75), (0.8, 0.75), "margin", 0, 1, False),
    ],
)
def test_decide(forward, backward, outcome, best, worst, bias) -> None:
    decision = decide(forward, backward, 0.1)
    assert (decision.outcome, decision.position_bias) == (outcome, bias)
    if outcome in ("kept", "margin"):
        assert (decision.best, decision.worst) == (best, worst)


def test_a_margin_at_the_bar_is_kept_despite_float_rounding() -> None:
    # 0.9 - 0.8 is 0.09999999999999998 in floating point.
    assert decide((0.9, 0.8), (0.9, 0.8), 0.1).outcome == "kept"


def test_stats_rates_and_histogram() -> None:
    stats = PairStats()
    for decision in (
        PairDecision("kept", 0, 1, 0.3),
        PairDecision("kept", 0, 1, 0.55),
        PairDecision("disagreement", position_bias=True),
        PairDecision("tie"),
    ):
        stats.record(decision)
    stats.skip("identical")
    summary = stats.summary()
    assert (summary["judged"], summary["kept"], summary["ties"], summary["position_bias"]) == (4, 2, 1, 1)
    assert summary["agreement_rate"] == 0.5 and summary["position_bias_rate"] == 0.25
    assert summary["margin"]["mean"] == pytest.approx(0.425)
    assert summary["margin"]["histogram"]["0.3-0.4"] == summary["margin"]["histogram"]["0.5-0.6"] == 1
    assert summary["not_judged"] == {"identical": 1}
    assert "2 kept of 4 judged" in stats.line() and "position bias 1" in stats.line()
