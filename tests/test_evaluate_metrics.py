"""Offline metrics, duplicates, distinct-n, grading and the report, without the CLI."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from array import array

import pytest

from afterimage_cli.config import EvaluationConfig, GradeThresholds
from afterimage_cli.evaluation.diversity import DistinctCounter, DistinctN
from afterimage_cli.evaluation.duplicates import NearDuplicateIndex, signature
from afterimage_cli.evaluation.grading import applicable_criteria, final_score, grade_for, meets, row_context
from afterimage_cli.evaluation.html_report import bar_chart, range_chart
from afterimage_cli.evaluation.metrics import RowMetrics, context_overlap, is_truncated
from afterimage_cli.evaluation.reader import conversation_problem
from afterimage_cli.evaluation.resume import DoneKeys, digest_of, row_key
from afterimage_cli.evaluation.stats import TURN_EDGES, BinnedCounts, ScoreHistogram

from .evaluate_helpers import conversation_row, published_row

WORDS = [f"w{i}" for i in range(3000)]


def words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(n)]


def measure(row, metrics: RowMetrics | None = None):
    return (metrics or RowMetrics(NearDuplicateIndex(window=100))).measure(row, row.get("id"))


def test_final_score_renormalises_over_applicable_criteria() -> None:
    weights = EvaluationConfig().weights
    assert final_score({"coherence": 1.0, "factuality": 0.5}, weights) == pytest.approx((0.15 + 0.125) / 0.4, abs=1e-4)
    assert final_score({}, weights) is None
    assert final_score({"coherence": 1.0}, {"coherence": 0.0}) is None
    assert applicable_criteria(False, ["grounding"]) == ("coherence", "factuality", "helpfulness", "relevance")
    assert applicable_criteria(True, ["grounding"])[2] == "grounding"


def test_grade_thresholds_are_inclusive_lower_bounds() -> None:
    t = GradeThresholds()
    assert [grade_for(s, t) for s in (1.0, 0.9, 0.8999, 0.75, 0.5, 0.25, 0.2499)] == [
        "perfect",
        "perfect",
        "good",
        "good",
        "needs_improvement",
        "bad",
        "not_acceptable",
    ]
    assert meets("perfect", "good") and meets("good", "good") and not meets("bad", "good") and not meets(None, "bad")
    with pytest.raises(ValueError, match="must not increase"):
        GradeThresholds(good=0.95)


def test_context_ignores_the_no_retrieval_placeholder() -> None:
    assert row_context({"instruction_context": "No relevant context was found.", "response_context": " "}) == ""
    assert row_context({"instruction_context": "A", "response_context": "A"}) == "A"


def test_row_metrics_find_empty_truncated_refusals_and_overlap() -> None:
    row = conversation_row(0, context=True)
    row["conversations"] += [
        {"role": "user", "content": "   "},
        {"role": "assistant", "content": "I'm sorry, but I can’t help with that request."},
        {"role": "user", "content": "Show code"},
        {"role": "assistant", "content": "```python\nprint(1)\n"},
    ]
    metrics = measure(row)
    assert metrics["turns"] == 6 and metrics["user_turns"] == 3 and metrics["alternation_ok"] is True
    assert metrics["empty_turns"] == 1 and metrics["refusals"] == 1 and metrics["truncated_turns"] == 1
    assert set(metrics["issues"]) == {"empty_turn", "refusal", "truncated"}
    assert 0 < metrics["context_overlap"] < 1
    assert metrics["assistant_words"][1] == 9


@pytest.mark.parametrize(
    ("text", "truncated"),
    [("A full sentence.", False), ("- a list item", False), ("It works because", True), ("Then,", True)],
)
def test_truncation_heuristic(text: str, truncated: bool) -> None:
    assert is_truncated(text) is truncated


def test_context_overlap_counts_content_words() -> None:
    answer = "caching headers control freshness".split()
    assert context_overlap(answer, "Caching headers set freshness rules.") == pytest.approx(0.75)
    assert context_overlap(answer, "") is None


def test_exact_and_near_duplicates_are_found_and_distinct_rows_are_not() -> None:
    rng = random.Random(1)
    index = NearDuplicateIndex(window=1000, threshold=0.8)
    texts = [words(rng, 120) for _ in range(300)]
    for i, text in enumerate(texts):
        assert index.check_and_add(text, i, f"r{i}") is None
    exact = index.check_and_add(texts[10], 10, "copy")
    assert exact is not None and exact.kind == "exact" and exact.of == "r10"
    edited = list(texts[20])
    edited[60] = "changed"  # one word in 120: Jaccard of 3-gram sets about 0.95
    near = index.check_and_add(edited, -1, "edited")
    assert near is not None and near.kind == "near" and near.of == "r20" and near.similarity >= 0.8
    assert index.exact == 1 and index.near == 1
    assert signature([]) is None and len(signature(["one"]) or []) == 64


def test_duplicates_older_than_the_window_are_forgotten() -> None:
    rng = random.Random(2)
    index = NearDuplicateIndex(window=50)
    first = words(rng, 50)
    index.check_and_add(first, 1, "first")
    for i in range(60):
        index.check_and_add(words(rng, 50), 100 + i, None)
    assert index.check_and_add(first, 1, "again") is None


def test_distinct_n_is_exact_when_small_and_close_when_large() -> None:
    small = DistinctN()
    small.add("the cat sat on the mat".split())
    assert small.summary() == {"distinct_1": round(5 / 6, 4), "distinct_2": 1.0}
    counter = DistinctCounter(k=1024)
    for start in range(0, 200_000, 500):
        counter.add({hash(("item", i)) for i in range(start, start + 500)})
    assert counter.estimate() == pytest.approx(200_000, rel=0.1)
    assert len(counter.kept) <= 2 * 1024


def test_score_histogram_percentiles() -> None:
    histogram = ScoreHistogram()
    for i in range(1, 101):
        histogram.add(i / 100)
    summary = histogram.summary()
    assert summary["p10"] == 0.1 and summary["p50"] == 0.5 and summary["p90"] == 0.9
    assert summary["mean"] == pytest.approx(0.505)
    assert sum(histogram.chart()) == 100 and histogram.chart()[-1] == 6  # 0.95–1.0 holds 0.95 … 1.0


def test_score_histogram_fast_path_counts_like_add() -> None:
    # add_unit skips the clamping for scores known to be in [0, 1]; it must land in the same bins as add.
    rng = random.Random(3)
    scores = [0.0, 1.0, 0.0005, 0.9995, *(rng.random() for _ in range(2000))]
    checked, fast = ScoreHistogram(), ScoreHistogram()
    for score in scores:
        checked.add(score)
        fast.add_unit(score)
    assert fast.bins == checked.bins and fast.summary() == checked.summary()
    checked.add(1.7)  # out of range: add clamps
    assert checked.bins[-1] == fast.bins[-1] + 1


def test_binned_counts_put_each_value_under_its_lower_edge() -> None:
    counts = BinnedCounts(TURN_EDGES)  # 1, 2, 3, 4, 5, 6, 8, 11
    for value in (0, 1, 5, 6, 7, 8, 10, 11, 500):
        counts.add(value)
    # 0 is below the first edge and counts in the first bin; the last bin is open-ended.
    assert counts.counts == [2, 0, 0, 0, 1, 2, 2, 2]
    assert counts.summary()["labels"] == ["1", "2", "3", "4", "5", "6–7", "8–10", "11+"]


def test_charts_are_well_formed_svg() -> None:
    ET.fromstring(bar_chart(["a<b", "c"], [3, 0]))
    criteria = {"coherence": {"count": 2, "mean": 0.5, "p10": 0.2, "p50": 0.5, "p90": 0.8}}
    ET.fromstring(range_chart({**criteria, "grounding": {"count": 0, "mean": None}}))


def test_bar_labels_do_not_overlap() -> None:
    # The grade names overlapped: every slot was 46 px, "needs improvement" alone is ~100 px of 11 px text.
    labels = ["perfect", "good", "needs_improvement", "bad", "not_acceptable"]
    svg = ET.fromstring(bar_chart(labels, [1, 2, 3, 4, 5]))
    texts = [t for t in svg.iter("{http://www.w3.org/2000/svg}text") if t.text and t.text.replace(" ", "_") in labels]
    centres = [float(t.get("x")) for t in texts]
    assert len(centres) == len(labels)
    for i in range(len(labels) - 1):
        gap = centres[i + 1] - centres[i]
        assert gap >= 6 * (len(labels[i]) + len(labels[i + 1])) / 2, (labels[i], labels[i + 1])


def test_shape_check_accepts_published_rows_and_names_problems() -> None:
    assert conversation_problem(published_row(0)) is None
    assert conversation_problem({"conversations": [{"role": "user", "content": 3}]}) == (
        "conversations[0].content: expected a string, got a number"
    )
    assert conversation_problem({**conversation_row(0), "metadata": []}) == "metadata: expected an object, got an array"
    bad_grade = {**conversation_row(0), "evaluation": {"overall_grade": "great"}}
    assert "evaluation.overall_grade" in (conversation_problem(bad_grade) or "")


def test_resume_keys_use_the_id_or_the_content() -> None:
    with_id, without = conversation_row(1), published_row(2)
    assert row_key(with_id) == "id:row-00001" and row_key(without).startswith("sha:")
    changed = {**without, "metadata": {"other": 1}, "evaluation": {"overall_grade": "good"}}
    assert row_key(changed) == row_key(without)  # what evaluate adds does not change the identity
    done = DoneKeys(array("Q", [digest_of(with_id), digest_of(without)]))
    assert row_key(with_id) in done and row_key(changed) in done and row_key(conversation_row(3)) not in done
