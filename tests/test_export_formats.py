"""Every format's output is accepted by its target's loader and rules, and keeps every turn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import jinja2
import orjson
import pytest

from tests.test_export_support import (
    PER_ROW_FORMATS,
    SYSTEM,
    invoke_export,
    read_jsonl,
    sample_rows,
    source_turns,
    turns_of,
    write_jsonl,
)

datasets.disable_progress_bars()

# The ChatML chat template as model repos ship it (OpenHermes / Qwen style).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def export_file(tmp_path: Path, fmt: str, *extra: str, rows: list[dict[str, Any]] | None = None) -> Path:
    """Export the sample rows (or ``rows``) to tmp_path/<fmt>.jsonl and return the output path."""
    source = write_jsonl(tmp_path / "rows.jsonl", rows if rows is not None else sample_rows())
    out = tmp_path / f"{fmt}{'.parquet' if 'parquet' in extra else '.jsonl'}"
    result = invoke_export(str(source), "--format", fmt, "-o", str(out), *extra)
    assert result.exit_code == 0, result.output
    return out


def load(path: Path, tmp_path: Path, **kwargs: Any) -> datasets.Dataset:
    """Load an exported file with `datasets`, as a trainer would."""
    builder = "parquet" if path.suffix == ".parquet" else "json"
    return datasets.load_dataset(
        builder, data_files=str(path), split="train", cache_dir=str(tmp_path / "hf-cache"), **kwargs
    )


# --- the targets' rules, reimplemented from their documentation and source -----------------------------


def openai_chat_problems(record: dict[str, Any]) -> list[str]:
    """OpenAI chat fine-tuning rules for one line."""
    problems = []
    messages = record.get("messages")
    if set(record) - {"messages", "tools", "parallel_tool_calls"}:
        problems.append(f"unexpected keys {set(record)}")
    if not isinstance(messages, list) or not messages:
        return [*problems, "no messages"]
    for message in messages:
        if message.get("role") not in ("system", "user", "assistant"):
            problems.append(f"bad role {message.get('role')!r}")
        if not isinstance(message.get("content"), str):
            problems.append("content is not a string")
        if set(message) - {"role", "content", "name", "weight"}:
            problems.append(f"unexpected message keys {set(message)}")
    if not any(m.get("role") == "assistant" for m in messages):
        problems.append("no assistant message")
    if messages[-1].get("role") != "assistant":
        problems.append("last message is not the assistant's")
    return problems


def trl_is_conversational(example: dict[str, Any]) -> bool:
    """trl.data_utils.is_conversational."""
    supported_keys = ["prompt", "chosen", "rejected", "completion", "messages"]
    example_keys = {key for key in example if key in supported_keys}
    if example_keys:
        key = example_keys.pop()
        maybe_messages = example[key]
        if isinstance(maybe_messages, list):
            maybe_message = maybe_messages[0]
            if isinstance(maybe_message, dict) and "role" in maybe_message and "content" in maybe_message:
                return True
    return False


def llama_factory_sharegpt_problems(example: dict[str, Any], info: dict[str, Any]) -> list[str]:
    """LLaMA-Factory's SharegptDatasetConverter checks, driven by a dataset_info.json entry."""
    columns, tags = info.get("columns", {}), info.get("tags", {})
    role, content = tags.get("role_tag", "from"), tags.get("content_tag", "value")
    user, assistant, system_tag = (
        tags.get("user_tag", "human"),
        tags.get("assistant_tag", "gpt"),
        tags.get("system_tag", "system"),
    )
    messages = example[columns.get("messages", "conversations")]
    if messages and messages[0][role] == system_tag:
        messages = messages[1:]
    problems = []
    for index, message in enumerate(messages):
        accepted = (user, "observation") if index % 2 == 0 else (assistant, "function_call")
        if message[role] not in accepted:
            problems.append(f"invalid role tag {message[role]!r} at {index}")
        if not isinstance(message[content], str):
            problems.append(f"content at {index} is not a string")
    if len(messages) % 2 != 0:
        problems.append("invalid message count")
    if "system" in columns and not isinstance(example[columns["system"]], str):
        problems.append("system column is not a string")
    return problems


def llama_factory_alpaca_problems(example: dict[str, Any], info: dict[str, Any]) -> list[str]:
    """LLaMA-Factory's AlpacaDatasetConverter expectations for an alpaca-with-history entry."""
    columns = info["columns"]
    problems = [
        f"{c} is not a string" for c in ("prompt", "query", "response") if not isinstance(example[columns[c]], str)
    ]
    for pair in example[columns["history"]]:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            problems.append(f"history entry {pair!r} is not [user, assistant]")
    return problems


# --- per format ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["messages", "openai"])
def test_messages_pass_openai_and_trl_rules(tmp_path: Path, fmt: str) -> None:
    out = export_file(tmp_path, fmt, "--system-prompt", SYSTEM)
    dataset = load(out, tmp_path)
    assert len(dataset) == len(sample_rows())
    for record in dataset:
        assert openai_chat_problems(record) == []
        assert trl_is_conversational(record)
        assert record["messages"][0] == {"role": "system", "content": SYSTEM}


def test_messages_with_reasoning_load_even_when_early_rows_have_none(tmp_path: Path) -> None:
    # datasets infers types chunk by chunk; a small chunksize puts reasoning-free rows in a chunk of their own.
    rows = [sample_rows()[1]] * 40 + [sample_rows()[0]] * 40
    out = export_file(tmp_path, "messages", "--include-reasoning", rows=rows)
    dataset = load(out, tmp_path, chunksize=512)
    assert len(dataset) == 80
    assert all(trl_is_conversational(r) for r in dataset)
    assert dataset[-1]["messages"][1]["reasoning_content"] == "The user wants the concept first."
    assert dataset[0]["messages"][1] == {
        "role": "assistant",
        "content": sample_rows()[1]["conversations"][1]["content"],
        "reasoning_content": "",
    }


@pytest.mark.parametrize("fmt", ["sharegpt", "llama_factory"])
def test_sharegpt_layouts_pass_llama_factory_rules(tmp_path: Path, fmt: str) -> None:
    out = export_file(tmp_path, fmt, "--system-prompt", SYSTEM, "--include-reasoning")
    info = {"columns": {"messages": "conversations", **({"system": "system"} if fmt == "llama_factory" else {})}}
    dataset = load(out, tmp_path)
    assert len(dataset) == len(sample_rows())
    for record in dataset:
        assert llama_factory_sharegpt_problems(record, info) == []
    first = dataset[0]
    if fmt == "sharegpt":
        assert first["conversations"][0] == {"from": "system", "value": SYSTEM}
    else:
        assert first["system"] == SYSTEM and first["conversations"][0]["from"] == "human"


def test_llama_factory_directory_has_a_dataset_info_that_reads_the_files(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", sample_rows())
    out_dir = tmp_path / "data"
    out_dir.mkdir()
    (out_dir / "dataset_info.json").write_text('{"someone_else": {"file_name": "x.json"}}')
    result = invoke_export(
        str(source), "-f", "llama_factory", "-f", "alpaca", "-o", str(out_dir), "--system-prompt", SYSTEM
    )
    assert result.exit_code == 0, result.output
    info = orjson.loads((out_dir / "dataset_info.json").read_bytes())
    assert set(info) == {"someone_else", "llama_factory", "alpaca"}
    for name, check in (("llama_factory", llama_factory_sharegpt_problems), ("alpaca", llama_factory_alpaca_problems)):
        entry = info[name]
        dataset = load(out_dir / entry["file_name"], tmp_path)
        assert set(entry["columns"].values()) <= set(dataset.column_names)
        assert all(check(record, entry) == [] for record in dataset)
        assert len(dataset) == len(sample_rows())


def test_alpaca_keeps_every_turn_as_history(tmp_path: Path) -> None:
    out = export_file(tmp_path, "alpaca")
    dataset = load(out, tmp_path)
    first = dataset[0]
    assert first["instruction"] == "And with arguments?"
    assert first["output"] == "Write a factory returning the decorator."
    assert first["history"] == [
        ["Explain Python decorators.", "A decorator wraps a function."],
        ["Show an example?", "@cache\ndef f(x): ..."],
    ]
    assert first["input"] == "" and dataset[1]["history"] == []


def test_chatml_text_is_what_the_chatml_template_renders(tmp_path: Path) -> None:
    out = export_file(tmp_path, "chatml", "--system-prompt", SYSTEM)
    template = jinja2.Environment().from_string(CHATML_TEMPLATE)
    dataset = load(out, tmp_path)
    for record, row in zip(dataset, sample_rows(), strict=True):
        messages = [{"role": "system", "content": SYSTEM}, *row["conversations"]]
        assert record["text"] == template.render(messages=messages, add_generation_prompt=False)


# --- across formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", PER_ROW_FORMATS)
@pytest.mark.parametrize("include_reasoning", [True, False])
def test_multi_turn_conversations_survive_every_format(tmp_path: Path, fmt: str, include_reasoning: bool) -> None:
    extra = ("--include-reasoning",) if include_reasoning else ()
    out = export_file(tmp_path, fmt, "--system-prompt", SYSTEM, *extra)
    records = read_jsonl(out)
    rows = sample_rows()
    assert len(records) == len(rows)
    for record, row in zip(records, rows, strict=True):
        assert turns_of(fmt, record) == source_turns(row, include_reasoning)


@pytest.mark.parametrize("fmt", ["sharegpt", "messages", "alpaca", "llama_factory", "chatml"])
def test_parquet_loads_and_matches_jsonl(tmp_path: Path, fmt: str) -> None:
    extra = ("--system-prompt", SYSTEM, "--include-reasoning")
    jsonl_records = read_jsonl(export_file(tmp_path, fmt, *extra))
    parquet = export_file(tmp_path, fmt, *extra, "--output-format", "parquet")
    assert parquet.read_bytes()[:4] == b"PAR1"
    dataset = load(parquet, tmp_path)
    assert list(dataset) == jsonl_records
