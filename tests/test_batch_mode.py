"""Batch mode end to end: generate and evaluate in rounds through the fake server's OpenAI batch endpoint,
with exact row counts, no request submitted twice (the server counts every line it receives), and resume
after kill -9 from the batches and answers the run ledger holds."""

from __future__ import annotations

import signal
import time

import orjson
import pytest

from afterimage_cli.engine.ledger import ledger_path, read_ledger
from afterimage_cli.providers.pricing import price_per_token

from .helpers import cli_subprocess, invoke, make_config, read_rows

FAST_RETRY = {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.05}
OPENINGS = [f"Question {n}: how do I tune setting {n}?" for n in range(8)]
PRICED = {"input_cost_per_million": 2.0, "output_cost_per_million": 8.0}


def config(tmp_path, **sections):
    sections.setdefault("instructions", {"generator": "simple", "options": {"instructions": OPENINGS}})
    batch = {"poll_interval": 0.01, **sections.pop("batch", {})}
    return make_config(tmp_path, retry=FAST_RETRY, batch=batch, **sections)


def generate(srv, tmp_path, *extra: str, **sections):
    cfg = config(tmp_path, **sections)
    args = ("generate", str(cfg), "--model", "fake-model", "--api-base", srv.api_base, "--mode", "batch")
    return invoke(*args, "--json", *extra)


def summary_of(result) -> dict:
    assert result.exit_code == 0, result.stderr
    return orjson.loads(result.stdout)


def ledger(tmp_path) -> list[dict]:
    return read_ledger(ledger_path(tmp_path / "out.jsonl"), answers=True)


def assert_each_request_sent_once(srv) -> None:
    received = srv.batch_api.lines_received
    assert received and max(received.values()) == 1, [cid for cid, n in received.items() if n > 1]


def test_exact_rows_through_batches_only_each_request_once(fake_server, tmp_path):
    summary = summary_of(generate(fake_server, tmp_path, "-n", "12", "--max-turns", "3"))
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 12 and len({r["id"] for r in rows}) == 12
    assert fake_server.stats["requests"] == 0  # no online chat call
    assert_each_request_sent_once(fake_server)
    batch = summary["batch"]
    assert batch["requests_submitted"] == sum(fake_server.batch_api.lines_received.values()) == summary["calls"]
    # Every item advances one call per round: no more rounds than the longest dialog has calls (2 × 3 - 1).
    assert 1 < batch["rounds"] <= 5 + 1
    assert max(len(r["conversations"]) for r in rows) <= 6
    # The same kind of rows as online mode.
    assert all(r["metadata"]["ended_by"] in ("max_turns", "end_token") for r in rows)


def test_cost_is_the_batch_price(fake_server, tmp_path):
    summary = summary_of(generate(fake_server, tmp_path, "-n", "4", respondent={"model": "offline", **PRICED}))
    online_price = (summary["prompt_tokens"] * 2.0 + summary["completion_tokens"] * 8.0) / 1e6
    assert summary["cost_usd"] == pytest.approx(online_price / 2)


def test_resume_of_a_finished_run_makes_no_request(fake_server, tmp_path):
    summary_of(generate(fake_server, tmp_path, "-n", "5"))
    created, lines = fake_server.batch_api.batches_created, sum(fake_server.batch_api.lines_received.values())
    again = summary_of(generate(fake_server, tmp_path, "-n", "5"))
    assert again["rows_resumed"] == 5 and again["calls"] == 0
    assert fake_server.batch_api.batches_created == created
    assert sum(fake_server.batch_api.lines_received.values()) == lines


def test_failed_lines_are_asked_again_in_the_next_round(fake_server, tmp_path):
    fake_server.batch_api.batch_line_fail_rate = 0.1
    summary = summary_of(generate(fake_server, tmp_path, "-n", "20", "--max-turns", "2"))
    assert len(read_rows(tmp_path / "out.jsonl")) == 20
    assert summary["retries"] > 0 and summary["errors"]
    assert fake_server.stats["requests"] == 0
    # A failed line is a new request (its own custom id) in a later round, never the same line twice.
    assert_each_request_sent_once(fake_server)
    failed = [r for r in ledger(tmp_path) if r["event"] == "batch_line" and "error" in r]
    assert failed and all(r["error"]["retryable"] for r in failed)


def test_an_expired_batch_has_its_unanswered_lines_asked_again(fake_server, tmp_path):
    fake_server.batch_api.batch_expire_after = 4
    summary = summary_of(generate(fake_server, tmp_path, "-n", "6", "--max-turns", "1"))
    assert len(read_rows(tmp_path / "out.jsonl")) == 6
    assert summary["errors"].get("batch_unanswered", 0) >= 2
    ended = [r for r in ledger(tmp_path) if r["event"] == "batch_ended"]
    assert ended[0]["status"] == "expired" and ended[0]["answered"] == 4
    assert_each_request_sent_once(fake_server)


def test_a_failed_batch_stops_the_run_naming_the_line(fake_server, tmp_path):
    fake_server.batch_api.batch_fail_validation = 2
    result = generate(fake_server, tmp_path, "-n", "4")
    assert result.exit_code == 1
    assert "failed" in result.stderr and "line 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_cost_budget_stops_submitting_rounds_and_a_rerun_finishes(fake_server, tmp_path):
    respondent = {"model": "offline", **PRICED}
    stopped = generate(
        fake_server, tmp_path, "-n", "6", "--max-turns", "3", "--max-cost", "0.0001", respondent=respondent
    )
    assert stopped.exit_code != 0 and "budget" in stopped.stderr
    written = len(read_rows(tmp_path / "out.jsonl")) if (tmp_path / "out.jsonl").exists() else 0
    assert written < 6
    finished = summary_of(generate(fake_server, tmp_path, "-n", "6", "--max-turns", "3", respondent=respondent))
    assert finished["rows_total"] == 6 and len(read_rows(tmp_path / "out.jsonl")) == 6
    assert_each_request_sent_once(fake_server)  # the stopped session's answers were replayed from the ledger


@pytest.mark.parametrize("hang_from", [1, 2])
def test_kill_9_during_a_round_then_rerun_submits_nothing_twice(fake_server, tmp_path, hang_from):
    """Killed while round `hang_from` runs at the provider: the re-run replays the rounds before it from the
    ledger, waits for the running batch by its id, and goes on; no line reaches the server twice."""
    cfg = config(tmp_path)
    batches = fake_server.batch_api
    batches.batch_hang_from = hang_from
    args = ("generate", str(cfg), "--model", "fake-model", "--api-base", fake_server.api_base, "--mode", "batch")
    proc = cli_subprocess(*args, "-n", "8", "--max-turns", "3", "-q")
    try:
        submitted = lambda: sum(r["event"] == "batch_submitted" for r in ledger(tmp_path))  # noqa: E731
        deadline = time.monotonic() + 120
        while submitted() < hang_from and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert submitted() == hang_from, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    report = invoke("status", str(tmp_path / "out.jsonl"), "--json")
    status = orjson.loads(report.stdout)
    assert status["state"] == "killed" and status["batch"]["rounds"] == hang_from
    assert status["batch"]["in_flight"] == 1 and status["batch"]["batches"][-1]["round"] == hang_from
    text = invoke("status", str(tmp_path / "out.jsonl")).stdout
    assert f"round {hang_from}" in text and status["batch"]["batches"][-1]["id"] in text
    batches.batch_hang_from = None
    summary = summary_of(invoke(*args, "-n", "8", "--max-turns", "3", "--json"))
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 8 and len({r["id"] for r in rows}) == 8
    assert_each_request_sent_once(fake_server)
    assert fake_server.stats["requests"] == 0
    # The killed session's running batch was adopted, not submitted again.
    assert summary["batch"]["requests_submitted"] < sum(batches.lines_received.values())


def test_evaluate_judges_through_batches_and_resumes_without_asking_again(fake_server, tmp_path):
    summary_of(invoke("generate", str(config(tmp_path)), "-n", "6", "--json"))  # offline rows to judge
    cfg = config(tmp_path, cache={"enabled": False})
    out = tmp_path / "judged.jsonl"
    args = ("evaluate", str(tmp_path / "out.jsonl"), "-o", str(out), "-c", str(cfg), "--judge-model", "fake-model")
    args += ("--api-base", fake_server.api_base, "--mode", "batch", "--json")
    summary = summary_of(invoke(*args))
    assert summary["rows"]["written"] == 6 and len(read_rows(out)) == 6
    assert all(r["final_score"] is not None for r in read_rows(out))
    assert fake_server.stats["requests"] == 0 and fake_server.batch_api.batches_created == 1
    assert_each_request_sent_once(fake_server)
    again = summary_of(invoke(*args))
    assert again["rows"]["resumed"] == 6 and fake_server.batch_api.batches_created == 1


def test_a_round_is_split_at_max_requests_and_a_batch_refused_for_now_is_sent_later(fake_server, tmp_path):
    fake_server.batch_api.batch_enqueued_limit = 5  # 3 + 3 lines in flight at once are over it
    summary = summary_of(generate(fake_server, tmp_path, "-n", "8", "--max-turns", "1", batch={"max_requests": 3}))
    assert len(read_rows(tmp_path / "out.jsonl")) == 8
    ended = [r for r in ledger(tmp_path) if r["event"] == "batch_ended"]
    assert max(r["total"] for r in ended) <= 3
    assert any(r["status"] == "failed" for r in ended)  # refused over the quota, then asked again
    assert summary["errors"].get("rate_limit", 0) >= 1 and fake_server.stats["requests"] == 0


def test_a_round_smaller_than_finish_online_below_goes_out_online(fake_server, tmp_path):
    summary = summary_of(
        generate(fake_server, tmp_path, "-n", "6", "--max-turns", "3", batch={"finish_online_below": 4})
    )
    assert len(read_rows(tmp_path / "out.jsonl")) == 6
    batch = summary["batch"]
    assert batch["requests_online"] == fake_server.stats["requests"] > 0  # the small tail rounds
    assert batch["requests_submitted"] == sum(fake_server.batch_api.lines_received.values()) > 0
    assert batch["requests_online"] + batch["requests_submitted"] == summary["calls"]


def test_a_submission_that_keeps_failing_is_asked_again_next_round(fake_server, tmp_path):
    fake_server.batch_api.batch_http_errors = [500] * 4  # more than the client's own retries of the upload
    summary = summary_of(generate(fake_server, tmp_path, "-n", "4", "--max-turns", "2"))
    assert len(read_rows(tmp_path / "out.jsonl")) == 4
    assert summary["errors"].get("server", 0) >= 1
    assert_each_request_sent_once(fake_server)


def test_a_refused_submission_stops_the_run_instead_of_rejecting_items(fake_server, tmp_path):
    fake_server.batch_api.batch_http_errors = [401]
    result = generate(fake_server, tmp_path, "-n", "4")
    assert result.exit_code == 1 and "refused a batch" in result.stderr
    assert not [r for r in ledger(tmp_path) if r["event"] == "rejected"]


def test_items_in_flight_bounds_a_round_and_items_refill_it(fake_server, tmp_path):
    summary_of(generate(fake_server, tmp_path, "-n", "7", "--max-turns", "2", batch={"items_in_flight": 3}))
    assert len(read_rows(tmp_path / "out.jsonl")) == 7
    sizes = [len(r["custom_ids"]) for r in ledger(tmp_path) if r["event"] == "batch_submitted"]
    assert max(sizes) == 3 and sum(sizes) > 7  # items that ended were replaced in the next round


def test_evaluation_mode_in_the_config_batches_the_judge(fake_server, tmp_path):
    summary_of(invoke("generate", str(config(tmp_path)), "-n", "3", "--json"))
    cfg = config(tmp_path, evaluation={"mode": "batch"})
    args = ("evaluate", str(tmp_path / "out.jsonl"), "-o", str(tmp_path / "j.jsonl"), "-c", str(cfg))
    summary_of(invoke(*args, "--judge-model", "fake-model", "--api-base", fake_server.api_base, "--json"))
    assert fake_server.batch_api.batches_created == 1 and fake_server.stats["requests"] == 0


def test_dry_run_estimates_batch_prices_and_rounds(tmp_path):
    # A priced model at a server of our own (a dry run calls nothing): the estimate uses litellm's batch prices.
    respondent = {"model": "openai/gpt-4o-mini", "api_base": "http://127.0.0.1:9/v1"}
    cfg = config(tmp_path, respondent=respondent, generation={"min_turns": 3})
    args = ("generate", str(cfg), "--dry-run", "--json", "-n", "1000", "--max-turns", "3")
    online = orjson.loads(invoke(*args).stdout)["estimate"]
    batch = orjson.loads(invoke(*args, "--mode", "batch").stdout)["estimate"]
    assert batch["cost_usd"] == pytest.approx(online["cost_usd"] / 2, rel=0.01)
    assert batch["rounds"] == 5 and "rounds" not in online


def test_offline_model_cannot_run_in_batch_mode(tmp_path):
    result = invoke("generate", str(config(tmp_path)), "--mode", "batch", "-n", "2")
    assert result.exit_code == 2
    assert "respondent: offline cannot run in batch mode" in result.stderr and "Traceback" not in result.stderr
    validated = invoke("validate", str(config(tmp_path, generation={"mode": "batch"})))
    assert validated.exit_code == 2 and "cannot run in batch mode" in validated.stderr
    litellm = config(tmp_path, generation={"mode": "batch"}, respondent={"model": "ollama/llama3"})
    refused = invoke("generate", str(litellm), "--dry-run")
    assert refused.exit_code == 2 and "respondent: ollama/llama3" in refused.stderr


def test_anthropic_models_run_through_message_batches(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_server.url)
    cfg = config(tmp_path, respondent={"model": "anthropic/claude-haiku-4-5"})
    summary = summary_of(invoke("generate", str(cfg), "--mode", "batch", "-n", "6", "--max-turns", "3", "--json"))
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 6 and fake_server.stats["requests"] == 0
    assert all(r["conversations"][1]["content"] for r in rows)
    assert_each_request_sent_once(fake_server)
    batch = summary["batch"]
    assert batch["requests_submitted"] == summary["calls"] == sum(fake_server.batch_api.lines_received.values())
    price = price_per_token("anthropic/claude-haiku-4-5", "claude-haiku-4-5")
    assert price is not None and summary["cost_usd"] is not None
    online = price.cost(summary["prompt_tokens"], summary["completion_tokens"])
    assert summary["cost_usd"] == pytest.approx(online / 2, rel=0.05)


def test_evaluate_killed_during_its_batch_resumes_without_asking_again(fake_server, tmp_path):
    summary_of(invoke("generate", str(config(tmp_path)), "-n", "6", "--json"))  # offline rows to judge
    cfg = config(tmp_path, cache={"enabled": False})
    out = tmp_path / "judged.jsonl"
    args = ("evaluate", str(tmp_path / "out.jsonl"), "-o", str(out), "-c", str(cfg), "--judge-model", "fake-model")
    args += ("--api-base", fake_server.api_base, "--mode", "batch")
    fake_server.batch_api.batch_hang = True
    proc = cli_subprocess(*args, "-q")
    try:
        judged_ledger = ledger_path(out)
        deadline = time.monotonic() + 120
        submitted = lambda: any(r["event"] == "batch_submitted" for r in read_ledger(judged_ledger))  # noqa: E731
        while not submitted() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert submitted(), proc.stderr.read().decode() if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    fake_server.batch_api.batch_hang = False
    summary = summary_of(invoke(*args, "--json"))
    assert summary["rows"]["written"] == 6 and len(read_rows(out)) == 6
    assert fake_server.batch_api.batches_created == 1 and fake_server.stats["requests"] == 0
    assert_each_request_sent_once(fake_server)


def test_a_submission_whose_id_was_never_recorded_is_found_by_its_metadata(fake_server, tmp_path):
    """A kill between the provider creating a batch and the ledger recording its id: the re-run looks the
    batch up by the metadata recorded before submitting, and waits for it instead of submitting again."""
    cfg = config(tmp_path)
    batches = fake_server.batch_api
    batches.batch_hang_from = 1
    args = ("generate", str(cfg), "--model", "fake-model", "--api-base", fake_server.api_base, "--mode", "batch")
    proc = cli_subprocess(*args, "-n", "5", "--max-turns", "2", "-q")
    try:
        deadline = time.monotonic() + 120
        while not any(r["event"] == "batch_submitted" for r in ledger(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    path = ledger_path(tmp_path / "out.jsonl")
    kept = [line for line in path.read_bytes().splitlines() if b'"batch_submitted"' not in line]
    path.write_bytes(b"\n".join(kept) + b"\n")
    batches.batch_hang_from = None
    summary = summary_of(invoke(*args, "-n", "5", "--max-turns", "2", "--json"))
    assert len(read_rows(tmp_path / "out.jsonl")) == 5
    assert_each_request_sent_once(fake_server)
    adopted = [r for r in ledger(tmp_path) if r["event"] == "batch_submitted" and r.get("adopted")]
    assert len(adopted) == 1 and summary["batch"]["requests_submitted"] < sum(batches.lines_received.values())


def test_gemini_models_cannot_run_in_batch_mode(fake_server, tmp_path, monkeypatch):
    # The direct Gemini transport speaks no batch protocol yet: refused before any call, naming batch mode.
    monkeypatch.setenv("GEMINI_API_BASE", fake_server.url)
    cfg = config(tmp_path, respondent={"model": "gemini/gemini-2.5-flash"})
    result = invoke("generate", str(cfg), "--mode", "batch", "-n", "2")
    assert result.exit_code == 2, result.stderr
    assert "gemini/gemini-2.5-flash cannot run in batch mode" in result.stderr and "Traceback" not in result.stderr
    assert fake_server.stats["requests"] == 0 and not (tmp_path / "out.jsonl").exists()
