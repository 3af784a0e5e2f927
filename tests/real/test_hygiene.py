"""Turn hygiene on a real small model: whatever a 135M model writes, the rows that come out pass every
check, record what was regenerated, and the run still ends with exactly N rows.

The README's "Turn hygiene" figures (regenerations per check per 100 turns, hygiene on against off)
come from a larger run of the same kind (12 two-turn dialogs on the bundled corpus).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from afterimage_cli.hygiene import CHECKS, TurnChecker
from tests.real.support import LlamaServer, afterimage, describe, dialog_config, read_jsonl, rejections

OPENINGS = [
    "How does a B-tree index speed up a range query in SQL?",
    "What does the Cache-Control max-age directive do?",
    "Why should unit tests avoid touching the network?",
    "How does TLS 1.3 agree on a session key?",
]
ROWS = 4
SYSTEM = "You are a concise assistant. Answer in two or three short sentences."


def test_rows_of_a_small_model_come_out_clean_with_their_regenerations(tmp_path: Path, llama: LlamaServer) -> None:
    # This model runs past 256 tokens in about one turn of three (measured: 47 of 100 past 200): the cut
    # check regenerates those more often than any other check.
    config = dialog_config(
        tmp_path, llama, OPENINGS, respondent={"max_tokens": 256, "temperature": 0.7},
        num_conversations=ROWS, min_turns=2, max_turns=2, concurrency=2, system_prompt=SYSTEM,
    )  # fmt: skip
    text = config.read_text() + "error_budget: {max_rejected_share: 0.9}\n"
    config.write_text(text)

    run = afterimage("generate", config, "--json", cwd=tmp_path)

    assert run.returncode == 0, describe(run)
    rows = read_jsonl(tmp_path / "rows.jsonl")
    assert len(rows) == ROWS and len({r["id"] for r in rows}) == ROWS
    checker = TurnChecker()
    for row in rows:
        assert checker.row(row) == {}, (checker.row(row), row["conversations"])
        hygiene = row["metadata"]["hygiene"]
        assert set(hygiene["regenerations"]) <= set(CHECKS)
        assert row["metadata"]["ended_by"] in {"max_turns", "end_token", "hygiene", "context_limit"}
    summary = orjson.loads(run.stdout)
    for check, count in summary["regenerated_by_check"].items():
        assert sum(r["metadata"]["hygiene"]["regenerations"].get(check, 0) for r in rows) <= count
    assert {r["cause"] for r in rejections(tmp_path)} <= {*CHECKS, "context_limit"}
