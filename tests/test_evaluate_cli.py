"""`afterimage evaluate` end to end: the judge against the fake server, resume, --min-score, bad input."""

from __future__ import annotations

import orjson
import pytest

from afterimage_cli.engine.ledger import ledger_path, read_ledger
from afterimage_cli.types import ConversationRow

from .evaluate_helpers import conversation_row, judge_config, judge_responder, published_row, write_rows
from .helpers import invoke, read_rows


def evaluate(*args: str, input: str | None = None):
    return invoke("evaluate", *args, input=input)


def test_judge_scores_every_row_and_grounding_is_not_applicable_without_context(fake_server, tmp_path) -> None:
    asked: list[list[str]] = []
    respond = judge_responder(lambda name, _: {"coherence": 0.9, "factuality": 0.8}.get(name, 0.7))

    def recording(body):
        if isinstance(body.get("response_format"), dict):
            asked.append(sorted(body["response_format"]["json_schema"]["schema"]["properties"]))
        return respond(body)

    fake_server.responder = recording
    rows = [conversation_row(i, context=i < 3) for i in range(6)]
    source = write_rows(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    result = evaluate(str(source), "-o", str(out), "--config", str(judge_config(tmp_path, fake_server)), "--json")
    assert result.exit_code == 0, result.stderr
    written = read_rows(out)
    assert [r["id"] for r in written] == [r["id"] for r in rows]  # input order is kept
    for row in written:
        ConversationRow.model_validate(row)
        evaluation = row["evaluation"]
        has_context = row["instruction_context"] is not None
        assert evaluation["grounding"]["applicable"] is has_context
        if has_context:
            # 0.15·0.9 + 0.25·0.8 + 0.15·0.7 + 0.25·0.7 + 0.2·0.7 over a weight of 1.0
            assert row["final_score"] == pytest.approx(0.755)
        else:
            assert evaluation["grounding"]["score"] is None
            # Grounding's weight is dropped and the rest renormalised: no free 1.0 for a missing context.
            assert row["final_score"] == pytest.approx(
                (0.15 * 0.9 + 0.25 * 0.8 + 0.25 * 0.7 + 0.2 * 0.7) / 0.85, abs=1e-4
            )
        assert evaluation["overall_grade"] == "good"
        assert row["metadata"]["metrics"]["alternation_ok"] is True
    # The judge is never asked about grounding for a row with nothing to be grounded in.
    assert sorted(map(len, asked)) == [4, 4, 4, 5, 5, 5]
    summary = orjson.loads(result.stdout)
    assert summary["rows"]["written"] == 6 and summary["judge"]["calls"] == 6
    assert summary["criteria"]["grounding"]["not_applicable"] == 3
    assert summary["grades"]["good"] == 6


def test_grade_thresholds_and_weights_come_from_the_config(fake_server, tmp_path) -> None:
    fake_server.responder = judge_responder(lambda name, _: 1.0 if name == "factuality" else 0.5)
    source = write_rows(tmp_path / "in.jsonl", [conversation_row(i) for i in range(3)])
    cfg = judge_config(
        tmp_path,
        fake_server,
        weights={"factuality": 3.0, "coherence": 0.0},
        grades={"perfect": 0.95, "good": 0.85, "needs_improvement": 0.6, "bad": 0.4},
    )
    out = tmp_path / "out.jsonl"
    result = evaluate(str(source), "-o", str(out), "-c", str(cfg), "-q")
    assert result.exit_code == 0, result.stderr
    for row in read_rows(out):
        # factuality 1.0 × 3, helpfulness and relevance 0.5 × (0.25 + 0.2), coherence weighs nothing.
        assert row["final_score"] == pytest.approx((3 * 1.0 + 0.45 * 0.5) / 3.45, abs=1e-4)
        assert row["evaluation"]["overall_grade"] == "good"


def test_min_score_drops_rows_below_it(fake_server, tmp_path) -> None:
    fake_server.responder = judge_responder(
        lambda _, text: 0.9 if "Question 1:" in text or "Question 3:" in text else 0.3
    )
    source = write_rows(tmp_path / "in.jsonl", [conversation_row(i) for i in range(5)])
    out = tmp_path / "out.jsonl"
    cfg = str(judge_config(tmp_path, fake_server))
    result = evaluate(str(source), "-o", str(out), "-c", cfg, "--min-score", "0.6", "--json")
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in read_rows(out)] == ["row-00001", "row-00003"]
    rows = orjson.loads(result.stdout)["rows"]
    assert rows["dropped_below_min_score"] == 3 and rows["written"] == 2 and rows["evaluated"] == 5


def test_resume_judges_only_rows_missing_from_the_output(fake_server, tmp_path) -> None:
    fake_server.responder = judge_responder()
    rows = [conversation_row(i) for i in range(4)] + [published_row(i) for i in range(4, 8)]
    source = write_rows(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    cfg = str(judge_config(tmp_path, fake_server))
    assert evaluate(str(source), "-o", str(out), "-c", cfg, "-q").exit_code == 0
    complete = out.read_bytes()
    # An interrupted run: three rows (one with an id, two identified by content) and a torn line.
    lines = complete.splitlines(keepends=True)
    out.write_bytes(lines[0] + lines[5] + lines[6] + lines[7][:40])
    fake_server.reset_stats()
    result = evaluate(str(source), "-o", str(out), "-c", cfg, "--json")
    assert result.exit_code == 0, result.stderr
    assert fake_server.stats["ok"] == 5
    summary = orjson.loads(result.stdout)
    assert summary["rows"]["resumed"] == 3 and summary["rows"]["written"] == 5
    resumed = read_rows(out)
    assert len(resumed) == 8
    key = lambda r: orjson.dumps(r["conversations"])  # noqa: E731
    assert sorted(map(key, resumed)) == sorted(map(key, rows))
    assert summary["measured"] == 8  # the report covers the whole output, resumed rows included


def test_published_rows_evaluate_without_error(tmp_path) -> None:
    source = write_rows(tmp_path / "published.jsonl", [published_row(i) for i in range(6)])
    out = tmp_path / "out.jsonl"
    result = evaluate(str(source), "-o", str(out), "--judge-model", "offline", "--json")
    assert result.exit_code == 0, result.stderr
    rows = read_rows(out)
    assert len(rows) == 6
    for row in rows:
        ConversationRow.model_validate(row)
        assert row["evaluation"]["overall_grade"] is not None
        assert "id" not in row  # rows keep their own shape: evaluate adds verdicts, not identities
        assert row["metadata"]["batch_id"] == "batch-1"


def test_no_judge_keeps_existing_verdicts_and_filters_on_them(tmp_path) -> None:
    rows = [conversation_row(i, final_score=s, evaluation={"overall_grade": "good"}) for i, s in enumerate((0.9, 0.2))]
    rows.append(published_row(3))  # final_score 0.0 with evaluation null: not a verdict
    source = write_rows(tmp_path / "in.jsonl", rows)
    result = evaluate(str(source), "--no-judge", "--min-score", "0.5", "-o", "-", "-q")
    assert result.exit_code == 0, result.stderr
    kept = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in kept] == ["row-00000"]
    assert kept[0]["evaluation"] == {"overall_grade": "good"} and "metrics" in kept[0]["metadata"]


def test_default_output_sits_beside_the_input_and_report_is_self_contained(tmp_path) -> None:
    source = write_rows(tmp_path / "data.jsonl", [conversation_row(i, context=True) for i in range(5)])
    report = tmp_path / "report.html"
    result = evaluate(str(source), "--judge-model", "offline", "--report", str(report))
    assert result.exit_code == 0, result.stderr
    assert len(read_rows(tmp_path / "data.evaluated.jsonl")) == 5
    page = report.read_text()
    assert (
        page.count("<svg") >= 4
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert "grades" in result.stderr and "p90" in result.stderr


def test_stdin_to_stdout_pipeline(tmp_path) -> None:
    text = "".join(orjson.dumps(conversation_row(i)).decode() + "\n" for i in range(3))
    result = evaluate("-", "--judge-model", "offline", "-q", input=text)
    assert result.exit_code == 0, result.stderr
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["row-00000", "row-00001", "row-00002"]
    assert all(r["evaluation"]["judge_model"] == "offline" for r in rows)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json\n", "in.jsonl:3: not JSON"),
        (b'{"conversations": "hello"}\n', "in.jsonl:3: conversations: expected a non-empty list"),
        (b'{"conversations": [{"role": "bot", "content": "x"}]}\n', "in.jsonl:3: conversations[0].role"),
        (b"[1, 2]\n", "in.jsonl:3: expected a JSON object"),
    ],
)
def test_bad_input_names_the_line(tmp_path, line: bytes, message: str) -> None:
    good = orjson.dumps(conversation_row(0)) + b"\n"
    source = tmp_path / "in.jsonl"
    source.write_bytes(good + b"\n" + line + orjson.dumps(conversation_row(1)) + b"\n")
    result = evaluate(str(source), "--no-judge", "-o", str(tmp_path / "out.jsonl"), "-q")
    assert result.exit_code == 1
    assert message in result.stderr and "--skip-invalid" in result.stderr
    skipped = evaluate(str(source), "--no-judge", "-o", str(tmp_path / "skip.jsonl"), "--skip-invalid", "--json")
    assert skipped.exit_code == 0, skipped.stderr
    summary = orjson.loads(skipped.stdout)
    assert summary["rows"]["invalid_skipped"] == 1 and summary["rows"]["written"] == 2
    assert message in summary["invalid_examples"][0]


def test_broken_alternation_is_reported_not_rejected(tmp_path) -> None:
    row = conversation_row(0)
    row["conversations"].append({"role": "assistant", "content": "And one more thing, because"})
    source = write_rows(tmp_path / "in.jsonl", [row])
    result = evaluate(str(source), "--no-judge", "-o", "-", "-q")
    assert result.exit_code == 0, result.stderr
    metrics = orjson.loads(result.stdout)["metadata"]["metrics"]
    assert metrics["alternation_ok"] is False
    assert metrics["issues"] == ["broken_alternation", "truncated"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "evaluate needs a judge"),
        (("--no-judge", "--judge-model", "x/y"), "--no-judge calls no model"),
        (("--no-judge", "-o", "-", "--json"), "both go to stdout"),
        (("--judge-model", "offline", "--api-base", "http://127.0.0.1:1/v1"), "--api-base needs"),
    ],
)
def test_usage_errors_exit_2(tmp_path, args: tuple[str, ...], message: str) -> None:
    source = write_rows(tmp_path / "in.jsonl", [conversation_row(0)])
    result = evaluate(str(source), *args)
    assert result.exit_code == 2 and message in result.stderr


def test_output_must_not_be_the_input(tmp_path) -> None:
    source = write_rows(tmp_path / "in.jsonl", [conversation_row(0)])
    result = evaluate(str(source), "--no-judge", "-o", str(source))
    assert result.exit_code == 2 and "must not be the input" in result.stderr


def test_flaky_judge_is_retried(fake_server, tmp_path) -> None:
    fake_server.responder = judge_responder()
    fake_server.rate_500 = 0.2
    fake_server.rate_429 = 0.2
    fake_server.retry_after = 0.01
    source = write_rows(tmp_path / "in.jsonl", [conversation_row(i) for i in range(20)])
    out = tmp_path / "out.jsonl"
    result = evaluate(str(source), "-o", str(out), "-c", str(judge_config(tmp_path, fake_server)), "--json")
    assert result.exit_code == 0, result.stderr
    assert len(read_rows(out)) == 20
    assert orjson.loads(result.stdout)["judge"]["retries"] > 0


def test_bad_structured_output_is_retried_then_fails_the_row_only(fake_server, tmp_path) -> None:
    fake_server.rate_bad_structured = 1.0  # the default responder's JSON always breaks the schema
    source = write_rows(tmp_path / "in.jsonl", [conversation_row(i) for i in range(2)])
    out = tmp_path / "out.jsonl"
    cfg = judge_config(tmp_path, fake_server)
    result = evaluate(str(source), "-o", str(out), "-c", str(cfg), "--concurrency", "1")
    assert result.exit_code == 1
    assert "2 of 2 rows could not be judged" in result.stderr and "--retry-rejected" in result.stderr
    assert "invalid_output" in result.stderr and read_rows(out) == []
    ledger = [r for r in read_ledger(ledger_path(out)) if r["event"] == "rejected"]
    assert [r["cause"] for r in ledger] == ["invalid_output", "invalid_output"]
    # A re-run does not pay for them again; --retry-rejected does, and with a sane judge they are written.
    requests = fake_server.stats["requests"]
    assert evaluate(str(source), "-o", str(out), "-c", str(cfg)).exit_code == 1
    assert fake_server.stats["requests"] == requests
    fake_server.rate_bad_structured = 0.0
    fake_server.responder = judge_responder()
    again = evaluate(str(source), "-o", str(out), "-c", str(cfg), "--retry-rejected")
    assert again.exit_code == 0, again.stderr
    assert len(read_rows(out)) == 2


def test_rejected_key_stops_the_run(fake_server, tmp_path) -> None:
    fake_server.fail_status = 401
    source = write_rows(tmp_path / "in.jsonl", [conversation_row(i) for i in range(3)])
    result = evaluate(str(source), "-o", str(tmp_path / "o.jsonl"), "-c", str(judge_config(tmp_path, fake_server)))
    assert result.exit_code == 1 and "rejected" in result.stderr and "re-run the same command" in result.stderr


def test_bad_line_in_the_middle_of_a_judged_stream_names_it(tmp_path) -> None:
    good = [orjson.dumps(conversation_row(i)) + b"\n" for i in range(30)]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(good[:20]) + b'{"conversations": []}\n' + b"".join(good[20:]))
    out = tmp_path / "out.jsonl"
    result = evaluate(str(source), "--judge-model", "offline", "-o", str(out), "-q")
    assert result.exit_code == 1 and "in.jsonl:21: conversations: expected a non-empty list" in result.stderr
    assert "internal error" not in result.stderr
    assert len(read_rows(out)) <= 20  # what was judged before the bad line is kept, in order


def test_unknown_judge_model_stops_at_once(fake_server, tmp_path) -> None:
    from .helpers import invoke, make_config

    assert invoke("generate", str(make_config(tmp_path)), "-n", "20", "-q").exit_code == 0
    fake_server.fail_status = 404
    result = invoke(
        "evaluate",
        str(tmp_path / "out.jsonl"),
        "-o",
        str(tmp_path / "judged.jsonl"),
        "--judge-model",
        "no-such-model",
        "--api-base",
        fake_server.api_base,
        "-q",
    )
    assert result.exit_code == 1 and "not found (404)" in result.stderr
    assert fake_server.stats["requests"] <= 16  # the first wave, not a row-by-row march through the file
