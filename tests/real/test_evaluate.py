"""`afterimage evaluate` with the real model as judge: one structured verdict per row through the
server's grammar, scored and graded by afterimage."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.real.support import LlamaServer, afterimage, describe, read_jsonl

GRADES = {"perfect", "good", "needs_improvement", "bad", "not_acceptable"}
CRITERIA = {"coherence", "factuality", "grounding", "helpfulness", "relevance"}

# Short dialogs keep the judge's prompt small; one has a context, so `grounding` applies to it only.
ROWS = [
    {
        "id": "row-1",
        "conversations": [
            {"role": "user", "content": "What does an index do in SQL?"},
            {"role": "assistant", "content": "It lets the database find rows without scanning the whole table."},
        ],
        "metadata": {},
        "instruction_context": "An index is a sorted structure that lets a query find rows without a full scan.",
    },
    {
        "id": "row-2",
        "conversations": [
            {"role": "user", "content": "Why cache HTTP responses?"},
            {"role": "assistant", "content": "Caching saves bandwidth and makes repeated requests faster."},
            {"role": "user", "content": "What header controls it?"},
            {"role": "assistant", "content": "Cache-Control, for example max-age=3600."},
        ],
        "metadata": {},
    },
]


def test_evaluate_with_the_real_model_as_judge(tmp_path: Path, llama: LlamaServer) -> None:
    (tmp_path / "rows.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in ROWS))

    run = afterimage(
        "evaluate", "rows.jsonl", "-o", "judged.jsonl", "--judge-model", llama.model, "--api-base", llama.url,
        "--concurrency", 2, "--report", "report.html", "--json",
        cwd=tmp_path,
    )  # fmt: skip

    assert run.returncode == 0, describe(run)
    judged = read_jsonl(tmp_path / "judged.jsonl")
    assert [r["id"] for r in judged] == ["row-1", "row-2"], "every row, in input order"
    for row in judged:
        verdict = row["evaluation"]
        assert verdict["overall_grade"] in GRADES
        assert verdict["judge_model"].endswith(llama.model)
        for name in CRITERIA:
            entry = verdict[name]
            if entry["applicable"]:
                assert 0.0 <= entry["score"] <= 1.0 and isinstance(entry["feedback"], str)
            else:
                assert entry["score"] is None
        assert 0.0 <= row["final_score"] <= 1.0
        assert "metrics" in row["metadata"]
    assert judged[0]["evaluation"]["grounding"]["applicable"] is True
    assert judged[1]["evaluation"]["grounding"]["applicable"] is False
    summary = orjson.loads(run.stdout)
    assert summary["rows"]["evaluated"] == summary["rows"]["written"] == 2
    assert summary["rows"]["judge_failed"] == 0
    assert summary["judge"]["calls"] >= 2 and summary["judge"]["completion_tokens"] > 0
    assert sum(summary["grades"].values()) == 2
    assert (tmp_path / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
