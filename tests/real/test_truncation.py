"""Answers cut off by max_tokens on a real server (finish_reason "length").

By default (`generation.on_truncated: retry`) a cut-off answer is generated again (the `cut` hygiene
check), then the item is rejected with cause `cut`; `reject` rejects at once; `keep` writes it and marks
the turn in `metadata.cut_off_turns`.
A 4-token limit cuts every answer, so under retry/reject every item is rejected and the rejection
budget stops the run with exit 1, naming the setting to raise.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.real.support import LlamaServer, afterimage, describe, dialog_config, read_jsonl, rejections

OPENINGS = ["Explain how a B-tree index speeds up a SQL query.", "Explain HTTP caching headers in detail."]


def test_kept_cut_off_answers_are_written_and_marked(tmp_path: Path, llama: LlamaServer) -> None:
    config = dialog_config(tmp_path, llama, OPENINGS, respondent={"max_tokens": 4}, on_truncated="keep", concurrency=2)

    run = afterimage("generate", config, "--json", cwd=tmp_path)

    assert run.returncode == 0, describe(run)
    rows = read_jsonl(tmp_path / "rows.jsonl")
    assert len(rows) == 3
    for row in rows:
        turns = row["conversations"]
        assert [t["role"] for t in turns] == ["user", "assistant"]
        # Which turns were cut off: indices into `conversations` of the cut messages.
        assert row["metadata"]["cut_off_turns"] == [1], row["metadata"]
        assert row["metadata"]["usage"]["completion_tokens"] <= 4
    assert rejections(tmp_path) == []
    assert orjson.loads(run.stdout)["rows_total"] == 3


@pytest.mark.parametrize("policy", [None, "reject"], ids=["default-retry", "reject"])
def test_cut_off_answers_reject_the_item_and_a_config_that_cuts_every_one_stops(
    tmp_path: Path, llama: LlamaServer, policy: str | None
) -> None:
    chosen = {"on_truncated": policy} if policy else {}
    config = dialog_config(tmp_path, llama, OPENINGS, respondent={"max_tokens": 4}, concurrency=2, **chosen)

    run = afterimage("generate", config, cwd=tmp_path)

    assert run.returncode == 1, describe(run)
    assert "cut off by the token limit" in run.stderr and "respondent.max_tokens" in run.stderr, describe(run)
    assert "Traceback" not in run.stderr
    output = tmp_path / "rows.jsonl"
    assert not output.exists() or read_jsonl(output) == [], "no cut-off answer is written as a good row"
    rejected = rejections(tmp_path)
    assert rejected and {r["cause"] for r in rejected} == {"cut"}
    # retry asks twice more before rejecting; reject gives up on the first cut-off answer.
    calls = {r["usage"]["calls"] for r in rejected}
    assert calls == ({1} if policy == "reject" else {3}), rejected
