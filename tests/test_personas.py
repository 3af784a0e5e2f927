"""Personas: the generated tree (size, depth, parents, repeats), files in and out, and the CLI command."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from afterimage_cli.config import PersonaGenerationConfig
from afterimage_cli.config_loader import load_config, parse_config
from afterimage_cli.documents import Chunk
from afterimage_cli.errors import ConfigError
from afterimage_cli.personas import PersonaTreeBuilder, load_personas, save_personas
from afterimage_cli.providers.base import BaseProvider, LLMResponse, Messages, StructuredLLMResponse
from afterimage_cli.providers.offline import OfflineProvider
from afterimage_cli.providers.structured import Schema, json_schema_of
from afterimage_cli.types import Persona

from .helpers import ROOT, invoke, make_config, read_rows

CHUNKS = [Chunk(id=f"c{i}", document_id="d", index=i, text=f"Passage {i} about queues.", source="x") for i in range(5)]


class Numbered(BaseProvider):
    """Writes 'persona N' descriptions; `repeat` first answers with names it already gave."""

    model_name = "numbered"

    def __init__(self, repeat: int = 0) -> None:
        self.counter = 0
        self.repeat = repeat
        self.prompts: list[str] = []

    async def acomplete_structured(self, messages: Messages, schema: Schema, **kwargs: Any) -> StructuredLLMResponse:
        prompt = str(messages[-1]["content"])
        self.prompts.append(prompt)
        want = json_schema_of(schema)["properties"]["personas"]["minItems"]
        names = []
        for _ in range(want):
            if self.repeat and self.counter:
                self.repeat -= 1
                names.append("Persona 1.")  # the same as an earlier one, up to case and period
                continue
            self.counter += 1
            names.append(f"persona {self.counter}")
        parsed = {"personas": [{"description": n} for n in names]}
        return StructuredLLMResponse(text=orjson.dumps(parsed).decode(), parsed=parsed)

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        raise AssertionError("persona generation uses structured output")


def build(llm: BaseProvider, **settings: Any) -> Any:
    cfg = PersonaGenerationConfig(**settings)
    return asyncio.run(PersonaTreeBuilder(llm, cfg, CHUNKS, seed=1).abuild())


@pytest.mark.parametrize(("roots", "depth", "branching"), [(3, 2, 2), (2, 0, 5), (1, 3, 3)])
def test_tree_size_and_depth(roots: int, depth: int, branching: int) -> None:
    tree = build(Numbered(), roots=roots, depth=depth, branching=branching)
    expected = roots * sum(branching**d for d in range(depth + 1))
    assert (
        len(tree.personas)
        == expected
        == PersonaGenerationConfig(roots=roots, depth=depth, branching=branching).tree_size
    )
    for level in range(depth + 1):
        assert sum(p.depth == level for p in tree.personas) == roots * branching**level
    for persona, parent in zip(tree.personas, tree.parents, strict=True):
        if parent is None:
            assert persona.depth == 0
        else:
            assert tree.personas[parent].depth == persona.depth - 1
    children = [tree.parents.count(i) for i, p in enumerate(tree.personas) if p.depth < depth]
    assert set(children) <= {branching}
    assert [p.depth for p in tree.personas] == sorted(p.depth for p in tree.personas)  # breadth first


def test_children_are_asked_about_their_parent_and_the_documents() -> None:
    llm = Numbered()
    build(llm, roots=1, depth=1, branching=2, excerpts=2)
    root_prompt, child_prompt = llm.prompts
    assert "describe 1 distinct people" in root_prompt and "Context:" in root_prompt
    assert "derived from this persona: persona 1" in child_prompt and "about queues" in child_prompt
    assert sum("Passage" in line for line in root_prompt.splitlines()) == 2


def test_repeated_descriptions_are_dropped_and_asked_again() -> None:
    llm = Numbered(repeat=2)
    tree = build(llm, roots=3, depth=0)
    assert [p.description for p in tree.personas] == ["persona 1", "persona 2", "persona 3"]
    assert len(llm.prompts) == 2 and "Do not repeat any of these: persona 1" in llm.prompts[1]


def test_offline_model_builds_a_tree() -> None:
    tree = build(OfflineProvider(), roots=3, depth=2, branching=2)
    assert 15 <= len(tree.personas) <= 21
    assert {p.depth for p in tree.personas} == {0, 1, 2}
    assert len({p.description.lower() for p in tree.personas}) == len(tree.personas)
    assert all(p.description.startswith("A ") for p in tree.personas)


def test_tree_size_is_bounded() -> None:
    with pytest.raises(ValueError, match="would hold"):
        PersonaGenerationConfig(roots=10, depth=5, branching=5)
    with pytest.raises(ConfigError, match="persona_generation.depth"):
        parse_config("respondent: {model: offline}\npersona_generation: {depth: -1}\n")


def test_two_runs_saving_the_personas_file_at_once_both_succeed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    both_written = threading.Barrier(2, timeout=10)
    write_bytes = Path.write_bytes

    def write_then_wait(self: Path, data: bytes) -> int:
        written = write_bytes(self, data)
        both_written.wait()  # neither renames its temp file before the other has written its own
        return written

    monkeypatch.setattr(Path, "write_bytes", write_then_wait)
    personas = [Persona(description="a root", depth=0)]
    errors: list[BaseException] = []

    def save() -> None:
        try:
            save_personas(tmp_path / "p.jsonl", personas)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert load_personas(tmp_path / "p.jsonl") == personas
    assert [p.name for p in tmp_path.iterdir()] == ["p.jsonl"]


def test_files_round_trip_and_every_format_loads(tmp_path: Path) -> None:
    personas = [Persona(description="a root", depth=0), Persona(description="a child", depth=1)]
    save_personas(tmp_path / "p.jsonl", personas, [None, 0])
    assert load_personas(tmp_path / "p.jsonl") == personas
    assert orjson.loads((tmp_path / "p.jsonl").read_text().splitlines()[1])["parent"] == 0
    (tmp_path / "p.txt").write_text("# comment\nan SRE on call\n\n  a student  \n")
    assert [p.description for p in load_personas(tmp_path / "p.txt")] == ["an SRE on call", "a student"]
    (tmp_path / "p.json").write_text('{"personas": ["one", {"persona": "two", "depth": 2}]}')
    assert load_personas(tmp_path / "p.json") == [Persona(description="one"), Persona(description="two", depth=2)]
    (tmp_path / "list.json").write_text('[{"name": "three"}]')
    assert load_personas(tmp_path / "list.json")[0].description == "three"


def test_bad_persona_files_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"personas_file: .*missing\.txt does not exist"):
        load_personas(tmp_path / "missing.txt")
    (tmp_path / "bad.jsonl").write_text('{"description": "ok"}\n{"age": 3}\n')
    with pytest.raises(ConfigError, match=r"personas_file: .*bad\.jsonl:2: expected a string or an object"):
        load_personas(tmp_path / "bad.jsonl")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="holds no personas"):
        load_personas(tmp_path / "empty.txt")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="not JSON"):
        load_personas(tmp_path / "broken.json")


def persona_config(tmp_path: Path, **extra: Any) -> Path:
    sections: dict[str, Any] = {
        "documents": {"sources": [str(ROOT / "configs" / "corpus")], "chunk_size": 600, "chunk_overlap": 100},
        "instructions": {"generator": "contextual", "options": {"use_persona": True}},
        "persona_generation": {"roots": 2, "depth": 2, "branching": 2},
        "personas": [],
        "modifiers": [{"name": "persona"}],
    }
    return make_config(tmp_path, **{**sections, **extra})


def test_personas_command_saves_and_generate_reuses(tmp_path: Path) -> None:
    saved = tmp_path / "personas.jsonl"
    path = persona_config(tmp_path, personas_file=str(saved))
    result = invoke("personas", str(path), "--json")
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    assert summary["output"] == str(saved) and summary["personas"] == len(load_personas(saved))
    assert set(summary["by_depth"]) == {"0", "1", "2"}
    # a hand edit proves `generate` reads the file instead of generating again
    lines = saved.read_text().splitlines()
    saved.write_text("\n".join([lines[0].replace("A ", "An edited ", 1), *lines[1:]]) + "\n")
    assert invoke("generate", str(path), "-n", "12", "-q").exit_code == 0
    rows = read_rows(tmp_path / "out.jsonl")
    on_file = {p.description: p.depth for p in load_personas(saved)}
    assert all(on_file[r["persona"]] == r["metadata"]["persona_generation_depth"] for r in rows)
    assert any(r["persona"].startswith("An edited") for r in rows) or len({r["persona"] for r in rows}) < len(on_file)


def test_generate_builds_and_saves_the_tree_when_no_file_exists(tmp_path: Path) -> None:
    saved = tmp_path / "cache" / "personas.jsonl"
    path = persona_config(tmp_path, personas_file=str(saved))
    assert invoke("generate", str(path), "-n", "10", "-q").exit_code == 0
    rows = read_rows(tmp_path / "out.jsonl")
    tree = load_personas(saved)
    assert {r["persona"] for r in rows} <= {p.description for p in tree}
    assert {r["metadata"]["persona_generation_depth"] for r in rows} <= {0, 1, 2}
    assert max(p.depth for p in tree) == 2


def test_personas_command_errors(tmp_path: Path) -> None:
    no_section = make_config(tmp_path)
    result = invoke("personas", str(no_section), "-o", str(tmp_path / "p.jsonl"))
    assert result.exit_code == 2 and "no `persona_generation:` section" in result.output
    no_output = persona_config(tmp_path)
    result = invoke("personas", str(no_output))
    assert result.exit_code == 2 and "give -o FILE or set personas_file" in result.output


def test_persona_generation_without_documents_uses_the_system_prompt(tmp_path: Path) -> None:
    path = make_config(tmp_path, persona_generation={"roots": 2, "depth": 0}, personas=[])
    cfg = load_config(path)
    from afterimage_cli.pipeline import check_components

    assert any("without documents" in w for w in check_components(cfg))
    result = invoke("personas", str(path), "-o", str(tmp_path / "p.jsonl"))
    assert result.exit_code == 0 and len(load_personas(tmp_path / "p.jsonl")) == 2


def test_persona_requests_respect_concurrency() -> None:
    class Slow(Numbered):
        def __init__(self) -> None:
            super().__init__()
            self.in_flight = self.most = 0

        async def acomplete_structured(
            self, messages: Messages, schema: Schema, **kwargs: Any
        ) -> StructuredLLMResponse:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            await asyncio.sleep(0.01)
            try:
                return await super().acomplete_structured(messages, schema, **kwargs)
            finally:
                self.in_flight -= 1

    llm = Slow()
    tree = build(llm, roots=4, depth=1, branching=2, concurrency=2)
    assert len(tree.personas) == 12 and llm.most == 2


def test_persona_generation_model_is_used(tmp_path: Path, fake_server: Any) -> None:
    model = {"model": "openai/persona-writer", "api_base": fake_server.api_base}
    path = make_config(tmp_path, persona_generation={"roots": 1, "depth": 0, "model": model}, personas=[])
    result = invoke("personas", str(path), "-o", str(tmp_path / "p.jsonl"))
    assert result.exit_code == 0, result.output
    assert fake_server.snapshot()["models"] == {"persona-writer": 1}
    assert load_personas(tmp_path / "p.jsonl")[0].description == "sample description"


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".txt"])
def test_generated_personas_file_is_written_in_its_suffix_format_and_resumes(tmp_path: Path, suffix: str) -> None:
    """generate writes the tree in the format the suffix names; the next run reads it back and resumes."""
    saved = tmp_path / f"personas{suffix}"
    path = persona_config(tmp_path, personas_file=str(saved))
    assert invoke("generate", str(path), "-n", "6", "-q").exit_code == 0
    on_file = load_personas(saved)
    assert len(on_file) == 14  # 2 roots, depth 2, branching 2
    if suffix == ".json":
        assert len(orjson.loads(saved.read_bytes())["personas"]) == 14
    if suffix == ".txt":
        assert not saved.read_text().lstrip().startswith("{")
    else:
        assert {p.depth for p in on_file} == {0, 1, 2}  # txt keeps descriptions only
    result = invoke("generate", str(path), "-n", "10", "-q")
    assert result.exit_code == 0, result.output  # same personas read back: same fingerprint, resumed
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 10 and len({r["metadata"]["run_fingerprint"] for r in rows}) == 1
    depth = {p.description: p.depth for p in on_file}
    assert all(depth[r["persona"]] == r["metadata"]["persona_generation_depth"] for r in rows)


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".txt"])
def test_personas_command_round_trips_every_suffix(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"tree{suffix}"
    result = invoke("personas", str(persona_config(tmp_path)), "-o", str(target), "--json")
    assert result.exit_code == 0, result.output
    on_file = load_personas(target)
    assert len(on_file) == orjson.loads(result.stdout)["personas"] == 14
    assert not any(p.description.startswith("{") for p in on_file)  # descriptions, not JSON lines read as text


def test_unsupported_personas_suffix_is_refused_before_generating(tmp_path: Path, fake_server: Any) -> None:
    model = {"model": "openai/persona-writer", "api_base": fake_server.api_base}
    path = persona_config(tmp_path, persona_generation={"roots": 1, "depth": 0, "model": model})
    result = invoke("personas", str(path), "-o", str(tmp_path / "p.yaml"))
    assert result.exit_code == 2 and "-o: " in result.output and "name a .jsonl" in result.output
    bad = persona_config(
        tmp_path, personas_file=str(tmp_path / "p.csv"), persona_generation={"roots": 1, "depth": 0, "model": model}
    )
    for command in (("generate", str(bad), "-q"), ("validate", str(bad))):
        result = invoke(*command)
        assert result.exit_code == 2 and "personas_file: " in result.output and "'.csv'" in result.output
    assert fake_server.snapshot()["requests"] == 0
    assert not list(tmp_path.glob("p.*")) and not (tmp_path / "out.jsonl").exists()
