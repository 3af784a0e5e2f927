"""generate's quality gate (quality.auto_improve): bounded regeneration that keeps the best attempt."""

from __future__ import annotations

import itertools

import orjson

from afterimage_cli.config import Config, EvaluationConfig, QualityConfig
from afterimage_cli.engine.fingerprint import run_fingerprint
from afterimage_cli.evaluation.judge import ConversationJudge, CriterionVerdict
from afterimage_cli.evaluation.quality import QualityGate

from .evaluate_helpers import FAST_RETRY, judge_responder
from .helpers import invoke, make_config, read_rows


def generate_with_gate(server, tmp_path, scores, **quality):
    """Generate 2 one-turn conversations, one at a time, the judge answering `scores` in turn."""
    sequence = iter(scores)
    server.responder = judge_responder(lambda name, _: next(sequence) if name == "coherence" else 0.8)
    cfg = make_config(
        tmp_path,
        retry=FAST_RETRY,
        generation={"num_conversations": 2, "min_turns": 1, "max_turns": 1, "concurrency": 1},
        quality={"auto_improve": True, "min_grade": "good", **quality},
        cache={"enabled": False},
    )
    result = invoke("generate", str(cfg), "--model", "fake-model", "--api-base", server.api_base, "-q", "--json")
    return result, read_rows(tmp_path / "out.jsonl")


def test_regenerates_until_the_grade_is_reached(fake_server, tmp_path) -> None:
    # No context, so grounding is not applicable: coherence 0.0 gives 0.7 × 0.8 / 0.85 (needs_improvement),
    # coherence 0.8 gives 0.8 (good).
    result, rows = generate_with_gate(fake_server, tmp_path, [0.0, 0.8, 0.8], max_attempts=3)
    assert result.exit_code == 0, result.stderr
    first, second = rows
    assert first["metadata"]["quality"] == {
        "attempts": 2,
        "grades": ["needs_improvement", "good"],
        "scores": [0.6588, 0.8],
        "kept_attempt": 1,
        "min_grade": "good",
        "passed": True,
    }
    assert first["final_score"] == 0.8 and first["evaluation"]["overall_grade"] == "good"
    assert second["metadata"]["quality"]["attempts"] == 1
    # Every judge call is counted in the item's usage: 2 × (question + answer + verdict) for the first row.
    assert first["metadata"]["usage"]["calls"] == 6
    assert orjson.loads(result.stdout)["calls"] == fake_server.stats["ok"] == 9


def test_attempts_are_bounded_and_the_best_is_kept(fake_server, tmp_path) -> None:
    result, rows = generate_with_gate(
        fake_server, tmp_path, itertools.cycle([0.2, 0.6, 0.1]), max_attempts=3, min_grade="perfect"
    )
    assert result.exit_code == 0, result.stderr
    for row in rows:
        quality = row["metadata"]["quality"]
        assert quality["attempts"] == 3 and quality["passed"] is False
        assert row["final_score"] == max(quality["scores"]) == quality["scores"][quality["kept_attempt"]]
    assert fake_server.stats["ok"] == 2 * 3 * 3


def test_gate_keeps_an_earlier_attempt_when_later_ones_are_worse() -> None:
    class Judge(ConversationJudge):
        def __init__(self) -> None:
            super().__init__(provider=None, cfg=EvaluationConfig())  # type: ignore[arg-type]
            self.scores = iter([0.7, 0.3])

        async def judge(self, row):
            score = next(self.scores)
            verdicts = {name: CriterionVerdict(feedback="", score=score) for name in ("coherence", "relevance")}
            return self.verdict(verdicts, "stub")

    import asyncio

    made: list[int] = []

    async def make(attempt: int):
        made.append(attempt)
        return {"conversations": [], "metadata": {}, "attempt": attempt}

    gate = QualityGate(Judge(), QualityConfig(auto_improve=True, min_grade="perfect", max_attempts=2))
    row = asyncio.run(gate.run(make))
    assert made == [0, 1] and row["attempt"] == 0 and row["final_score"] == 0.7
    assert row["evaluation"]["grounding"]["applicable"] is False


def test_fingerprint_ignores_the_judge_unless_the_gate_is_on() -> None:
    base = Config(respondent={"model": "offline"})
    other_judge = Config(respondent={"model": "offline"}, evaluation={"judge": {"model": "openai/x"}})
    assert run_fingerprint(base) == run_fingerprint(other_judge)
    gated = Config(respondent={"model": "offline"}, quality={"auto_improve": True})
    gated_other = Config(
        respondent={"model": "offline"},
        quality={"auto_improve": True},
        evaluation={"judge": {"model": "openai/x", "api_base": "http://a"}},
    )
    gated_endpoint = Config(
        respondent={"model": "offline"},
        quality={"auto_improve": True},
        evaluation={"judge": {"model": "openai/x", "api_base": "http://b"}},
    )
    assert run_fingerprint(base) != run_fingerprint(gated) != run_fingerprint(gated_other)
    assert run_fingerprint(gated_other) == run_fingerprint(gated_endpoint)
