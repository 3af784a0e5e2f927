"""evaluate on tool rows: valid-call rate, coverage and calls per conversation offline; the judge's tool_use
criterion, asked only of rows with tools, sees calls and results; rows without tools are judged as before."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from afterimage_cli.cli import app
from afterimage_cli.config import EvaluationConfig
from afterimage_cli.evaluation.duplicates import NearDuplicateIndex
from afterimage_cli.evaluation.grading import applicable_criteria, final_score
from afterimage_cli.evaluation.judge import ConversationJudge, CriterionVerdict, transcript
from afterimage_cli.evaluation.metrics import RowMetrics
from afterimage_cli.evaluation.stats import EvaluationStats
from afterimage_cli.hygiene import TurnChecker
from tests.evaluate_helpers import judge_config, judge_responder
from tests.test_export_support import write_jsonl
from tests.tool_rows import call, calling, plain_row, recovery_row, result, said, tool_row


def measure(row: dict[str, Any]) -> dict[str, Any]:
    return RowMetrics(NearDuplicateIndex(threshold=0.8, window=100)).measure(row, None)


def test_tool_metrics_count_valid_calls_coverage_and_calls() -> None:
    metrics = measure(tool_row())
    assert metrics["tool_use"] == {
        "calls": 3,
        "valid_calls": 3,
        "valid_call_rate": 1.0,
        "invalid": [],
        "per_tool": {"book_table": 1, "convert_currency": 1, "get_weather": 1},
        "tools_offered": ["book_table", "convert_currency", "get_weather"],
        "tools_used": ["book_table", "convert_currency", "get_weather"],
        "coverage": 1.0,
    }
    # The tool steps sit inside their exchanges: the dialog still alternates, and no step is an empty turn.
    assert metrics["alternation_ok"] and metrics["empty_turns"] == 0 and metrics["issues"] == []
    assert metrics["user_turns"] == 2 and metrics["assistant_turns"] == 2 and metrics["turns"] == 4


def test_invalid_calls_are_named_by_turn_and_problem() -> None:
    row = recovery_row()
    row["conversations"][3:3] = [  # a second invalid step: wrong types, an unknown tool
        calling(call("call_x", "book_table", {"restaurant": "Maaemo", "people": 0}), call("call_y", "fly", {})),
        result("call_x", "book_table", "error"),
        result("call_y", "fly", "error"),
    ]
    tool_use = measure(row)["tool_use"]
    assert tool_use["calls"] == 4 and tool_use["valid_calls"] == 1 and tool_use["valid_call_rate"] == 0.25
    assert tool_use["invalid"] == [
        {"turn": 1, "name": "get_weather", "problem": "arguments are not valid JSON"},
        {"turn": 3, "name": "book_table", "problem": "arguments at people: 0 is less than the minimum of 1"},
        {"turn": 3, "name": "fly", "problem": "'fly' is not one of the offered tools"},
    ]
    assert tool_use["coverage"] == round(2 / 3, 4)  # get_weather and book_table of three offered
    assert "invalid_tool_call" in measure(row)["issues"]


def test_rows_without_tools_get_the_metrics_they_always_had() -> None:
    metrics = measure(plain_row())
    assert "tool_use" not in metrics
    assert set(metrics) == {
        "turns", "user_turns", "assistant_turns", "alternation_ok", "user_chars", "assistant_chars",
        "assistant_words", "empty_turns", "truncated_turns", "refusals", "context_overlap", "duplicate",
        "issues", "hygiene",
    }  # fmt: skip
    broken = {"conversations": [said("user", "q"), calling(call("c", "get_weather", "{}")), result("c", "x", "{}")]}
    broken["tools"] = tool_row()["tools"]
    assert measure(broken)["alternation_ok"] is False  # an exchange that stops at a tool result is no answer


def test_hygiene_checks_skip_tool_steps() -> None:
    checker = TurnChecker()
    assert checker.row(tool_row()) == {}  # the empty content of a calling step is not a "short" answer


def test_set_summary_has_valid_call_rate_coverage_and_calls_per_conversation() -> None:
    stats = EvaluationStats()
    bad = recovery_row()
    for row in (tool_row(0), bad, plain_row()):
        stats.add(row, measure(row))
    tools = stats.summary()["tools"]
    assert tools["rows"] == 2 and tools["calls"] == 5 and tools["valid_calls"] == 4
    assert tools["valid_call_rate"] == 0.8
    assert tools["tools_offered"] == 3 and tools["tools_used"] == 3 and tools["coverage"] == 1.0
    assert tools["per_tool"]["get_weather"] == {"calls": 3, "offered_in": 2}
    assert tools["calls_per_conversation"]["mean"] == 2.5
    assert tools["invalid_examples"] == ["get_weather: arguments are not valid JSON"]
    plain = EvaluationStats()
    plain.add(plain_row(), measure(plain_row()))
    assert "tools" not in plain.summary() and "tool_use" not in plain.summary()["criteria"]


def test_tool_use_is_asked_only_of_rows_with_tools_and_weighs_in() -> None:
    assert "tool_use" not in applicable_criteria(False, ["grounding"])
    assert applicable_criteria(False, ["grounding"], True)[-1] == "tool_use"
    cfg = EvaluationConfig()
    assert "tool_use" not in cfg.weights  # the fingerprint of configs that never judge tools is unchanged
    assert final_score({"coherence": 1.0, "tool_use": 0.0}, cfg.weights) == round(0.15 / 0.4, 4)
    heavy = EvaluationConfig(weights={"tool_use": 0.85})  # the config sets it like any criterion
    assert final_score({"coherence": 1.0, "tool_use": 0.0}, heavy.weights) == 0.15
    judge = ConversationJudge(provider=None, cfg=cfg)  # type: ignore[arg-type]
    verdicts = {name: CriterionVerdict(feedback="ok", score=0.8) for name in ("coherence", "relevance")}
    assert "tool_use" not in judge.verdict(verdicts, "m").evaluation  # a plain row is written as before
    verdicts["tool_use"] = CriterionVerdict(feedback="right tool", score=0.5)
    assert judge.verdict(verdicts, "m").evaluation["tool_use"] == {
        "score": 0.5,
        "feedback": "right tool",
        "applicable": True,
    }


def test_the_judge_reads_calls_results_and_the_offered_tools() -> None:
    text = transcript(tool_row())
    assert 'Assistant calls get_weather({"city": "Oslo", "unit": "celsius"}) [call_1]' in text
    assert 'Tool result of get_weather [call_1]: {"temp": -3, "sky": "snow"}' in text
    assert "Assistant: Let me do both.\nAssistant calls convert_currency(" in text
    assert "Assistant: \n" not in text  # a step without text shows only its calls
    request = ConversationJudge(provider=None, cfg=EvaluationConfig()).messages(tool_row(), ("tool_use",))  # type: ignore[arg-type]
    prompt = request[1]["content"]
    assert "Tools the assistant could call:\n- get_weather: Current weather in a city. Parameters: {" in prompt
    assert "- tool_use: the right tool is called" in prompt


def evaluate(tmp_path: Path, server: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "judged.jsonl"
    args = ["evaluate", str(source), "-o", str(out), "--config", str(judge_config(tmp_path, server)), "--overwrite"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def test_evaluate_through_the_cli_scores_tool_use_on_tool_rows_only(tmp_path: Path, fake_server: Any) -> None:
    asked: list[tuple[list[str], str]] = []
    respond = judge_responder(lambda name, _: 0.4 if name == "tool_use" else 0.8)

    def recording(body: dict[str, Any]) -> str | None:
        if isinstance(body.get("response_format"), dict):
            criteria = list(body["response_format"]["json_schema"]["schema"]["properties"])
            asked.append((criteria, str(body["messages"][-1]["content"])))
        return respond(body)

    fake_server.responder = recording
    tool, recovery, plain = evaluate(tmp_path, fake_server, [tool_row(0), recovery_row(0), plain_row(0)])
    assert tool["evaluation"]["tool_use"] == {"score": 0.4, "feedback": "tool_use looks fine", "applicable": True}
    # coherence, factuality, helpfulness, relevance at 0.8 (weights 0.85) and tool_use at 0.4 (weight 0.25)
    assert tool["final_score"] == round((0.85 * 0.8 + 0.25 * 0.4) / 1.1, 4)
    assert "tool_use" not in plain["evaluation"] and plain["final_score"] == 0.8
    assert recovery["metadata"]["metrics"]["tool_use"]["valid_call_rate"] == 0.5
    assert "tool_use" not in plain["metadata"]["metrics"]
    with_tools = sorted(("tool_use" in names, "Tool result of get_weather" in prompt) for names, prompt in asked)
    assert with_tools == [(False, False), (True, True), (True, True)]  # tool_use and the results: tool rows only
    assert all("Tools the assistant could call:" in p for names, p in asked if "tool_use" in names)


def test_the_fake_servers_own_judge_answers_still_parse(tmp_path: Path, fake_server: Any) -> None:
    pair = tool_row(1)
    pair["chosen"] = pair["conversations"][8]
    pair["rejected"] = {"role": "assistant", "content": "I cannot book tables."}
    pair["metadata"]["preference"] = {"turn": 2}
    rows = evaluate(tmp_path, fake_server, [tool_row(0), plain_row(0), pair])
    assert 0.0 <= rows[0]["evaluation"]["tool_use"]["score"] <= 1.0
    assert rows[1]["evaluation"]["overall_grade"] is not None
    assert [review["turn"] for review in rows[2]["evaluation"]["preference"]] == [2]  # user turns, not messages


def test_the_summary_and_html_report_show_the_tool_metrics(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", [tool_row(0), copy.deepcopy(recovery_row(0))])
    report = tmp_path / "report.html"
    args = ["evaluate", str(source), "-o", str(tmp_path / "o.jsonl"), "--no-judge", "--report", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "valid calls 4/5 (80.0%)" in result.output
    html = report.read_text()
    assert "<h2>Tool calls</h2>" in html and "get_weather" in html
    summary = CliRunner().invoke(app, [*args[:-2], "--json", "-q", "--overwrite"])
    assert orjson.loads(summary.stdout)["tools"]["valid_call_rate"] == 0.8


def test_quality_gate_pairs_part_at_answers_never_at_tool_steps() -> None:
    from afterimage_cli.config import QualityConfig
    from afterimage_cli.evaluation.judge import Verdict
    from afterimage_cli.evaluation.quality import QualityGate, _parting_answer

    row, worse = tool_row(), tool_row()
    worse["conversations"][8]["content"] = "Booked."  # the same tool steps, another final answer
    gate = QualityGate(judge=None, cfg=QualityConfig(auto_improve=True, keep_pairs=True))  # type: ignore[arg-type]
    passed, failed = Verdict({}, 0.9, "perfect"), Verdict({}, 0.3, "bad")
    gate._pair(row, passed, 1, [(worse, failed), (row, passed)])
    assert row["rejected"]["content"] == "Booked." and row["chosen"] == row["conversations"][8]
    assert row["metadata"]["preference"]["turn"] == 2  # the second user turn, though it sits at index 4
    kept = tool_row()["conversations"]
    other = copy.deepcopy(kept)
    other[5]["tool_calls"] = other[5]["tool_calls"][:1]  # parted at a calling step (same empty text)
    assert _parting_answer(kept, other) is None
