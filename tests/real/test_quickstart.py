"""The README's quickstart, multi-turn, against a real model: `--model ALIAS --api-base URL`.

A 135M model writes junk; these tests look at what afterimage promises whatever the words: exactly N
rows, well-formed dialogs, the metadata a row carries, resuming, and the summary's counts.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.real.support import ENDED_BY, ROOT, LlamaServer, Run, afterimage, describe, read_jsonl, write_yaml

ROWS = 3
# Written ahead so this test spends its time on dialogs; persona generation has its own test.
PERSONAS = [
    {"description": "A backend developer tuning a slow SQL query.", "depth": 0, "parent": None},
    {"description": "A student learning how HTTP caching works.", "depth": 0, "parent": None},
]


def quickstart(tmp_path: Path, llama: LlamaServer) -> Path:
    """configs/quickstart.yaml in a work folder, with answers short enough for a CPU and a slow server's
    timeout. Everything else (documents, RAG over Qdrant, personas, 2 turns) is the quickstart's own."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    cfg = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    cfg["respondent"].update(max_tokens=256, timeout=600, params={"repeat_penalty": 1.3})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "personas.jsonl").write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in PERSONAS))
    return write_yaml(tmp_path / "configs" / "quickstart.yaml", cfg)


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory, llama: LlamaServer) -> tuple[Path, Run]:
    work = tmp_path_factory.mktemp("quickstart")
    config = quickstart(work, llama)
    run = afterimage(
        "generate", config, "--model", llama.model, "--api-base", llama.url,
        "-n", ROWS, "--concurrency", 2, "-o", "out/rows.jsonl", "--json",
        cwd=work,
    )  # fmt: skip
    return work, run


def test_quickstart_ends_with_exactly_the_rows_asked_for(quickstart_run: tuple[Path, Run], llama: LlamaServer) -> None:
    work, run = quickstart_run
    assert run.returncode == 0, describe(run)
    rows = read_jsonl(work / "out" / "rows.jsonl")
    assert len(rows) == ROWS
    assert len({row["id"] for row in rows}) == ROWS
    summary = orjson.loads(run.stdout)
    assert summary["rows_total"] == ROWS and summary["rows_written"] == ROWS
    assert summary["calls"] >= 2 * ROWS  # at least one user turn answered per row, plus the simulated user
    assert summary["prompt_tokens"] > 0 and summary["completion_tokens"] > 0


def test_quickstart_rows_are_well_formed_dialogs(quickstart_run: tuple[Path, Run], llama: LlamaServer) -> None:
    work, run = quickstart_run
    assert run.returncode == 0, describe(run)
    for row in read_jsonl(work / "out" / "rows.jsonl"):
        turns: list[dict[str, Any]] = row["conversations"]
        meta = row["metadata"]
        roles = [t["role"] for t in turns]
        assert roles == ["user", "assistant"] * (len(turns) // 2), roles
        assert 1 <= meta["num_turns"] == len(turns) // 2 <= meta["planned_turns"] <= 3
        assert all(isinstance(t["content"], str) for t in turns)
        assert meta["models"]["respondent"].endswith(llama.model)
        # What the server said it serves (its /v1/models id, the alias), not what was asked for.
        assert meta["models"]["served"]["respondent"].startswith(llama.model), meta["models"]
        assert meta["persona_name"] in {p["description"] for p in PERSONAS}
        assert meta["retrieval"]["hits"], "the rag modifier retrieved nothing from the quickstart corpus"
        assert meta["usage"]["calls"] >= meta["num_turns"]


def test_quickstart_rows_record_why_each_dialog_ended(quickstart_run: tuple[Path, Run]) -> None:
    work, run = quickstart_run
    assert run.returncode == 0, describe(run)
    for row in read_jsonl(work / "out" / "rows.jsonl"):
        meta = row["metadata"]
        assert meta["ended_by"] in ENDED_BY, meta
        if meta["ended_by"] == "max_turns":
            assert meta["num_turns"] == meta["planned_turns"]


def test_quickstart_rerun_resumes_from_the_cache(quickstart_run: tuple[Path, Run], llama: LlamaServer) -> None:
    work, run = quickstart_run
    assert run.returncode == 0, describe(run)
    before = (work / "out" / "rows.jsonl").read_bytes()
    again = afterimage(
        "generate", "configs/quickstart.yaml", "--model", llama.model, "--api-base", llama.url,
        "-n", ROWS, "--concurrency", 2, "-o", "out/rows.jsonl", "--json",
        cwd=work,
    )  # fmt: skip
    assert again.returncode == 0, describe(again)
    summary = orjson.loads(again.stdout)
    assert summary["rows_resumed"] == ROWS and summary["rows_written"] == 0 and summary["calls"] == 0
    assert (work / "out" / "rows.jsonl").read_bytes() == before
