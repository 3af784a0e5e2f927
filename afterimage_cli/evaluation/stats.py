"""Set-wide statistics of an evaluation, in fixed memory: counts, score histograms, length histograms."""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections import Counter
from typing import Any

from ..export.rows import row_grade, row_score
from ..types import GRADES
from .grading import CRITERIA, TOOL_CRITERION

SCORE_BINS = 1000  # 0.001 resolution: percentiles exact to the third decimal
CHART_BINS = 20
ANSWER_WORD_EDGES = (0, 1, 11, 26, 51, 101, 201, 401, 801, 1601)
TURN_EDGES = (1, 2, 3, 4, 5, 6, 8, 11)
CALL_EDGES = (0, 1, 2, 3, 4, 6, 11)
_INVALID_EXAMPLES = 3


class ScoreHistogram:
    """Scores in [0, 1] counted in SCORE_BINS + 1 bins: mean and percentiles without keeping the scores."""

    def __init__(self) -> None:
        self.bins = array("I", [0]) * (SCORE_BINS + 1)
        self.count = 0
        self.total = 0.0

    def add(self, score: float) -> None:
        self.bins[min(SCORE_BINS, max(0, round(score * SCORE_BINS)))] += 1
        self.count += 1
        self.total += score

    def add_unit(self, score: float) -> None:
        """`add` for a score the caller knows is in [0, 1] (no clamping: this runs per row and criterion)."""
        self.bins[round(score * SCORE_BINS)] += 1
        self.count += 1
        self.total += score

    def quantile(self, q: float) -> float | None:
        """The smallest score with at least a fraction q of the scores at or below it."""
        if not self.count:
            return None
        needed = max(1, round(q * self.count))
        seen = 0
        for index, n in enumerate(self.bins):
            seen += n
            if seen >= needed:
                return index / SCORE_BINS
        return 1.0

    def chart(self, bins: int = CHART_BINS) -> list[int]:
        """Counts in `bins` equal-width bins over [0, 1] (the last one closed)."""
        out = [0] * bins
        for index, n in enumerate(self.bins):
            if n:
                out[min(bins - 1, index * bins // SCORE_BINS)] += n
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean": round(self.total / self.count, 4) if self.count else None,
            "p10": self.quantile(0.1),
            "p50": self.quantile(0.5),
            "p90": self.quantile(0.9),
        }


class BinnedCounts:
    """Counts of integers in bins given by their lower edges; the last bin is open-ended."""

    def __init__(self, edges: tuple[int, ...]) -> None:
        self.edges = edges
        self.counts = [0] * len(edges)
        self.total = 0
        self.n = 0

    def add(self, value: int) -> None:
        index = bisect_right(self.edges, value) - 1
        self.counts[index if index > 0 else 0] += 1
        self.total += value
        self.n += 1

    def labels(self) -> list[str]:
        out = []
        for low, high in zip(self.edges, [*self.edges[1:], None], strict=True):
            if high is None:
                out.append(f"{low}+")
            elif high - low == 1:
                out.append(str(low))
            else:
                out.append(f"{low}–{high - 1}")
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "labels": self.labels(),
            "counts": list(self.counts),
            "mean": round(self.total / self.n, 1) if self.n else None,
        }


class PairReviewStats:
    """evaluate's view of preference rows: how often its judge, asked in both orders, agrees with their labels."""

    def __init__(self) -> None:
        self.pairs = 0
        self.outcomes: Counter[str] = Counter()  # agree | tie | disagreement
        self.prefers: Counter[str] = Counter()  # chosen | rejected
        self.position_bias = 0
        self.margins = ScoreHistogram()  # chosen minus rejected, mapped from [-1, 1] onto [0, 1]

    def add(self, reviews: list[dict[str, Any]]) -> None:
        for review in reviews:
            if not isinstance(review, dict) or not isinstance(review.get("margin"), int | float):
                continue
            self.pairs += 1
            self.outcomes[str(review.get("outcome"))] += 1
            if review.get("prefers"):
                self.prefers[str(review["prefers"])] += 1
            self.position_bias += bool(review.get("position_bias"))
            self.margins.add(min(1.0, max(0.0, (float(review["margin"]) + 1) / 2)))

    def summary(self) -> dict[str, Any]:
        pairs = self.pairs

        def rate(count: int) -> float | None:
            return round(count / pairs, 4) if pairs else None

        def margin(value: float | None) -> float | None:
            return None if value is None else round(value * 2 - 1, 4)

        spread = self.margins.summary()
        return {
            "pairs": pairs,
            "label_agreement_rate": rate(self.prefers["chosen"]),
            "order_agreement_rate": rate(self.outcomes["agree"]),
            "prefers_rejected": self.prefers["rejected"],
            "ties": self.outcomes["tie"],
            "disagreements": self.outcomes["disagreement"],
            "position_bias_rate": rate(self.position_bias),
            "margin": {key: margin(spread[key]) for key in ("mean", "p10", "p50", "p90")},
        }


class ToolStats:
    """Set-wide tool metrics: valid-call rate, coverage of the offered tools, calls per conversation."""

    def __init__(self) -> None:
        self.rows = 0
        self.rows_with_calls = 0
        self.calls = 0
        self.valid = 0
        self.per_tool: Counter[str] = Counter()
        self.offered: Counter[str] = Counter()
        """Tool → rows that offered it."""
        self.calls_per_row = BinnedCounts(CALL_EDGES)
        self.coverage_total = 0.0
        self.coverage_rows = 0
        self.invalid_examples: list[str] = []

    def add(self, metrics: dict[str, Any]) -> None:
        self.rows += 1
        calls = int(metrics.get("calls") or 0)
        self.calls += calls
        self.rows_with_calls += calls > 0
        self.valid += int(metrics.get("valid_calls") or 0)
        self.per_tool.update(metrics.get("per_tool") or {})
        self.offered.update(metrics.get("tools_offered") or ())
        self.calls_per_row.add(calls)
        coverage = metrics.get("coverage")
        if isinstance(coverage, int | float):
            self.coverage_total += coverage
            self.coverage_rows += 1
        for bad in metrics.get("invalid") or ():
            if len(self.invalid_examples) < _INVALID_EXAMPLES:
                self.invalid_examples.append(f"{bad.get('name')}: {bad.get('problem')}")

    def summary(self) -> dict[str, Any]:
        offered = set(self.offered)
        used = {name for name in self.per_tool if name in offered}
        return {
            "rows": self.rows,
            "rows_with_calls": self.rows_with_calls,
            "calls": self.calls,
            "valid_calls": self.valid,
            "valid_call_rate": round(self.valid / self.calls, 4) if self.calls else None,
            "calls_per_conversation": self.calls_per_row.summary(),
            "row_coverage_mean": round(self.coverage_total / self.coverage_rows, 4) if self.coverage_rows else None,
            "tools_offered": len(offered),
            "tools_used": len(used),
            "coverage": round(len(used) / len(offered), 4) if offered else None,
            "per_tool": {
                name: {"calls": self.per_tool.get(name, 0), "offered_in": self.offered.get(name, 0)}
                for name in sorted(offered | set(self.per_tool))
            },
            "never_called": sorted(offered - used),
            "invalid_examples": list(self.invalid_examples),
        }


class EvaluationStats:
    """Everything the summary and the report show, accumulated row by row."""

    def __init__(self) -> None:
        self.rows = 0
        self.grades: Counter[str] = Counter()
        self.final = ScoreHistogram()
        self.criteria = {name: ScoreHistogram() for name in CRITERIA}
        self.not_applicable: Counter[str] = Counter()
        self.issues: Counter[str] = Counter()
        self.unclean_turns: Counter[str] = Counter()  # turns failing each hygiene check
        self.unclean_rows: Counter[str] = Counter()  # rows with at least one such turn
        self.unclean = 0  # rows failing any check
        self.answer_words = BinnedCounts(ANSWER_WORD_EDGES)
        self.user_turns = BinnedCounts(TURN_EDGES)
        self.overlap = ScoreHistogram()
        self.pairs = PairReviewStats()
        self.tools = ToolStats()

    def add(self, row: dict[str, Any], metrics: dict[str, Any]) -> None:
        """Count one evaluated (or resumed) row: its verdict, if any, and its offline metrics."""
        self.rows += 1
        self.grades[row_grade(row) or "ungraded"] += 1
        score = row_score(row)
        if score is not None:
            self.final.add(min(1.0, max(0.0, score)))
        evaluation = row.get("evaluation") or {}
        for name in CRITERIA:
            verdict = evaluation.get(name)
            if not isinstance(verdict, dict):
                continue
            value = verdict.get("score")
            if verdict.get("applicable") is False:
                self.not_applicable[name] += 1
            elif isinstance(value, int | float):
                self.criteria[name].add(min(1.0, max(0.0, float(value))))
        self.issues.update(metrics["issues"])
        failed = metrics.get("hygiene") or {}
        for check, turns in failed.items():
            self.unclean_turns[check] += len(turns)
            self.unclean_rows[check] += 1
        self.unclean += bool(failed)
        for words in metrics["assistant_words"]:
            self.answer_words.add(words)
        self.user_turns.add(metrics["user_turns"])
        if metrics["context_overlap"] is not None:
            self.overlap.add(metrics["context_overlap"])
        reviews = evaluation.get("preference")
        if isinstance(reviews, list):
            self.pairs.add(reviews)
        tool_use = metrics.get("tool_use")
        if isinstance(tool_use, dict):
            self.tools.add(tool_use)

    def summary(self) -> dict[str, Any]:
        """The statistics as plain data (JSON-ready)."""
        grades: dict[str, int] = {grade: self.grades.get(grade, 0) for grade in GRADES}
        if self.grades.get("ungraded"):
            grades["ungraded"] = self.grades["ungraded"]
        criteria = {}
        for name, histogram in self.criteria.items():
            if name == TOOL_CRITERION and not histogram.count and not self.tools.rows:
                continue  # a set without tools: its summary is what it was before tools existed
            not_applicable = self.rows - self.tools.rows if name == TOOL_CRITERION else self.not_applicable.get(name, 0)
            criteria[name] = {**histogram.summary(), "not_applicable": not_applicable}
        return {
            "measured": self.rows,
            "grades": grades,
            "final_score": {**self.final.summary(), "histogram": self.final.chart()},
            "criteria": criteria,
            "issues": dict(sorted(self.issues.items())),
            "hygiene": {
                "unclean_rows": self.unclean,
                "turns_by_check": dict(sorted(self.unclean_turns.items())),
                "rows_by_check": dict(sorted(self.unclean_rows.items())),
            },
            "answer_words": self.answer_words.summary(),
            "user_turns": self.user_turns.summary(),
            "context_overlap": self.overlap.summary(),
            **({"preference": self.pairs.summary()} if self.pairs.pairs else {}),
            **({"tools": self.tools.summary()} if self.tools.rows else {}),
        }
