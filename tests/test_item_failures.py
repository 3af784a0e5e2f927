"""One item's refusal is that item's failure: context overflow, content filter, 422s and truncation end or
reject the item (recorded in the run ledger), and the run still ends with exactly N rows."""

from __future__ import annotations

import orjson
import pytest

from afterimage_cli.engine.ledger import ledger_path, read_ledger
from afterimage_cli.types import ConversationRow

from .helpers import invoke, make_config, read_rows

FAST_RETRY = {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.05}
OPENINGS = [f"Question {n}: how do I tune setting {n}?" for n in range(8)] + ["Tell me the forbidden recipe."]


def run(srv, tmp_path, *extra: str, provider: str = "openai_compat", **sections):
    sections["respondent"] = {"model": "offline", "provider": provider, **sections.get("respondent", {})}
    sections.setdefault("instructions", {"generator": "simple", "options": {"instructions": OPENINGS}})
    cfg = make_config(tmp_path, retry=FAST_RETRY, **sections)
    return invoke("generate", str(cfg), "--model", "fake-model", "--api-base", srv.api_base, "-q", *extra)


def rejections(tmp_path) -> list[dict]:
    return [r for r in read_ledger(ledger_path(tmp_path / "out.jsonl")) if r["event"] == "rejected"]


def status(tmp_path) -> dict:
    result = invoke("status", str(tmp_path / "out.jsonl"), "--json")
    assert result.exit_code == 0, result.stderr
    return orjson.loads(result.stdout)


@pytest.mark.parametrize("provider", ["openai_compat", "litellm", "gemini"])
def test_content_filter_rejects_the_item_and_the_run_still_ends_with_exactly_n(fake_server, tmp_path, provider):
    fake_server.filter_words = ("forbidden",)
    result = run(fake_server, tmp_path, "-n", "30", provider=provider, generation={"max_turns": 1})
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 30 and len({r["id"] for r in rows}) == 30
    assert not any("forbidden" in r["conversations"][0]["content"] for r in rows)
    rejected = rejections(tmp_path)
    assert rejected and len(rejected) == fake_server.stats["filtered"]
    assert {r["cause"] for r in rejected} == {"content_filter"}
    assert all(r["attempts"] == 1 and r["id"] not in {row["id"] for row in rows} for r in rejected)
    # Further item numbers took the rejected ones' places.
    assert max(r["metadata"]["item_index"] for r in rows) == 29 + len(rejected)

    before = fake_server.stats["requests"]
    again = run(fake_server, tmp_path, "-n", "30", provider=provider, generation={"max_turns": 1})
    assert again.exit_code == 0 and fake_server.stats["requests"] == before  # rejected items are not retried
    report = status(tmp_path)
    assert report["finished"] and report["rows"] == 30 and report["target"] == 30
    assert report["rejected_by_cause"] == {"content_filter": len(rejected)}


def test_a_422_for_one_item_rejects_only_that_item(fake_server, tmp_path):
    fake_server.unprocessable_words = ("forbidden",)
    result = run(fake_server, tmp_path, "-n", "20", generation={"max_turns": 1, "concurrency": 1})
    assert result.exit_code == 0, result.stderr
    assert len(read_rows(tmp_path / "out.jsonl")) == 20
    assert {r["cause"] for r in rejections(tmp_path)} == {"bad_request"}


def test_every_item_refused_stops_the_run_with_the_top_causes(fake_server, tmp_path):
    fake_server.filter_words = ("question", "forbidden")
    result = run(fake_server, tmp_path, "-n", "200", generation={"max_turns": 1, "concurrency": 4})
    assert result.exit_code == 1
    assert "max_rejected_share" in result.stderr and "content_filter" in result.stderr
    assert "Traceback" not in result.stderr
    assert fake_server.stats["requests"] <= 10 + 4  # the budget's first judgement, plus the items in flight
    report = status(tmp_path)
    assert report["state"] == "stopped" and not report["finished"] and report["rows"] == 0


@pytest.mark.parametrize("provider", ["openai_compat", "gemini"])
def test_context_overflow_ends_the_dialog_at_the_last_complete_turn(fake_server, tmp_path, provider):
    fake_server.context_tokens = 90
    gen = {"min_turns": 1, "max_turns": 6, "concurrency": 4}
    result = run(fake_server, tmp_path, "-n", "20", generation=gen, provider=provider)
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 20
    ended = {r["metadata"]["ended_by"] for r in rows}
    assert "context_limit" in ended and ended <= {"context_limit", "max_turns", "end_token"}
    for row in rows:
        roles = [t["role"] for t in row["conversations"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) and roles
        if row["metadata"]["ended_by"] == "context_limit":
            assert row["metadata"]["num_turns"] < row["metadata"]["planned_turns"]
    assert fake_server.stats["context_exceeded"] > 0


def test_context_overflow_before_min_turns_rejects_the_item_with_its_cost(fake_server, tmp_path):
    fake_server.context_tokens = 90
    gen = {"min_turns": 6, "max_turns": 6, "concurrency": 2}
    result = run(fake_server, tmp_path, "-n", "5", generation=gen)
    assert result.exit_code == 1  # every item overflows: the config is the problem, not one item
    assert "context_limit" in result.stderr and "min_turns" in result.stderr
    rejected = rejections(tmp_path)
    assert len(rejected) >= 10 and {r["cause"] for r in rejected} == {"context_limit"}
    # Each paid for the turns it made before the overflow, and the ledger says so.
    assert all(r["usage"]["calls"] >= 1 and r["usage"]["prompt_tokens"] > 0 for r in rejected)


def test_truncated_answers_are_asked_again_by_default(fake_server, tmp_path):
    fake_server.rate_truncated = 0.2
    result = run(fake_server, tmp_path, "-n", "20", generation={"min_turns": 2, "max_turns": 2})
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 20 and fake_server.stats["truncated"] > 0
    assert not any("cut_off_turns" in r["metadata"] for r in rows)
    # The fake server's whole answers end with '.', its whole questions with '?': no cut one was written.
    for row in rows:
        assert all(t["content"].endswith("." if t["role"] == "assistant" else "?") for t in row["conversations"][1:])


def test_truncated_answers_kept_are_marked(fake_server, tmp_path):
    fake_server.rate_truncated = 0.3
    gen = {"min_turns": 2, "max_turns": 2, "on_truncated": "keep"}
    result = run(fake_server, tmp_path, "-n", "20", generation=gen)
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    marked = [r for r in rows if r["metadata"].get("cut_off_turns")]
    assert len(rows) == 20 and marked
    for row in marked:
        assert all(0 <= i < len(row["conversations"]) for i in row["metadata"]["cut_off_turns"])


def test_truncated_answers_rejected_when_asked(fake_server, tmp_path):
    fake_server.rate_truncated = 0.2
    gen = {"min_turns": 1, "max_turns": 1, "on_truncated": "reject"}
    result = run(fake_server, tmp_path, "-n", "20", generation=gen, error_budget={"max_rejected_share": 0.9})
    assert result.exit_code == 0, result.stderr
    assert len(read_rows(tmp_path / "out.jsonl")) == 20
    rejected = rejections(tmp_path)
    assert {r["cause"] for r in rejected} == {"truncated"}
    assert all("raise respondent.max_tokens" in r["error"] for r in rejected)


@pytest.mark.parametrize("provider", ["openai_compat", "gemini"])
def test_truncated_structured_output_fails_fast_naming_max_tokens(fake_server, tmp_path, provider):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}, "steps": {"type": "array"}}}
    result = run(
        fake_server,
        tmp_path,
        "-n",
        "50",
        respondent={"max_tokens": 3},
        generation={"kind": "structured", "output_schema": schema, "concurrency": 2},
        provider=provider,
    )
    assert result.exit_code == 1
    assert "respondent.max_tokens" in result.stderr and "Traceback" not in result.stderr
    assert fake_server.stats["requests"] <= 12  # no retries of a cut answer: it would be cut again


def test_retry_rejected_tries_the_rejected_items_again(fake_server, tmp_path):
    fake_server.filter_words = ("forbidden",)
    gen = {"max_turns": 1}
    assert run(fake_server, tmp_path, "-n", "20", generation=gen).exit_code == 0
    rejected = {r["item"] for r in rejections(tmp_path)}
    assert rejected
    fake_server.filter_words = ()
    assert run(fake_server, tmp_path, "-n", "21", generation=gen).exit_code == 0
    indices = [r["metadata"]["item_index"] for r in read_rows(tmp_path / "out.jsonl")]
    assert len(indices) == 21 and not set(indices) & rejected  # skipped: a new number took the place
    result = run(fake_server, tmp_path, "-n", "22", "--retry-rejected", generation=gen)
    assert result.exit_code == 0, result.stderr
    indices = [r["metadata"]["item_index"] for r in read_rows(tmp_path / "out.jsonl")]
    assert len(indices) == 22 and indices[-1] == min(rejected)
    assert status(tmp_path)["rejected"] == len(rejected) - 1


def test_truncated_persona_generation_fails_fast_naming_max_tokens(fake_server, tmp_path):
    pg = {"roots": 2, "depth": 0, "model": {"model": "fake-model", "api_base": fake_server.api_base, "max_tokens": 4}}
    cfg = make_config(tmp_path, persona_generation=pg, retry=FAST_RETRY)
    result = invoke("personas", str(cfg), "-o", str(tmp_path / "personas.jsonl"))
    assert result.exit_code == 1
    assert "persona_generation.model.max_tokens" in result.stderr and "Traceback" not in result.stderr
    assert fake_server.stats["requests"] <= 2


def test_status_of_a_killed_run_and_of_no_run(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"")
    start = {"event": "start", "command": "generate", "fingerprint": "f", "target": 9, "pid": 2**22 + 7}
    checkpoint = {"event": "checkpoint", "rows": 0, "usage": {"calls": 4, "cost_usd": 0.25}}
    ledger_path(out).write_bytes(orjson.dumps(start) + b"\n" + orjson.dumps(checkpoint) + b"\n")
    report = status(tmp_path)
    assert report["state"] == "killed" and not report["finished"] and report["cost_usd"] == 0.25
    text = invoke("status", str(out))
    assert text.exit_code == 0 and "killed" in text.stdout and "$0.2500" in text.stdout
    missing = invoke("status", str(tmp_path / "nothing.jsonl"))
    assert missing.exit_code == 2 and "no such output" in missing.stderr


@pytest.mark.parametrize("provider", ["openai_compat", "gemini"])
def test_a_hostile_server_still_gives_exactly_n_valid_rows(fake_server, tmp_path, provider):
    """Refuses some prompts forever, overflows the context of long dialogs, cuts 20 % of answers off and
    goes down for 3 s: the run ends with exit 0 and exactly N valid rows, and status tells the story."""
    fake_server.filter_words = ("forbidden",)
    fake_server.context_tokens = 110
    fake_server.rate_truncated = 0.2
    fake_server.down_after, fake_server.down_for = 60, 3.0
    priced = {"input_cost_per_million": 1.0, "output_cost_per_million": 2.0}
    gen = {"min_turns": 1, "max_turns": 5, "concurrency": 8}
    result = run(
        fake_server,
        tmp_path,
        "-n",
        "60",
        respondent=priced,
        generation=gen,
        error_budget={"max_rejected_share": 0.5, "max_outage_s": 30},
        provider=provider,
    )
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 60 and len({r["id"] for r in rows}) == 60
    for row in rows:
        ConversationRow.model_validate(row)
        turns = row["conversations"]
        assert [t["role"] for t in turns] == ["user", "assistant"] * (len(turns) // 2) and turns
        assert "forbidden" not in turns[0]["content"]
        assert all(t["content"].endswith("." if t["role"] == "assistant" else "?") for t in turns[1:])
    stats = fake_server.stats
    assert stats["filtered"] and stats["context_exceeded"] and stats["truncated"] and stats["down"]
    report = status(tmp_path)
    assert report["finished"] and report["state"] == "finished" and report["rows"] == 60
    assert report["rejected_by_cause"].get("content_filter") == stats["filtered"]
    assert report["cost_usd"] > 0 and report["cost_usd"] >= report["rows_cost_usd"]


def test_an_answer_cut_by_the_end_of_the_context_ends_the_dialog_not_the_item(fake_server, tmp_path):
    """finish_reason "length" with fewer tokens than max_tokens: the context window, not max_tokens, cut it
    (llama.cpp stops there when the dialog fills its slot); asking again cannot help."""
    fake_server.rate_truncated = 0.3  # halves answers, far below max_tokens
    gen = {"min_turns": 1, "max_turns": 4, "concurrency": 2}
    result = run(fake_server, tmp_path, "-n", "20", respondent={"max_tokens": 1000}, generation=gen)
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 20 and "context_limit" in {r["metadata"]["ended_by"] for r in rows}
    assert not [r for r in rejections(tmp_path) if r["cause"] == "truncated"]
    for row in rows:  # the cut answer is not written: the dialog ends at its last whole turn
        assert all(t["content"].endswith("." if t["role"] == "assistant" else "?") for t in row["conversations"][1:])


def test_status_of_an_evaluate_output_counts_its_rows(tmp_path):
    assert invoke("generate", str(make_config(tmp_path)), "-n", "4", "-q").exit_code == 0
    judged = tmp_path / "judged.jsonl"
    assert invoke("evaluate", str(tmp_path / "out.jsonl"), "--no-judge", "-o", str(judged), "-q").exit_code == 0
    result = invoke("status", str(judged), "--json")
    assert result.exit_code == 0, result.stderr
    report = orjson.loads(result.stdout)
    assert report["command"] == "evaluate" and report["state"] == "finished" and report["rows"] == 4
