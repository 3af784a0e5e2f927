"""Contextual and persona instruction generators, the context and rag modifiers, and stopping rules:
coverage order (also under concurrency), and the metadata every grounded row carries."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from afterimage_cli.config import Config
from afterimage_cli.config_loader import load_config
from afterimage_cli.coverage import CoverageOrder
from afterimage_cli.errors import ConfigError
from afterimage_cli.instructions.contextual import ContextualInstructionGenerator
from afterimage_cli.instructions.persona import PersonaInstructionGenerator
from afterimage_cli.modifiers.context import ContextPromptModifier
from afterimage_cli.modifiers.rag import WithRAGRespondentPromptModifier
from afterimage_cli.pipeline import check_components
from afterimage_cli.providers.base import BaseProvider, LLMResponse, Messages
from afterimage_cli.resources import Resources
from afterimage_cli.run import preview
from afterimage_cli.types import NO_RETRIEVAL_CONTEXT, GeneratedInstructions, GeneratedResponsePrompt, Persona

from .helpers import ROOT, invoke, make_config, read_rows

CORPUS = str(ROOT / "configs" / "corpus")


def grounded(tmp_path: Path, **sections: Any) -> Path:
    """An offline config on the bundled corpus with contextual questions, persona and RAG modifiers."""
    defaults: dict[str, Any] = {
        "documents": {"sources": [CORPUS], "chunk_size": 600, "chunk_overlap": 100},
        "instructions": {"generator": "contextual", "options": {}},
        "retriever": {"path": str(tmp_path / "qdrant")},
        "modifiers": [{"name": "persona"}, {"name": "context"}, {"name": "rag"}],
        "generation": {"num_conversations": 10, "max_turns": 2, "min_turns": 1, "concurrency": 4, "seed": 5},
    }
    return make_config(tmp_path, **{**defaults, **sections})


def config_of(tmp_path: Path, **sections: Any) -> Config:
    return load_config(grounded(tmp_path, **sections))


class Recorder(BaseProvider):
    """Answers every prompt with a fixed question and remembers the prompts."""

    model_name = "recorder"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        self.prompts.append(str(messages[-1]["content"]))
        return LLMResponse(text='"How do caches validate responses?"')


def test_coverage_order_uses_every_chunk_once_per_round() -> None:
    order = CoverageOrder(7, seed=3)
    for round_number in range(4):
        assert sorted(order.at(round_number * 7 + i) for i in range(7)) == list(range(7))
    assert [order.at(i) for i in range(7)] != [order.at(7 + i) for i in range(7)]  # a new order each round
    assert [order.at(i) for i in range(30)] == [CoverageOrder(7, seed=3).at(i) for i in range(30)]
    assert [order.at(i) for i in range(7)] != [CoverageOrder(7, seed=4).at(i) for i in range(7)]
    pairs = [order.positions_for_item(i, 2) for i in range(14)]
    assert all(len(set(p)) == len(p) for p in pairs)
    uses = Counter(n for i in range(order.items_to_cover(3, 2)) for n in order.positions_for_item(i, 2))
    assert min(uses.values()) >= 3 and order.items_to_cover(1, 1) == 7


def test_every_chunk_once_before_any_twice(tmp_path: Path) -> None:
    cfg = config_of(tmp_path)
    generator = ContextualInstructionGenerator(Recorder(), resources=Resources(cfg))
    n = len(generator.chunks)
    seen: list[str] = [generator.chunks_for(i)[0].id for i in range(3 * n)]
    assert len(set(seen[:n])) == n  # the first n items cover every chunk exactly once
    for k in range(1, 4):
        counts = Counter(seen[: k * n])
        assert set(counts.values()) == {k}
    assert generator.items_to_cover(2) == 2 * n


def test_coverage_is_the_same_under_concurrency_and_resume(tmp_path: Path) -> None:
    def contexts(concurrency: int, folder: str, *runs: int) -> dict[int, str]:
        path = grounded(tmp_path / folder, generation={"num_conversations": 1, "concurrency": concurrency, "seed": 9})
        for count in runs:  # a partial run, then a resumed one
            assert invoke("generate", str(path), "-n", str(count), "-q").exit_code == 0
        rows = read_rows(tmp_path / folder / "out.jsonl")
        return {r["metadata"]["item_index"]: r["metadata"]["context_id"] for r in rows}

    (tmp_path / "serial").mkdir()
    (tmp_path / "parallel").mkdir()
    serial = contexts(1, "serial", 30)
    parallel = contexts(16, "parallel", 11, 30)
    assert serial == parallel and len(serial) == 30
    cfg = config_of(tmp_path)
    n = len(Resources(cfg).corpus().chunks)
    assert len({serial[i] for i in range(n)}) == n


def test_grounded_rows_carry_every_metadata_field(tmp_path: Path) -> None:
    personas = tmp_path / "personas.jsonl"
    personas.write_text(
        '{"description": "a database administrator", "depth": 0}\n{"description": "a new DBA", "depth": 1}\n'
    )
    path = grounded(tmp_path, personas=[], personas_file=str(personas))
    result = invoke("generate", str(path), "-q")
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 10
    cfg = load_config(path)
    chunks = {c.id: c for c in Resources(cfg).corpus().chunks}
    depths = {"a database administrator": 0, "a new DBA": 1}
    for row in rows:
        meta = row["metadata"]
        chunk = chunks[meta["context_id"]]
        assert meta["context_ids"] == [chunk.id]
        assert row["instruction_context"] == chunk.text
        assert meta["instruction_index"] == 0 and meta["document_ids"] == [chunk.document_id]
        assert meta["persona_name"] == row["persona"] and meta["persona_generation_depth"] == depths[row["persona"]]
        hits = meta["retrieval"]["hits"]
        assert meta["retrieval"]["query"] == row["conversations"][0]["content"]
        assert 1 <= len(hits) <= 3 and all(set(h) == {"id", "score"} and h["id"] in chunks for h in hits)
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
        # context (the source chunk) then rag (the retrieved chunks) both feed the respondent
        assert row["response_context"].startswith(chunk.text)
        assert all(chunks[h["id"]].text in row["response_context"] for h in hits)
    assert sum(r["metadata"]["context_id"] in [h["id"] for h in r["metadata"]["retrieval"]["hits"]] for r in rows) >= 8


def test_rag_with_no_hits_says_so() -> None:
    class Nothing:
        def get_context_with_metadata(self, query: str) -> Any:
            from afterimage_cli.retrieval.base import result_from_hits

            return result_from_hits([])

    modifier = WithRAGRespondentPromptModifier(retriever=Nothing())
    out = asyncio.run(
        modifier.amodify(
            GeneratedResponsePrompt(prompt="Be brief."), instructions=GeneratedInstructions(instructions=["?"])
        )
    )
    assert out.context == NO_RETRIEVAL_CONTEXT and out.prompt.endswith(NO_RETRIEVAL_CONTEXT)
    assert out.metadata["retrieval"] == {"query": "?", "hits": []}


def test_context_modifier_leaves_contextless_prompts_alone() -> None:
    modifier = ContextPromptModifier()
    prompt = GeneratedResponsePrompt(prompt="Be brief.")
    same = asyncio.run(modifier.amodify(prompt, instructions=GeneratedInstructions(instructions=["q"])))
    assert same == prompt
    with_context = asyncio.run(
        modifier.amodify(prompt, instructions=GeneratedInstructions(instructions=["q"], context="Fact."))
    )
    assert with_context.context == "Fact." and with_context.prompt == "Be brief.\n\nContext:\nFact."
    with pytest.raises(ConfigError, match="takes none"):
        ContextPromptModifier(verbose=True)


def test_persona_generator_writes_as_the_persona(tmp_path: Path) -> None:
    cfg = config_of(tmp_path)
    llm = Recorder()
    generator = PersonaInstructionGenerator(llm, resources=Resources(cfg), chunks_per_instruction=2)
    result = asyncio.run(generator.agenerate("", persona=Persona(description="a retired sysadmin"), item_index=4))
    assert "You are: a retired sysadmin." in llm.prompts[0] and "Write in their voice" in llm.prompts[0]
    assert result.instructions == ["How do caches validate responses?"]
    assert len(result.context_ids or []) == 2 and result.context_id == (result.context_ids or [""])[0]
    assert result.context is not None and all(c.text in result.context for c in generator.chunks_for(4))
    contextual = ContextualInstructionGenerator(llm, resources=Resources(cfg))
    asyncio.run(contextual.agenerate("", persona=Persona(description="a retired sysadmin"), item_index=0))
    assert "sysadmin" not in llm.prompts[-1]  # contextual ignores personas unless use_persona is set


def test_generator_options_are_checked(tmp_path: Path) -> None:
    cfg = config_of(tmp_path)
    with pytest.raises(ConfigError, match="unknown option.*chunk_size"):
        ContextualInstructionGenerator(None, resources=Resources(cfg), chunk_size=3)
    with pytest.raises(ConfigError, match="chunks_per_instruction"):
        ContextualInstructionGenerator(None, resources=Resources(cfg), chunks_per_instruction=0)
    with pytest.raises(ConfigError, match="must contain {persona}"):
        ContextualInstructionGenerator(None, resources=Resources(cfg), prompt="Ask.")
    no_docs = make_config(tmp_path, instructions={"generator": "contextual", "options": {}})
    result = invoke("validate", str(no_docs))
    assert result.exit_code == 2 and "needs documents" in result.output


def test_stop_when_chunk_coverage(tmp_path: Path) -> None:
    path = grounded(tmp_path, generation={"stop_when": {"chunk_coverage": 2}, "concurrency": 8, "max_turns": 1})
    assert invoke("generate", str(path), "-q").exit_code == 0
    rows = read_rows(tmp_path / "out.jsonl")
    n = len(Resources(load_config(path)).corpus().chunks)
    assert len(rows) == 2 * n
    assert set(Counter(r["metadata"]["context_id"] for r in rows).values()) == {2}
    planned = preview(load_config(path))
    assert planned["estimate"]["conversations"] == 2 * n
    assert invoke("generate", str(path), "-n", "3", "-o", str(tmp_path / "three.jsonl"), "-q").exit_code == 0
    assert len(read_rows(tmp_path / "three.jsonl")) == 3  # -n replaces the stopping rule


def test_stop_when_all_personas_used(tmp_path: Path) -> None:
    names = [f"persona number {i}" for i in range(6)]
    path = grounded(tmp_path, personas=names, generation={"stop_when": {"all_personas_used": True}, "max_turns": 1})
    assert invoke("generate", str(path), "-q").exit_code == 0
    rows = read_rows(tmp_path / "out.jsonl")
    assert {r["persona"] for r in rows} == set(names)
    assert rows[-1]["persona"] not in {r["persona"] for r in rows[:-1]} or len(rows) == len(names)
    ordered = sorted(rows, key=lambda r: r["metadata"]["item_index"])
    assert ordered[-1]["persona"] not in {r["persona"] for r in ordered[:-1]}  # stopped at the first full cover


def test_stop_rules_are_validated(tmp_path: Path) -> None:
    both = grounded(tmp_path, generation={"stop_when": {"chunk_coverage": 1, "all_personas_used": True}})
    assert "exactly one" in invoke("validate", str(both)).output
    simple = make_config(tmp_path, generation={"stop_when": {"chunk_coverage": 1}})
    result = invoke("validate", str(simple))
    assert result.exit_code == 2 and "chunk_coverage needs an instruction generator" in result.output
    nobody = grounded(tmp_path, personas=[], generation={"stop_when": {"all_personas_used": True}})
    result = invoke("validate", str(nobody))
    assert result.exit_code == 2 and "all_personas_used needs personas" in result.output


def test_validate_warns_about_unused_or_missing_pieces(tmp_path: Path) -> None:
    cfg = config_of(tmp_path, modifiers=[], instructions={"generator": "persona", "options": {}}, personas=[])
    warnings = check_components(cfg)
    assert any("no 'rag' modifier" in w for w in warnings)
    assert any("writes as a persona" in w for w in warnings)
    missing = config_of(tmp_path, personas_file=str(tmp_path / "none.txt"))
    with pytest.raises(ConfigError, match=r"personas_file: .*none\.txt does not exist"):
        check_components(missing)


def test_dry_run_builds_no_index(tmp_path: Path) -> None:
    path = grounded(tmp_path)
    result = invoke("generate", str(path), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["estimate"]["conversations"] == 10
    assert not (tmp_path / "qdrant").exists()


def test_fingerprint_follows_document_content_not_index_location(tmp_path: Path) -> None:
    from afterimage_cli.engine.fingerprint import run_fingerprint

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Raft\n\nRaft elects a leader with randomized timeouts.\n")
    path = grounded(tmp_path, documents={"sources": [str(docs)]}, generation={"num_conversations": 3})

    def fingerprint(cfg: Config) -> str:
        return run_fingerprint(cfg, Resources(cfg).content_fingerprint())

    cfg = load_config(path)
    moved = cfg.model_copy(update={"retriever": cfg.retriever.model_copy(update={"path": ":memory:"})})  # type: ignore[union-attr]
    before = fingerprint(cfg)
    assert fingerprint(moved) == before
    assert invoke("generate", str(path), "-q").exit_code == 0
    (docs / "a.md").write_text("# Raft\n\nRaft replicates a log to a majority of followers.\n")
    assert fingerprint(load_config(path)) != before
    result = invoke("generate", str(path), "-q")
    assert result.exit_code == 2 and "--overwrite" in result.output  # not a silent mix of old and new rows
