"""Resuming an evaluate output: only with the same judge settings, and never by two evaluates at once."""

from __future__ import annotations

import time

import pytest

from .evaluate_helpers import conversation_row, judge_config, judge_responder, write_rows
from .helpers import cli_subprocess, invoke, read_rows

N = 6


def evaluate(*args: str):
    return invoke("evaluate", *args)


def _interrupted_output(tmp_path, *judge_args: str):
    """An output an interrupted evaluate left: the first two of N rows, judged with `judge_args`."""
    source = write_rows(tmp_path / "in.jsonl", [conversation_row(i) for i in range(N)])
    out = tmp_path / "out.jsonl"
    assert evaluate(str(source), "-o", str(out), *judge_args, "-q").exit_code == 0
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:2]))
    return source, out


def test_another_judge_model_does_not_resume_into_the_old_verdicts(fake_server, tmp_path) -> None:
    fake_server.responder = judge_responder()
    source, out = _interrupted_output(tmp_path, "--judge-model", "offline")
    partial = out.read_bytes()
    cfg = str(judge_config(tmp_path, fake_server))
    result = evaluate(str(source), "-o", str(out), "-c", cfg, "-q")
    assert result.exit_code == 2
    assert f"{out}:1 holds a row evaluated with other settings" in result.stderr and "--overwrite" in result.stderr
    assert out.read_bytes() == partial and fake_server.stats["requests"] == 0
    result = evaluate(str(source), "-o", str(out), "-c", cfg, "-q", "--overwrite")
    assert result.exit_code == 0, result.stderr
    rows = read_rows(out)
    assert len(rows) == N and {r["evaluation"]["judge_model"] for r in rows} == {"openai/fake-model"}


@pytest.mark.parametrize(
    "changed",
    [
        {"weights": {"factuality": 0.9}},
        {"grades": {"good": 0.6}},
        {"context_criteria": ["grounding", "factuality"]},
        {"max_context_chars": 100},
    ],
    ids=["weights", "grades", "criteria", "context-limit"],
)
def test_changed_evaluation_settings_are_refused(tmp_path, changed) -> None:
    source, out = _interrupted_output(tmp_path, "--judge-model", "offline")
    cfg = str(judge_config(tmp_path, **changed))
    result = evaluate(str(source), "-o", str(out), "-c", cfg, "--judge-model", "offline", "-q")
    assert result.exit_code == 2 and "other settings" in result.stderr and "--overwrite" in result.stderr
    assert len(read_rows(out)) == 2


def test_operational_settings_still_resume(fake_server, tmp_path) -> None:
    """Concurrency, retries and the endpoint are not judge settings: a changed one resumes."""
    fake_server.responder = judge_responder()
    source, out = _interrupted_output(tmp_path, "-c", str(judge_config(tmp_path, fake_server)))
    other = judge_config(tmp_path, fake_server, concurrency=2)
    fake_server.reset_stats()
    result = evaluate(str(source), "-o", str(out), "-c", str(other), "--concurrency", "3", "-q")
    assert result.exit_code == 0, result.stderr
    assert len(read_rows(out)) == N and fake_server.stats["ok"] == N - 2


def test_no_judge_output_is_not_resumed_by_a_judged_run(tmp_path) -> None:
    source, out = _interrupted_output(tmp_path, "--no-judge")
    result = evaluate(str(source), "-o", str(out), "--judge-model", "offline", "-q")
    assert result.exit_code == 2 and "--overwrite" in result.stderr


def test_second_evaluate_on_the_same_output_is_refused(fake_server, tmp_path) -> None:
    fake_server.responder = judge_responder()
    fake_server.latency = 0.05
    rows = 30
    source = write_rows(tmp_path / "in.jsonl", [conversation_row(i) for i in range(rows)])
    out = tmp_path / "out.jsonl"
    cfg = str(judge_config(tmp_path, fake_server))
    first = cli_subprocess("evaluate", str(source), "-o", str(out), "-c", cfg, "-q", "--concurrency", "1")
    deadline = time.monotonic() + 30
    while not out.exists() or not out.read_bytes():
        assert first.poll() is None, first.stderr.read().decode()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)
    second = evaluate(str(source), "-o", str(out), "-c", cfg, "-q")
    assert second.exit_code == 2 and "being written by another afterimage run" in second.stderr
    assert first.wait(timeout=60) == 0, first.stderr.read().decode()
    written = read_rows(out)
    assert len(written) == rows and len({r["id"] for r in written}) == rows
