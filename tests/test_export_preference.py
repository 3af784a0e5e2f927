"""The preference formats (dpo, orpo, kto, openai-preference, llama_factory_ranking): every file loads with
`datasets`, has exactly its target's documented columns, and every record passes the target's own checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import jinja2
import orjson
import pytest

from afterimage_cli.export.split import Splitter
from tests.test_export_formats import CHATML_TEMPLATE, load, trl_is_conversational
from tests.test_export_support import (
    PAIR_FORMATS,
    SYSTEM,
    invoke_export,
    preference_rows,
    read_jsonl,
    sample_rows,
    turn,
    write_jsonl,
)

datasets.disable_progress_bars()

PAIRS = 5  # in preference_rows(): pref:0 one, pref:1 two (one earlier), pref:2 one, pref:3 one
COLUMNS = {
    "dpo": {"prompt", "chosen", "rejected"},
    "orpo": {"prompt", "chosen", "rejected"},
    "kto": {"prompt", "completion", "label"},
    "openai-preference": {"input", "preferred_output", "non_preferred_output"},
    "llama_factory_ranking": {"conversations", "chosen", "rejected", "system"},
}


def export_pairs(tmp_path: Path, fmt: str, *extra: str, rows: list[dict[str, Any]] | None = None) -> Path:
    source = write_jsonl(tmp_path / "rows.jsonl", rows if rows is not None else preference_rows())
    out = tmp_path / f"{fmt}{'.parquet' if 'parquet' in extra else '.jsonl'}"
    result = invoke_export(str(source), "--format", fmt, "-o", str(out), *extra)
    assert result.exit_code == 0, result.output
    assert "1 rows without a preference pair skipped" in result.stderr
    return out


# --- the targets' rules, from their documentation ----------------------------------------------------------


def chat_problems(messages: Any, where: str, *, last: str) -> list[str]:
    """A list of {role, content} messages: optional system first, then user/assistant alternating from the user,
    ending with `last`."""
    if not isinstance(messages, list) or not messages:
        return [f"{where}: not a non-empty list"]
    problems = [f"{where}: keys {set(m)}" for m in messages if set(m) != {"role", "content"}]
    problems += [f"{where}: content not text" for m in messages if not isinstance(m.get("content"), str)]
    body = messages[1:] if messages[0].get("role") == "system" else messages
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(body))]
    if [m.get("role") for m in body] != expected:
        problems.append(f"{where}: roles {[m.get('role') for m in messages]}")
    if messages[-1].get("role") != last:
        problems.append(f"{where}: ends with {messages[-1].get('role')}, not {last}")
    return problems


def one_answer_problems(messages: Any, where: str) -> list[str]:
    """chosen / rejected / completion: exactly one assistant message with text."""
    if not isinstance(messages, list) or len(messages) != 1:
        return [f"{where}: not a list of one message"]
    (message,) = messages
    ok = set(message) == {"role", "content"} and message["role"] == "assistant" and isinstance(message["content"], str)
    return [] if ok and message["content"] else [f"{where}: {message!r} is not one non-empty assistant message"]


def trl_preference_problems(record: dict[str, Any]) -> list[str]:
    """TRL's conversational preference type (DPO, ORPO): prompt ends with the user, one answer each side."""
    problems = [] if set(record) == {"prompt", "chosen", "rejected"} else [f"keys {set(record)}"]
    problems += chat_problems(record["prompt"], "prompt", last="user")
    problems += one_answer_problems(record["chosen"], "chosen") + one_answer_problems(record["rejected"], "rejected")
    if record["chosen"] == record["rejected"]:
        problems.append("chosen is rejected")
    if not trl_is_conversational(record):
        problems.append("not conversational for trl")
    return problems


def trl_kto_problems(record: dict[str, Any]) -> list[str]:
    """TRL's conversational unpaired preference type (KTO)."""
    problems = [] if set(record) == {"prompt", "completion", "label"} else [f"keys {set(record)}"]
    problems += chat_problems(record["prompt"], "prompt", last="user")
    problems += one_answer_problems(record["completion"], "completion")
    return problems + ([] if isinstance(record["label"], bool) else ["label is not a boolean"])


def openai_preference_problems(record: dict[str, Any]) -> list[str]:
    """OpenAI preference fine-tuning: input.messages ending with the user, one assistant message per output."""
    problems = [] if set(record) == {"input", "preferred_output", "non_preferred_output"} else [f"keys {set(record)}"]
    if set(record["input"]) - {"messages", "tools", "parallel_tool_calls"}:
        problems.append(f"input keys {set(record['input'])}")
    problems += chat_problems(record["input"]["messages"], "input.messages", last="user")
    problems += one_answer_problems(record["preferred_output"], "preferred_output")
    return problems + one_answer_problems(record["non_preferred_output"], "non_preferred_output")


def llama_factory_ranking_problems(example: dict[str, Any], info: dict[str, Any]) -> list[str]:
    """LLaMA-Factory's SharegptDatasetConverter for a `ranking: true` entry: human/gpt alternating from the human,
    an odd count (the prompt ends with the human), chosen and rejected dicts from the assistant."""
    columns, tags = info["columns"], info["tags"]
    role, content = tags["role_tag"], tags["content_tag"]
    messages = example[columns["messages"]]
    problems = []
    for index, message in enumerate(messages):
        if message[role] != (tags["user_tag"] if index % 2 == 0 else tags["assistant_tag"]):
            problems.append(f"invalid role tag {message[role]!r} at {index}")
    if len(messages) % 2 == 0:
        problems.append("invalid message count for ranking")
    for side in ("chosen", "rejected"):
        answer = example[columns[side]]
        if not isinstance(answer, dict) or answer[role] != tags["assistant_tag"] or not answer[content]:
            problems.append(f"{side} is not an assistant message: {answer!r}")
    if "system" in columns and not isinstance(example[columns["system"]], str):
        problems.append("system column is not a string")
    return problems


# --- per format ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["dpo", "orpo"])
def test_dpo_and_orpo_are_trl_conversational_preference_pairs(tmp_path: Path, fmt: str) -> None:
    dataset = load(export_pairs(tmp_path, fmt, "--system-prompt", SYSTEM), tmp_path)
    assert set(dataset.column_names) == COLUMNS[fmt] and len(dataset) == PAIRS
    assert [trl_preference_problems(record) for record in dataset] == [[]] * PAIRS
    first = dataset[0]
    assert first["prompt"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Explain Python decorators."},
        {"role": "assistant", "content": "A decorator wraps a function."},
        {"role": "user", "content": "Show an example?"},
    ]
    assert first["chosen"] == [{"role": "assistant", "content": "@cache\ndef f(x): ..."}]
    assert first["rejected"] == [{"role": "assistant", "content": "Decorators are magic; no example needed."}]
    # TRL renders the prompt (with the generation prompt) and prompt + answer: the first must prefix the second.
    template = jinja2.Environment().from_string(CHATML_TEMPLATE)
    for record in dataset:
        prompt = template.render(messages=record["prompt"], add_generation_prompt=True)
        for side in ("chosen", "rejected"):
            assert template.render(messages=record["prompt"] + record[side]).startswith(prompt)


def test_pairs_of_every_turn_and_of_the_quality_gate_take_their_own_prompt(tmp_path: Path) -> None:
    records = read_jsonl(export_pairs(tmp_path, "dpo"))
    # pref:1 holds an earlier pair (turn 1) before its own (turn 2); pref:2's pair is at turn 1 of 2.
    every_first, every_second, gate = records[1], records[2], records[3]
    assert every_first["prompt"] == [{"role": "user", "content": "What is a vector database?"}]
    assert every_first["rejected"][0]["content"] == "A kind of spreadsheet."
    assert [m["role"] for m in every_second["prompt"]] == ["user", "assistant", "user"]
    assert every_second["chosen"][0]["content"] == "When you search by meaning at scale."
    assert gate["prompt"] == [{"role": "user", "content": "How does HTTP caching work?"}]
    assert gate["chosen"][0]["content"] == "With Cache-Control and ETag headers."


def test_kto_writes_each_pair_as_a_desirable_and_an_undesirable_completion(tmp_path: Path) -> None:
    dataset = load(export_pairs(tmp_path, "kto", "--system-prompt", SYSTEM), tmp_path)
    assert set(dataset.column_names) == COLUMNS["kto"] and len(dataset) == 2 * PAIRS
    assert [trl_kto_problems(record) for record in dataset] == [[]] * (2 * PAIRS)
    assert [record["label"] for record in dataset] == [True, False] * PAIRS
    dpo = read_jsonl(export_pairs(tmp_path, "dpo", "--system-prompt", SYSTEM))
    answers = zip(dataset.select(range(0, 10, 2)), dataset.select(range(1, 10, 2)), strict=True)
    for pair, (good, bad) in zip(dpo, answers, strict=True):
        assert good["prompt"] == bad["prompt"] == pair["prompt"]
        assert (good["completion"], bad["completion"]) == (pair["chosen"], pair["rejected"])


def test_openai_preference_has_the_fine_tuning_shape(tmp_path: Path) -> None:
    dataset = load(export_pairs(tmp_path, "openai-preference", "--system-prompt", SYSTEM), tmp_path)
    assert set(dataset.column_names) == COLUMNS["openai-preference"] and len(dataset) == PAIRS
    records = read_jsonl(tmp_path / "openai-preference.jsonl")
    assert [openai_preference_problems(record) for record in records] == [[]] * PAIRS
    assert records[0]["input"]["messages"][0] == {"role": "system", "content": SYSTEM}


def test_llama_factory_ranking_loads_as_its_dataset_info_says(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", preference_rows())
    out_dir = tmp_path / "data"
    result = invoke_export(str(source), "-f", "llama_factory_ranking", "-o", f"{out_dir}/", "--system-prompt", SYSTEM)
    assert result.exit_code == 0, result.output
    entry = orjson.loads((out_dir / "dataset_info.json").read_bytes())["llama_factory_ranking"]
    assert entry["ranking"] is True and entry["formatting"] == "sharegpt"
    dataset = load(out_dir / entry["file_name"], tmp_path)
    assert set(dataset.column_names) == COLUMNS["llama_factory_ranking"] == set(entry["columns"].values())
    assert [llama_factory_ranking_problems(record, entry) for record in dataset] == [[]] * PAIRS
    assert dataset[0]["chosen"] == {"from": "gpt", "value": "@cache\ndef f(x): ..."}


@pytest.mark.parametrize("fmt", PAIR_FORMATS)
def test_reasoning_is_kept_when_asked(tmp_path: Path, fmt: str) -> None:
    record = read_jsonl(export_pairs(tmp_path, fmt, "--include-reasoning"))[0]
    text = orjson.dumps(record).decode()
    assert "A stdlib example is clearest." in text and "The user wants the concept first." in text
    plain = read_jsonl(export_pairs(tmp_path, fmt))[0]
    assert "stdlib example is clearest" not in orjson.dumps(plain).decode()


@pytest.mark.parametrize("fmt", PAIR_FORMATS)
def test_parquet_loads_and_matches_jsonl(tmp_path: Path, fmt: str) -> None:
    extra = ("--system-prompt", SYSTEM, "--include-reasoning")
    jsonl_records = read_jsonl(export_pairs(tmp_path, fmt, *extra))
    parquet = export_pairs(tmp_path, fmt, *extra, "--output-format", "parquet")
    assert parquet.read_bytes()[:4] == b"PAR1"
    assert list(load(parquet, tmp_path)) == jsonl_records


# --- rows without pairs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", PAIR_FORMATS)
def test_an_input_without_any_pair_is_an_error_naming_the_runs_that_make_them(tmp_path: Path, fmt: str) -> None:
    """The old dpo paired rows by their first message: a grounded run's model-written openings made 0 pairs
    without a word, and its pairs put simulated-user turns into `chosen`. Now SFT rows make no pair, loudly."""
    source = write_jsonl(tmp_path / "rows.jsonl", sample_rows())
    out = tmp_path / "out.jsonl"
    result = invoke_export(str(source), "-f", fmt, "-o", str(out))
    assert result.exit_code == 1
    assert "none of its 6 rows holds a preference pair" in result.stderr
    assert "generation.kind: preference" in result.stderr and "keep_pairs" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_sft_formats_still_export_preference_rows_as_conversations(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", preference_rows())
    result = invoke_export(str(source), "-f", "messages")
    assert result.exit_code == 0, result.output
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == len(preference_rows())
    assert records[0]["messages"][-1]["content"] == "@cache\ndef f(x): ..."


def test_the_pairs_of_a_row_stay_on_its_side_of_the_split(tmp_path: Path) -> None:
    rows = []
    for i in range(40):
        conversations = [
            turn("user", f"q{i}"),
            turn("assistant", f"a{i}"),
            turn("user", f"f{i}"),
            turn("assistant", f"b{i}"),
        ]
        rows.append(
            {
                "id": f"r{i}",
                "conversations": conversations,
                "chosen": conversations[3],
                "rejected": turn("assistant", f"worse b{i}"),
                "earlier_pairs": [
                    {"turn": 1, "chosen": conversations[1], "rejected": turn("assistant", f"worse a{i}")}
                ],
                "metadata": {"preference": {"turn": 2}},
            }
        )
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    result = invoke_export(
        str(source), "-f", "dpo", "-o", str(tmp_path / "pairs.jsonl"), "--split", "0.5", "--seed", "2"
    )
    assert result.exit_code == 0, result.output
    train, val = read_jsonl(tmp_path / "pairs.train.jsonl"), read_jsonl(tmp_path / "pairs.val.jsonl")
    assert len(train) + len(val) == 80 and train and val
    splitter = Splitter(0.5, seed=2)
    for part, records in (("train", train), ("val", val)):
        for record in records:
            row = rows[int(record["prompt"][0]["content"][1:])]
            assert splitter.part_of_row(row) == part


def test_a_bad_pair_names_its_line_and_field(tmp_path: Path) -> None:
    row = {**preference_rows()[0], "rejected": {"role": "user", "content": "not an answer"}}
    late = {**preference_rows()[0], "metadata": {"preference": {"turn": 7}}}
    for bad, message in ((row, "rejected.role: expected 'assistant'"), (late, "metadata.preference.turn")):
        source = write_jsonl(tmp_path / "bad.jsonl", [preference_rows()[3], bad])
        result = invoke_export(str(source), "-f", "dpo")
        assert result.exit_code == 1 and f"bad.jsonl:2: {message}" in result.stderr, result.stderr
