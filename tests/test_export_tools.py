"""Tool rows in every format that can hold them, checked against the target's rules and loaded with `datasets`.

The rules, from each target's documentation:

OpenAI chat fine-tuning with tools (platform.openai.com fine-tuning "function calling"; Azure OpenAI's
"fine-tuning and tool calling" shows the same line):
  1. a line is {"messages": [...], "tools": [...]} (optionally "parallel_tool_calls");
  2. `tools` holds {"type": "function", "function": {"name", "description", "parameters"}} definitions;
  3. an assistant message that calls tools has `tool_calls`: [{"id", "type": "function", "function":
     {"name", "arguments"}}], `arguments` a JSON *string* (not an object), `name` one of the tools;
     its `content` is null when it wrote no text ("content is required unless tool_calls is specified");
  4. each call is answered by one {"role": "tool", "tool_call_id", "content": string} message after it;
  5. every other message has string content, and the last message is the assistant's answer.

LLaMA-Factory sharegpt (data/README.md, its glaive_toolcall example):
  `conversations` turns alternate human|observation and gpt|function_call; a function_call value is JSON
  {"name", "arguments"}; `tools` is a JSON string of function definitions; dataset_info.json names the
  column (`"columns": {"messages": "conversations", "tools": "tools"}`).

Hermes function calling (NousResearch/Hermes-Function-Calling), in ChatML:
  the system prompt carries the tools as JSON inside <tools></tools>; the assistant writes each call as
  <tool_call>{"name", "arguments": {...}}</tool_call>; results come back in a `tool` turn as
  <tool_response>{"name", "content"}</tool_response>.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import datasets
import orjson
import pytest

from tests.test_export_formats import llama_factory_sharegpt_problems, load
from tests.test_export_support import SYSTEM, invoke_export, read_jsonl, sample_rows, write_jsonl
from tests.tool_rows import TOOLS, call, calling, plain_row, recovery_row, result, said, tool_row

datasets.disable_progress_bars()
ROWS = [tool_row(0), recovery_row(0), tool_row(1)]


def export(tmp_path: Path, fmt: str, *extra: str, rows: list[dict[str, Any]] | None = None) -> Any:
    source = write_jsonl(tmp_path / "rows.jsonl", ROWS if rows is None else rows)
    return invoke_export(str(source), "--format", fmt, *extra)


def export_file(tmp_path: Path, fmt: str, *extra: str, rows: list[dict[str, Any]] | None = None) -> Path:
    out = tmp_path / f"{fmt}{'.parquet' if 'parquet' in extra else '.jsonl'}"
    result = export(tmp_path, fmt, "-o", str(out), *extra, rows=rows)
    assert result.exit_code == 0, result.output
    return out


def openai_tool_problems(record: dict[str, Any]) -> list[str]:
    """The OpenAI rules of the module docstring, for one line."""
    problems = []
    if set(record) - {"messages", "tools", "parallel_tool_calls"}:
        problems.append(f"unexpected keys {sorted(record)}")
    names = set()
    for tool in record.get("tools", []):
        function = tool.get("function", {})
        if tool.get("type") != "function" or not isinstance(function.get("name"), str):
            problems.append(f"bad tool definition {tool}")
        if not isinstance(function.get("parameters"), dict):
            problems.append(f"tool {function.get('name')} has no parameters schema")
        names.add(function.get("name"))
    waiting: set[str] = set()
    messages = record["messages"]
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            if set(message) - {"role", "tool_call_id", "content"}:
                problems.append(f"[{index}] unexpected tool message keys {sorted(message)}")
            if message.get("tool_call_id") not in waiting:
                problems.append(f"[{index}] answers no call")
            waiting.discard(message.get("tool_call_id"))
            if not isinstance(message.get("content"), str):
                problems.append(f"[{index}] tool content is not a string")
            continue
        if waiting:
            problems.append(f"[{index}] calls {sorted(waiting)} were not answered")
        if role not in ("system", "user", "assistant"):
            problems.append(f"[{index}] bad role {role!r}")
        calls = message.get("tool_calls")
        if calls is None:
            if not isinstance(message.get("content"), str):
                problems.append(f"[{index}] content is not a string")
            continue
        if role != "assistant" or not (message.get("content") is None or isinstance(message["content"], str)):
            problems.append(f"[{index}] tool_calls on a {role} message, or content neither null nor text")
        for made in calls:
            function = made.get("function", {})
            if set(made) != {"id", "type", "function"} or made["type"] != "function":
                problems.append(f"[{index}] bad call keys {sorted(made)}")
            if set(function) != {"name", "arguments"} or not isinstance(function["arguments"], str):
                problems.append(f"[{index}] function must be {{name, arguments: str}}, got {function}")
            if function.get("name") not in names:
                problems.append(f"[{index}] calls {function.get('name')!r}, which `tools` does not define")
            waiting.add(made.get("id"))
    if waiting:
        problems.append(f"calls {sorted(waiting)} were not answered")
    last = messages[-1]
    if last.get("role") != "assistant" or last.get("tool_calls"):
        problems.append("the last message is not the assistant's answer")
    return problems


@pytest.mark.parametrize("fmt", ["messages", "openai"])
def test_openai_lines_follow_the_tool_rules_and_load(tmp_path: Path, fmt: str) -> None:
    out = export_file(tmp_path, fmt, "--system-prompt", SYSTEM)
    records = read_jsonl(out)
    assert [openai_tool_problems(r) for r in records] == [[], [], []]
    first = records[0]
    assert first["tools"] == TOOLS
    assert first["messages"][0] == {"role": "system", "content": SYSTEM}
    assert first["messages"][2] == {
        "role": "assistant",
        "content": None,  # wrote no text: null, as OpenAI's API answers a call
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "unit": "celsius"}'},
            }
        ],
    }
    assert first["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": -3, "sky": "snow"}'}
    assert first["messages"][6]["content"] == "Let me do both."  # text beside calls is kept
    assert records[1]["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"city": "Bergen"'  # as written

    dataset = load(out, tmp_path)
    assert len(dataset) == 3
    loaded = dataset[0]
    assert [t["function"]["name"] for t in loaded["tools"]] == ["get_weather", "convert_currency", "book_table"]
    assert [m["role"] for m in loaded["messages"]] == [
        "system", "user", "assistant", "tool", "assistant", "user", "assistant", "tool", "tool", "assistant",
    ]  # fmt: skip
    call = loaded["messages"][6]["tool_calls"][1]
    assert call["type"] == "function"
    assert json.loads(call["function"]["arguments"]) == {"restaurant": "Maaemo", "people": 2}
    assert loaded["messages"][8]["tool_call_id"] == "call_3"


def test_reasoning_keeps_one_message_type_with_tool_steps(tmp_path: Path) -> None:
    records = read_jsonl(export_file(tmp_path, "messages", "--include-reasoning"))
    assert all(m["reasoning_content"] == "" for m in records[0]["messages"])
    assert len(load(tmp_path / "messages.jsonl", tmp_path)) == 3


@pytest.mark.parametrize("fmt", ["sharegpt", "llama_factory"])
def test_sharegpt_layouts_hold_function_calls_observations_and_a_tools_column(tmp_path: Path, fmt: str) -> None:
    out_dir = tmp_path / "data"
    out_dir.mkdir()
    result = export(tmp_path, fmt, "-o", str(out_dir) + "/")
    assert result.exit_code == 0, result.output
    info = orjson.loads((out_dir / "dataset_info.json").read_bytes())[fmt]
    assert info["formatting"] == "sharegpt" and info["columns"]["tools"] == "tools"
    dataset = load(out_dir / info["file_name"], tmp_path)
    assert set(info["columns"].values()) <= set(dataset.column_names)
    for record in dataset:
        assert llama_factory_sharegpt_problems(record, info) == []
        assert [t["name"] for t in json.loads(record["tools"])] == ["get_weather", "convert_currency", "book_table"]
    turns = dataset[0]["conversations"]
    assert [t["from"] for t in turns] == [
        "human", "function_call", "observation", "gpt", "human", "function_call", "observation", "gpt",
    ]  # fmt: skip
    assert json.loads(turns[1]["value"]) == {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}
    parallel = json.loads(turns[5]["value"])
    assert [c["name"] for c in parallel] == ["convert_currency", "book_table"]
    assert json.loads(turns[6]["value"]) == ['{"amount": 1165.4}', '{"confirmed": true, "time": "19:00"}']
    assert turns[2]["value"] == '{"temp": -3, "sky": "snow"}'
    recovery = dataset[1]["conversations"]
    assert json.loads(recovery[1]["value"]) == {"name": "get_weather", "arguments": '{"city": "Bergen"'}


def test_plain_sharegpt_exports_write_no_dataset_info_as_before(tmp_path: Path) -> None:
    out_dir = tmp_path / "data"
    out_dir.mkdir()
    result = export(tmp_path, "sharegpt", "-o", str(out_dir) + "/", rows=sample_rows())
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out_dir.iterdir()) == ["sharegpt.jsonl"]
    assert all("tools" not in record for record in read_jsonl(out_dir / "sharegpt.jsonl"))


TOOL_CALL = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.DOTALL)
TOOL_RESPONSE = re.compile(r"<tool_response>\n(.*?)\n</tool_response>", re.DOTALL)


def test_chatml_follows_the_hermes_tool_convention(tmp_path: Path) -> None:
    out = export_file(tmp_path, "chatml", "--system-prompt", SYSTEM)
    text = load(out, tmp_path)[0]["text"]
    system = text.split("<|im_end|>")[0]
    assert system.startswith(f"<|im_start|>system\n{SYSTEM}\n\n")
    tools = json.loads(re.search(r"<tools>\n(.*?)\n</tools>", system, re.DOTALL).group(1))  # type: ignore[union-attr]
    assert tools == TOOLS
    dialog = text.split("<|im_end|>\n", 1)[1]  # the system prompt shows the call format itself
    calls = [json.loads(c) for c in TOOL_CALL.findall(dialog)]
    assert calls[0] == {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}
    assert [c["name"] for c in calls] == ["get_weather", "convert_currency", "book_table"]
    responses = [json.loads(r) for r in TOOL_RESPONSE.findall(text)]
    assert responses[0] == {"name": "get_weather", "content": {"temp": -3, "sky": "snow"}}
    assert [r["name"] for r in responses] == ["get_weather", "convert_currency", "book_table"]
    turns = re.findall(r"<\|im_start\|>(\w+)\n", text)
    assert turns == ["system", "user", "assistant", "tool", "assistant", "user", "assistant", "tool", "assistant"]
    assert "<|im_start|>assistant\nLet me do both.\n<tool_call>" in text
    assert text.count("<tool_response>") == 3  # both parallel results in one tool turn


def test_chatml_of_plain_rows_is_unchanged(tmp_path: Path) -> None:
    text = read_jsonl(export_file(tmp_path, "chatml", rows=[plain_row()]))[0]["text"]
    assert text == "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n"


def test_alpaca_refuses_tool_rows_naming_the_formats_that_keep_them(tmp_path: Path) -> None:
    result = export(tmp_path, "alpaca", "-o", str(tmp_path / "a.jsonl"), rows=[plain_row(), tool_row(0)])
    assert result.exit_code == 1
    assert "row 'tools-000' has tool calls, which --format alpaca cannot hold" in result.output
    assert "messages, openai, sharegpt, llama_factory or chatml" in result.output
    assert not (tmp_path / "a.jsonl").exists()  # a failed export leaves no file


@pytest.mark.parametrize("fmt", ["messages", "sharegpt", "llama_factory"])
def test_parquet_holds_the_tool_fields(tmp_path: Path, fmt: str) -> None:
    jsonl = read_jsonl(export_file(tmp_path, fmt))
    dataset = load(export_file(tmp_path, fmt, "--output-format", "parquet"), tmp_path)
    for record, line in zip(dataset, jsonl, strict=True):
        tools = json.loads(record["tools"])  # JSON Schemas have no fixed Arrow type: a JSON string
        assert tools == (line["tools"] if fmt == "messages" else json.loads(line["tools"]))
        key = "messages" if fmt == "messages" else "conversations"
        strip = [{k: v for k, v in m.items() if v is not None} for m in record[key]]
        assert strip == [{k: v for k, v in m.items() if v is not None} for m in line[key]]


def test_parquet_refuses_a_tool_row_after_plain_rows_instead_of_dropping_its_tools(tmp_path: Path) -> None:
    out = tmp_path / "m.parquet"
    result = export(tmp_path, "messages", "-o", str(out), "--output-format", "parquet", rows=[plain_row(), tool_row()])
    assert result.exit_code == 1
    assert "a row has tools, which the first row had not" in result.output
    tool_first = export_file(tmp_path, "messages", "--output-format", "parquet", rows=[tool_row(), plain_row()])
    assert load(tool_first, tmp_path)[1]["tools"] is None


def test_hf_folder_keeps_tools(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    result = export(tmp_path, "hf", "-o", str(folder), "--layout", "messages")
    assert result.exit_code == 0, result.output
    dataset = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(dataset) == 3
    assert [t["function"]["name"] for t in json.loads(dataset[0]["tools"])][0] == "get_weather"
    assert dataset[0]["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
    card = (folder / "README.md").read_text()
    assert "- Rows: tool 3 (100 %)" in card
    assert "- Tool calls: 8 (`get_weather` 4, `convert_currency` 2, `book_table` 2) to 3 offered tools" in card


def test_pair_prompts_keep_their_tool_steps(tmp_path: Path) -> None:
    row = tool_row()
    row["chosen"] = {"role": "assistant", "content": "Both done: 1165.40 NOK, table at 19:00."}
    row["rejected"] = {"role": "assistant", "content": "I cannot book tables."}
    row["metadata"]["preference"] = {"turn": 2}  # the second user turn: its prompt holds the first exchange's steps
    records = read_jsonl(export_file(tmp_path, "dpo", rows=[row]))
    prompt = records[0]["prompt"]
    assert [m["role"] for m in prompt] == ["user", "assistant", "tool", "assistant", "user"]
    assert prompt[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert prompt[2]["tool_call_id"] == "call_1"
    ranking = read_jsonl(export_file(tmp_path, "llama_factory_ranking", rows=[row]))
    assert [t["from"] for t in ranking[0]["conversations"]] == ["human", "function_call", "observation", "gpt", "human"]


def test_the_readme_tool_examples_are_what_export_writes(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("#### Tool-calling rows") : readme.index("**The `hf` folder**")]
    documented = re.findall(r"```json\n(.*?)\n```", section, re.DOTALL)
    chatml_text = re.search(r"```text\n(.*?)\n```", section, re.DOTALL).group(1)  # type: ignore[union-attr]
    weather = {**TOOLS[0], "function": {**TOOLS[0]["function"], "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}  # fmt: skip
    row = {
        "conversations": [
            said("user", "Weather in Oslo?"),
            calling(call("call_1", "get_weather", {"city": "Oslo"})),
            result("call_1", "get_weather", '{"temp": -3}'),
            said("assistant", "-3 °C in Oslo."),
        ],
        "tools": [weather],
    }
    for fmt, example in zip(("messages", "sharegpt"), documented, strict=True):
        written = read_jsonl(export_file(tmp_path, fmt, rows=[row]))[0]
        assert written == orjson.loads(example), fmt
    text = read_jsonl(export_file(tmp_path, "chatml", rows=[row]))[0]["text"]
    dialog = chatml_text.split("…<|im_end|>\n", 1)[1]  # the system prompt is abbreviated in the README
    assert text.endswith(dialog + "\n")
