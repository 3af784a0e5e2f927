"""`afterimage personas` against a real model: structured output constrained by llama.cpp's grammar
(the request's json_schema response_format), parsed and validated by afterimage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.real.support import ROOT, LlamaServer, afterimage, describe, read_jsonl, write_yaml


def persona_config(tmp_path: Path, llama: LlamaServer, **model: Any) -> Path:
    """Two root personas from the quickstart corpus, each with one more specific child."""
    return write_yaml(
        tmp_path / "personas.yaml",
        {
            "respondent": llama.model_block(**{"max_tokens": 512, **model}),
            "generation": {"num_conversations": 1},
            "documents": {"sources": [str(ROOT / "configs" / "corpus")], "chunk_size": 600},
            "persona_generation": {"roots": 2, "depth": 1, "branching": 1, "excerpts": 2, "concurrency": 2},
        },
    )


def test_personas_are_generated_through_the_servers_grammar(tmp_path: Path, llama: LlamaServer) -> None:
    run = afterimage("personas", persona_config(tmp_path, llama), "-o", "personas.jsonl", "--json", cwd=tmp_path)

    assert run.returncode == 0, describe(run)
    assert orjson.loads(run.stdout) == {"output": "personas.jsonl", "personas": 4, "by_depth": {"0": 2, "1": 2}}
    personas = read_jsonl(tmp_path / "personas.jsonl")
    assert [p["depth"] for p in personas] == [0, 0, 1, 1]
    assert [p["parent"] for p in personas] == [None, None, 0, 1]
    descriptions = [p["description"] for p in personas]
    assert all(isinstance(d, str) and len(d) >= 3 for d in descriptions)
    assert len({" ".join(d.lower().split()).rstrip(".") for d in descriptions}) == 4, "repeats are asked for again"


def test_truncated_structured_output_names_the_max_tokens_to_raise(tmp_path: Path, llama: LlamaServer) -> None:
    """8 tokens cannot hold the JSON: llama.cpp stops mid-object with finish_reason 'length'. That is
    the config's problem, not bad luck: say which max_tokens to raise instead of retrying junk."""
    run = afterimage("personas", persona_config(tmp_path, llama, max_tokens=8), "-o", "p.jsonl", cwd=tmp_path)

    assert run.returncode != 0
    assert "max_tokens" in run.stderr, describe(run)
    assert "Traceback" not in run.stderr
    assert "not JSON" not in run.stderr, "the truncation is reported as what it is, not as a parse error"
    assert not (tmp_path / "p.jsonl").exists()
