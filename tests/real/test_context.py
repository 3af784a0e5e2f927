"""Context overflow on a real llama.cpp server with a 512-token context.

llama.cpp refuses a prompt longer than the slot's context with HTTP 400, type
`exceed_context_size_error`, "request (N tokens) exceeds the available context size (512 tokens)"; a
prompt that fits but leaves less room than max_tokens is answered (200) and cut off at the context's
end with finish_reason "length". Either way the item, not the run, has a problem: a dialog with
enough turns ends at its last complete turn (`metadata.ended_by: context_limit`), one without is
rejected into the run ledger, and the run still ends with exactly N rows — unless every item fails,
when the config is the problem and the run stops with exit 1 naming the cause.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.real.support import (
    ENDED_BY,
    LlamaServer,
    afterimage,
    describe,
    dialog_config,
    read_jsonl,
    rejections,
)

# ~900 tokens: over the 512-token context on the first call, so refused before any turn is complete.
TOO_LONG = "Please review this log and tell me what went wrong:\n" + "GET /index.html 200 0.003s cache=miss\n" * 60
SHORT = ["What is an index in SQL?", "How does HTTP caching work?", "What is a unit test?"]
# A long system prompt fills the small context in a few turns.
SYSTEM = "You are a patient, accurate assistant. " + "Explain every step, give an example, and check it. " * 15


def assert_dialogs(rows: list[dict], min_turns: int) -> None:
    for row in rows:
        turns = row["conversations"]
        meta = row["metadata"]
        assert [t["role"] for t in turns] == ["user", "assistant"] * (len(turns) // 2)
        assert meta["ended_by"] in ENDED_BY, meta
        assert min_turns <= meta["num_turns"] == len(turns) // 2 <= meta["planned_turns"]


def test_a_dialog_that_outgrows_the_context_ends_at_its_last_turn(tmp_path: Path, llama_512: LlamaServer) -> None:
    """Dialogs planned for 8 turns cannot fit 512 tokens: each ends where the next request is refused.
    Answers are kept even when cut off, so the dialog grows until the server says 400."""
    config = dialog_config(
        tmp_path, llama_512, SHORT, respondent={"max_tokens": 96},
        max_turns=8, min_turns=1, system_prompt=SYSTEM, on_truncated="keep",
    )  # fmt: skip

    run = afterimage("generate", config, "--json", cwd=tmp_path)

    assert run.returncode == 0, describe(run)
    rows = read_jsonl(tmp_path / "rows.jsonl")
    assert len(rows) == 3
    assert_dialogs(rows, min_turns=1)
    assert any(row["metadata"]["ended_by"] == "context_limit" for row in rows), [r["metadata"] for r in rows]
    assert orjson.loads(run.stdout)["rows_total"] == 3


def test_answers_cut_off_by_the_end_of_the_context_end_the_dialog(tmp_path: Path, llama_512: LlamaServer) -> None:
    """With the default on_truncated (retry, then reject), an answer cut off because the context is full
    (finish_reason "length" with fewer than max_tokens tokens) is a context limit, not a max_tokens
    problem: asking again cannot help. The dialog ends at its last complete turn; no item is rejected
    as `cut` and no message says to raise max_tokens."""
    config = dialog_config(
        tmp_path, llama_512, SHORT, respondent={"max_tokens": 400},
        max_turns=8, min_turns=1, system_prompt=SYSTEM,
    )  # fmt: skip

    run = afterimage("generate", config, "--json", cwd=tmp_path)

    assert run.returncode == 0, describe(run)
    rows = read_jsonl(tmp_path / "rows.jsonl")
    assert len(rows) == 3
    assert_dialogs(rows, min_turns=1)
    assert not [r for r in rejections(tmp_path) if r["cause"] == "cut"], rejections(tmp_path)


def test_items_that_overflow_before_min_turns_are_rejected_and_replaced(tmp_path: Path, llama_512: LlamaServer) -> None:
    """Openings too long for the context are refused on the first call: those items are rejected into the
    ledger with their cause, and further item numbers keep the run at exactly 3 rows. (Short answers
    cut off at 32 tokens are kept: this test is about the context, not max_tokens.)"""
    config = dialog_config(
        tmp_path, llama_512, [TOO_LONG, TOO_LONG, *SHORT], respondent={"max_tokens": 32}, on_truncated="keep"
    )

    run = afterimage("generate", config, "--json", cwd=tmp_path)

    assert run.returncode == 0, describe(run)
    rows = read_jsonl(tmp_path / "rows.jsonl")
    assert len(rows) == 3 and len({r["id"] for r in rows}) == 3
    assert all(row["conversations"][0]["content"] in SHORT for row in rows)
    rejected = rejections(tmp_path)
    assert rejected, "seed 7 draws a too-long opening for at least one of the first items"
    assert {r["cause"] for r in rejected} == {"context_limit"}
    assert all("exceeds the available context size" in r["error"] for r in rejected)
    assert not {r["id"] for r in rejected} & {r["id"] for r in rows}

    status = afterimage("status", "rows.jsonl", "--json", cwd=tmp_path)
    assert status.returncode == 0, describe(status)
    report = orjson.loads(status.stdout)
    assert report["rows"] == 3 and report["finished"] is True
    assert report["rejected_by_cause"] == {"context_limit": len(rejected)}


def test_a_config_whose_every_item_overflows_stops_with_exit_1(tmp_path: Path, llama_512: LlamaServer) -> None:
    """Every opening is longer than the context: the rejection budget stops the run, naming the cause."""
    config = dialog_config(tmp_path, llama_512, [TOO_LONG], respondent={"max_tokens": 32})

    run = afterimage("generate", config, cwd=tmp_path)

    assert run.returncode == 1, describe(run)
    assert "context_limit" in run.stderr and "exceeds the available context size" in run.stderr, describe(run)
    assert "Traceback" not in run.stderr
    output = tmp_path / "rows.jsonl"
    assert not output.exists() or read_jsonl(output) == []
    assert len(rejections(tmp_path)) >= 1


def test_a_server_restarted_with_a_larger_context_resumes_the_run(
    tmp_path: Path, llama_512: LlamaServer, llama: LlamaServer
) -> None:
    """The fix for a context too small is to restart the server with a larger one: same weights, same
    alias, another URL and n_ctx. That is the same served model, so the run resumes rather than being
    refused as another model's output."""
    config = dialog_config(tmp_path, llama_512, SHORT, respondent={"max_tokens": 32}, on_truncated="keep")
    first = afterimage("generate", config, "-n", 1, "--json", cwd=tmp_path)
    assert first.returncode == 0, describe(first)

    again = afterimage("generate", config, "-n", 2, "--api-base", llama.url, "--json", cwd=tmp_path)

    assert again.returncode == 0, describe(again)
    summary = orjson.loads(again.stdout)
    assert summary["rows_resumed"] == 1 and summary["rows_total"] == 2
    assert len(read_jsonl(tmp_path / "rows.jsonl")) == 2
