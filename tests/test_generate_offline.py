from __future__ import annotations

import orjson
import pytest

from afterimage_cli.types import ConversationRow

from .helpers import invoke, make_config, read_rows


def assert_valid_rows(rows: list[dict]) -> None:
    for row in rows:
        ConversationRow.model_validate(row)
        turns = row["conversations"]
        assert turns and len(turns) % 2 == 0
        assert [t["role"] for t in turns] == ["user", "assistant"] * (len(turns) // 2)
        assert all(t["content"].strip() for t in turns)
        assert set(turns[0]) == {"role", "content", "reasoning_content"}
        for key in ("instruction_context", "response_context", "persona", "metadata"):
            assert key in row


def test_generates_exact_count_with_valid_rows(tmp_path) -> None:
    cfg = make_config(tmp_path)
    result = invoke("generate", str(cfg), "-n", "12", "--quiet")
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 12 and len({r["id"] for r in rows}) == 12
    assert_valid_rows(rows)
    meta = rows[0]["metadata"]
    assert meta["models"] == {"respondent": "offline", "correspondent": "offline"}
    assert meta["usage"]["calls"] >= 2 and meta["usage"]["total_tokens"] > 0
    assert meta["persona_name"] in ("a student", "an engineer") and meta["persona_generation_depth"] == 0
    assert rows[0]["persona"] == meta["persona_name"]
    assert all(1 <= r["metadata"]["num_turns"] <= 3 for r in rows)


def test_rerun_resumes_and_adds_nothing(tmp_path) -> None:
    cfg = make_config(tmp_path)
    assert invoke("generate", str(cfg), "-n", "6", "-q").exit_code == 0
    before = (tmp_path / "out.jsonl").read_bytes()
    result = invoke("generate", str(cfg), "-n", "6", "--json")
    assert result.exit_code == 0
    summary = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert summary["rows_written"] == 0 and summary["rows_resumed"] == 6 and summary["calls"] == 0
    assert (tmp_path / "out.jsonl").read_bytes() == before
    assert invoke("generate", str(cfg), "-n", "9", "-q").exit_code == 0
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 9 and len({r["id"] for r in rows}) == 9


def test_smaller_n_on_a_larger_output_says_it_is_not_exact(tmp_path) -> None:
    """-n 4 on an output of 10 rows deletes nothing, and says so on stderr and in the --json summary."""
    cfg = make_config(tmp_path)
    assert invoke("generate", str(cfg), "-n", "10", "-q").exit_code == 0
    result = invoke("generate", str(cfg), "-n", "4", "-q", "--json")
    assert result.exit_code == 0
    assert orjson.loads(result.stdout)["rows_beyond_target"] == 6
    out = tmp_path / "out.jsonl"
    assert f"warning: {out} holds 10 rows, 6 more than the 4 asked for" in result.stderr
    assert f"afterimage export {out} --limit 4" in result.stderr and f"head -n 4 {out}" in result.stderr
    assert len(read_rows(out)) == 10  # nothing deleted
    exported = invoke("export", str(out), "--limit", "4", "-f", "messages", "-o", str(tmp_path / "train.jsonl"))
    assert exported.exit_code == 0 and len(read_rows(tmp_path / "train.jsonl")) == 4
    exact = invoke("generate", str(cfg), "-n", "10", "-q", "--json")
    assert orjson.loads(exact.stdout)["rows_beyond_target"] == 0 and "warning" not in exact.stderr


def test_different_run_is_refused_without_overwrite(tmp_path) -> None:
    cfg = make_config(tmp_path)
    assert invoke("generate", str(cfg), "-n", "3", "-q").exit_code == 0
    result = invoke("generate", str(cfg), "-n", "3", "--seed", "99", "-q")
    assert result.exit_code == 2
    assert "different run" in result.stderr and "--overwrite" in result.stderr
    assert len(read_rows(tmp_path / "out.jsonl")) == 3
    assert invoke("generate", str(cfg), "-n", "3", "--seed", "99", "--overwrite", "-q").exit_code == 0


def test_seed_makes_sampling_independent_of_concurrency(tmp_path) -> None:
    cfg = make_config(tmp_path)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert invoke("generate", str(cfg), "-n", "10", "-o", str(a), "--concurrency", "1", "-q").exit_code == 0
    assert invoke("generate", str(cfg), "-n", "10", "-o", str(b), "--concurrency", "8", "-q").exit_code == 0

    def by_id(path):
        return {r["id"]: (r["persona"], r["metadata"]["planned_turns"], r["conversations"]) for r in read_rows(path)}

    assert by_id(a) == by_id(b)


def test_stdout_output_is_only_rows(tmp_path) -> None:
    cfg = make_config(tmp_path)
    result = invoke("generate", str(cfg), "-n", "4", "-o", "-")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    assert_valid_rows([orjson.loads(line) for line in lines])


def test_json_summary(tmp_path) -> None:
    result = invoke("generate", str(make_config(tmp_path)), "-n", "3", "--json", "-q")
    summary = orjson.loads(result.stdout)
    assert summary["rows_total"] == 3 and summary["target"] == 3 and summary["cost_usd"] == 0.0
    assert summary["prompt_tokens"] > 0 and summary["errors"] == {}


def test_stdout_and_json_conflict(tmp_path) -> None:
    result = invoke("generate", str(make_config(tmp_path)), "-o", "-", "--json")
    assert result.exit_code == 2 and "pick one" in result.stderr


def test_max_turns_flag_caps_turns(tmp_path) -> None:
    cfg = make_config(tmp_path, generation={"min_turns": 3, "max_turns": 3})
    assert invoke("generate", str(cfg), "-n", "4", "--max-turns", "1", "-q").exit_code == 0
    assert all(len(r["conversations"]) == 2 for r in read_rows(tmp_path / "out.jsonl"))


def test_sqlite_storage_and_resume(tmp_path) -> None:
    from afterimage_cli.storage.sqlite import SQLiteStorage

    db = tmp_path / "rows.sqlite"
    cfg = make_config(tmp_path, storage={"type": "sqlite", "path": str(db)})
    assert invoke("generate", str(cfg), "-n", "5", "-q").exit_code == 0
    assert invoke("generate", str(cfg), "-n", "7", "-q").exit_code == 0
    rows = SQLiteStorage(db).load_conversations()
    assert len(rows) == 7 and len({r["id"] for r in rows}) == 7
    assert_valid_rows(rows)
    assert invoke("generate", str(cfg), "-n", "7", "--seed", "5", "-q").exit_code == 2


def test_structured_generation(tmp_path) -> None:
    schema = {
        "type": "object",
        "properties": {"question": {"type": "string"}, "answer": {"type": "string"}, "level": {"enum": [1, 2, 3]}},
        "required": ["question", "answer", "level"],
    }
    cfg = make_config(tmp_path, generation={"kind": "structured", "output_schema": schema})
    assert invoke("generate", str(cfg), "-n", "3", "-q").exit_code == 0
    for row in read_rows(tmp_path / "out.jsonl"):
        assert len(row["conversations"]) == 2
        value = orjson.loads(row["conversations"][1]["content"])
        assert set(value) == {"question", "answer", "level"} and value["level"] in (1, 2, 3)


def test_verbatim_instructions(tmp_path) -> None:
    cfg = make_config(tmp_path, instructions={"generator": "simple", "options": {"instructions": ["Hi there?"]}})
    assert invoke("generate", str(cfg), "-n", "2", "-q").exit_code == 0
    rows = read_rows(tmp_path / "out.jsonl")
    assert all(r["conversations"][0]["content"] == "Hi there?" for r in rows)
    assert all(r["metadata"]["instruction_index"] == 0 for r in rows)


def test_personas_are_covered_before_any_repeats(tmp_path) -> None:
    personas = [f"persona {i}" for i in range(5)]
    cfg = make_config(tmp_path, personas=personas)
    assert invoke("generate", str(cfg), "-n", "10", "-q").exit_code == 0
    rows = sorted(read_rows(tmp_path / "out.jsonl"), key=lambda r: r["metadata"]["item_index"])
    first, second = [r["persona"] for r in rows[:5]], [r["persona"] for r in rows[5:]]
    assert sorted(first) == personas and sorted(second) == personas


def test_all_personas_used_stops_after_exactly_one_round(tmp_path) -> None:
    cfg = make_config(tmp_path, personas=["a", "b", "c"], generation={"stop_when": {"all_personas_used": True}})
    assert invoke("generate", str(cfg), "-q").exit_code == 0
    assert sorted(r["persona"] for r in read_rows(tmp_path / "out.jsonl")) == ["a", "b", "c"]


def test_second_run_on_the_same_output_is_refused(tmp_path) -> None:
    from afterimage_cli.errors import OutputConflictError
    from afterimage_cli.storage.jsonl import JSONLStorage

    holder = JSONLStorage(tmp_path / "out.jsonl")
    holder.open_run("fp")
    try:
        result = invoke("generate", str(make_config(tmp_path)), "-n", "2", "-q")
        assert result.exit_code == 2 and "being written by another afterimage run" in result.stderr
        with pytest.raises(OutputConflictError):
            JSONLStorage(tmp_path / "out.jsonl").open_run("fp")
    finally:
        holder.close()
    assert invoke("generate", str(make_config(tmp_path)), "-n", "2", "-q").exit_code == 0


def test_modifiers_see_only_the_opening_that_is_used(tmp_path) -> None:
    cfg = make_config(
        tmp_path,
        instructions={"generator": "tests.plugins:TwoOpenings"},
        modifiers=[{"name": "tests.plugins:RecordOpenings"}],
    )
    assert invoke("generate", str(cfg), "-n", "6", "-q").exit_code == 0
    for row in read_rows(tmp_path / "out.jsonl"):
        assert row["metadata"]["seen"] == [row["conversations"][0]["content"]]
    assert {r["conversations"][0]["content"] for r in read_rows(tmp_path / "out.jsonl")} == {
        "first opening?",
        "second opening?",
    }


def test_generator_returning_nothing_stops_with_a_message(tmp_path) -> None:
    cfg = make_config(tmp_path, instructions={"generator": "tests.plugins:NoOpenings"})
    result = invoke("generate", str(cfg), "-n", "2", "-q")
    assert result.exit_code == 1 and "NoOpenings returned no instruction" in result.stderr
    assert "Traceback" not in result.stderr


def test_changed_personas_file_is_a_new_run(tmp_path) -> None:
    personas = tmp_path / "personas.txt"
    personas.write_text("a chemist\na poet\n")
    cfg = make_config(tmp_path, personas=[], personas_file=str(personas))
    assert invoke("generate", str(cfg), "-n", "3", "-q").exit_code == 0
    assert invoke("generate", str(cfg), "-n", "5", "-q").exit_code == 0
    assert {r["persona"] for r in read_rows(tmp_path / "out.jsonl")} == {"a chemist", "a poet"}
    personas.write_text("a chemist\na sailor\n")
    result = invoke("generate", str(cfg), "-n", "6", "-q")
    assert result.exit_code == 2 and "different run" in result.stderr
    assert len(read_rows(tmp_path / "out.jsonl")) == 5


def test_output_suffix_picks_the_storage(tmp_path) -> None:
    from afterimage_cli.storage.sqlite import SQLiteStorage

    cfg = make_config(tmp_path)
    assert invoke("generate", str(cfg), "-n", "3", "-o", str(tmp_path / "run.sqlite"), "-q").exit_code == 0
    assert len(SQLiteStorage(tmp_path / "run.sqlite").load_conversations()) == 3
    sqlite_cfg = make_config(tmp_path, storage={"type": "sqlite", "path": str(tmp_path / "x.db")})
    assert invoke("generate", str(sqlite_cfg), "-n", "2", "-o", str(tmp_path / "run.jsonl"), "-q").exit_code == 0
    assert len(read_rows(tmp_path / "run.jsonl")) == 2


def test_an_output_that_is_not_ours_is_never_touched(tmp_path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_bytes(b"line one\nline two without newline")
    result = invoke("generate", str(make_config(tmp_path)), "-n", "2", "-o", str(precious), "-q")
    assert result.exit_code == 2
    assert "notes.txt:1: not valid JSON" in result.stderr and "--overwrite" in result.stderr
    assert precious.read_bytes() == b"line one\nline two without newline"


def test_an_error_inside_a_worker_is_reported_as_itself(tmp_path) -> None:
    cfg = make_config(tmp_path, instructions={"generator": "tests.plugins:MisconfiguredOpenings"})
    result = invoke("generate", str(cfg), "-n", "4", "-q")
    assert result.exit_code == 2
    assert "error: instructions.options.path: tickets.txt does not exist" in result.stderr
    assert "internal error" not in result.stderr and "ExceptionGroup" not in result.stderr
