"""The engine against the fake server: exact counts, token accounting, retries, bounded failure."""

from __future__ import annotations

import orjson
import pytest

from afterimage_cli.types import ConversationRow

from .helpers import invoke, make_config, read_rows

FAST_RETRY = {"max_attempts": 8, "base_delay": 0.01, "max_delay": 0.05}
TRANSPORT = {"name": "openai_compat"}


@pytest.fixture(autouse=True, params=["openai_compat", "litellm", "gemini"])
def transport(request):
    """Every engine test runs through every transport: their behaviour must be identical. (`gemini` calls
    the fake server's Gemini routes: its generateContent, its errors, its model list.)"""
    TRANSPORT["name"] = request.param
    return request.param


def served(srv, tmp_path, *extra: str, **sections):
    sections["respondent"] = {"model": "offline", **sections.get("respondent", {}), "provider": TRANSPORT["name"]}
    cfg = make_config(tmp_path, retry=FAST_RETRY, **sections)
    return invoke("generate", str(cfg), "--model", "fake-model", "--api-base", srv.api_base, "-q", *extra)


def test_hundred_three_turn_conversations_match_schema_and_tokens(fake_server, tmp_path) -> None:
    cfg = {"generation": {"min_turns": 3, "max_turns": 3, "concurrency": 16}}
    result = served(fake_server, tmp_path, "-n", "100", "--json", **cfg)
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 100 and len({r["id"] for r in rows}) == 100
    for row in rows:
        ConversationRow.model_validate(row)
        roles = [t["role"] for t in row["conversations"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) and 1 <= len(roles) // 2 <= 3
        assert row["metadata"]["models"]["respondent"] == "openai/fake-model"
    summary = orjson.loads(result.stdout)
    stats = fake_server.stats
    # Every token the server reported is accounted for, in the summary and across the rows.
    assert summary["prompt_tokens"] == stats["prompt_tokens"]
    assert summary["completion_tokens"] == stats["completion_tokens"]
    assert sum(r["metadata"]["usage"]["prompt_tokens"] for r in rows) == stats["prompt_tokens"]
    assert sum(r["metadata"]["usage"]["completion_tokens"] for r in rows) == stats["completion_tokens"]
    assert summary["calls"] == stats["ok"]


def test_exactly_n_at_high_concurrency(fake_server, tmp_path) -> None:
    fake_server.latency = 0.01
    fake_server.gather = 17  # answered only once 17 are in flight together: more than 16 workers, by count
    result = served(fake_server, tmp_path, "-n", "200", "--concurrency", "64", "--max-turns", "1")
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 200 and len({r["id"] for r in rows}) == 200
    assert fake_server.stats["max_in_flight"] > 16


def test_rate_limits_and_server_errors_are_retried(fake_server, tmp_path) -> None:
    fake_server.rate_429 = 0.3
    fake_server.retry_after = 0.02
    fake_server.rate_500 = 0.1
    result = served(fake_server, tmp_path, "-n", "40", "--concurrency", "16", "--json")
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 40 and len({r["id"] for r in rows}) == 40
    summary = orjson.loads(result.stdout)
    assert summary["errors"].get("rate_limit", 0) == fake_server.stats["429"] > 0
    assert summary["errors"].get("server", 0) == fake_server.stats["500"] > 0
    assert summary["retries"] >= fake_server.stats["429"] + fake_server.stats["500"] - summary["items_failed"] * 8


def test_garbage_bodies_are_retried_never_written(fake_server, tmp_path) -> None:
    fake_server.rate_garbage = 0.25
    result = served(fake_server, tmp_path, "-n", "20", "--json")
    assert result.exit_code == 0, result.stderr
    summary = orjson.loads(result.stdout)
    assert fake_server.stats["garbage"] > 0
    assert sum(summary["errors"].values()) >= fake_server.stats["garbage"]
    for row in read_rows(tmp_path / "out.jsonl"):
        assert all(t["content"] and "{" not in t["content"][:1] for t in row["conversations"])


def test_schema_violations_are_retried_and_counted(fake_server, tmp_path) -> None:
    fake_server.rate_bad_structured = 0.3
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
        "required": ["answer", "confidence"],
    }
    result = served(
        fake_server, tmp_path, "-n", "20", "--json", generation={"kind": "structured", "output_schema": schema}
    )
    assert result.exit_code == 0, result.stderr
    summary = orjson.loads(result.stdout)
    assert summary["errors"].get("invalid_output", 0) == fake_server.stats["bad_structured"] > 0
    for row in read_rows(tmp_path / "out.jsonl"):
        value = orjson.loads(row["conversations"][1]["content"])
        assert isinstance(value["answer"], str) and isinstance(value["confidence"], float | int)


def test_server_that_stops_answering_stops_the_run(fake_server, tmp_path) -> None:
    fake_server.latency = 0.02
    # 200 answers, then silence: with 8 workers and conversations of a few calls, some rows are done by then
    # (on any machine: a count, not a moment).
    fake_server.hang_after = 200
    cfg = {
        "respondent": {"model": "offline", "timeout": 2},
        "error_budget": {"max_consecutive_failures": 8, "max_outage_s": 3},
    }
    result = served(fake_server, tmp_path, "-n", "5000", "--concurrency", "8", **cfg)
    assert result.exit_code == 1 and fake_server.stats["hung"] >= 1
    assert "stopping" in result.stderr and "re-run" in result.stderr
    assert f"the server at {fake_server.api_base} has not answered for 3 s" in result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert 0 < len(rows) < 5000
    for row in rows:
        ConversationRow.model_validate(row)


@pytest.mark.parametrize("status,needle", [(401, "none was sent"), (400, "request was refused")])
def test_non_retryable_errors_stop_at_once(fake_server, tmp_path, status, needle) -> None:
    fake_server.fail_status = status
    result = served(fake_server, tmp_path, "-n", "5")
    assert result.exit_code == 1
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert fake_server.stats["requests"] <= 4  # at most the first wave of workers, no retries


def test_reasoning_content_is_kept(fake_server, tmp_path) -> None:
    fake_server.reasoning = True
    assert served(fake_server, tmp_path, "-n", "3").exit_code == 0
    for row in read_rows(tmp_path / "out.jsonl"):
        assistant = [t for t in row["conversations"] if t["role"] == "assistant"]
        assert all(t["reasoning_content"] for t in assistant)


def test_simulator_may_end_early(fake_server, tmp_path) -> None:
    fake_server.end_rate = 1.0
    cfg = {"generation": {"min_turns": 3, "max_turns": 3}}
    assert served(fake_server, tmp_path, "-n", "4", **cfg).exit_code == 0
    rows = read_rows(tmp_path / "out.jsonl")
    assert all(len(r["conversations"]) == 2 and r["metadata"]["planned_turns"] == 3 for r in rows)


def test_separate_user_model(fake_server, tmp_path) -> None:
    cfg = make_config(tmp_path, retry=FAST_RETRY)
    result = invoke(
        "generate",
        str(cfg),
        "-n",
        "3",
        "--model",
        "resp-model",
        "--user-model",
        "sim-model",
        "--api-base",
        fake_server.api_base,
        "-q",
    )
    assert result.exit_code == 0, result.stderr
    assert set(fake_server.stats["models"]) == {"resp-model", "sim-model"}
    assert read_rows(tmp_path / "out.jsonl")[0]["metadata"]["models"] == {
        "respondent": "openai/resp-model",
        "correspondent": "openai/sim-model",
        # The fake server lists one model, as llama.cpp does: it serves both names.
        "served": {"respondent": "fake-model", "correspondent": "fake-model"},
    }


def test_logs_progress_lines_when_stderr_is_not_a_terminal(fake_server, tmp_path, monkeypatch) -> None:
    import afterimage_cli.monitor as monitor

    monkeypatch.setattr(monitor, "LOG_SECONDS", 0.2)
    fake_server.latency = 0.05
    cfg = make_config(tmp_path, retry=FAST_RETRY, generation={"concurrency": 2})
    result = invoke("generate", str(cfg), "-n", "12", "--model", "m", "--api-base", fake_server.api_base)
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert len(lines) >= 2
    assert all(line.split()[1].endswith("/12") and "calls/s" in line and "eta" in line for line in lines)
    done = [int(line.split()[1].split("/")[0]) for line in lines]
    assert done == sorted(done) and done[-1] > 0


def test_unknown_model_stops_at_once_with_what_to_fix(fake_server, tmp_path) -> None:
    fake_server.fail_status = 404
    result = served(fake_server, tmp_path, "-n", "5")
    assert result.exit_code == 1
    assert "not found (404)" in result.stderr and "check the model name" in result.stderr
    assert fake_server.stats["requests"] <= 4
