"""ShareGPT: ``{"conversations": [{"from": "system|human|gpt|function_call|observation", "value": …}], "tools": "…"}``.

The system prompt is the first turn (``from: system``), which LLaMA-Factory and Axolotl both read.
Reasoning, when kept, is a ``<think>…</think>`` prefix of the gpt value. Tool rows follow LLaMA-Factory's
tool layout (formats/tool_turns.py): a ``function_call`` turn per calling step, an ``observation`` turn with
its results, the definitions as a JSON string in ``tools``. A calling step's own text and reasoning have no
place there and are left out. With ``-o DIR`` the dataset_info.json entry names the columns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..rows import Message, Record, Row
from .base import Converter, ExportFormat, ExportOptions, RowConverter, with_think
from .tool_turns import dumps, function_definitions, sharegpt_call_value, sharegpt_observation_value, steps

SHAREGPT_ROLES = {"user": "human", "assistant": "gpt"}
TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}
"""LLaMA-Factory's dataset_info tags for these turns (function_call and observation are its defaults)."""


def sharegpt_turns(include_reasoning: bool) -> Callable[[list[Message]], list[dict[str, str]]]:
    """A function from a row's turns to ShareGPT ``{from, value}`` dicts."""
    roles = SHAREGPT_ROLES

    def value(turn: Message) -> str:
        text: str = with_think(turn) if include_reasoning else turn["content"]
        return text

    def with_tools(turns: list[Message]) -> list[dict[str, str]]:
        out = []
        for step in steps(turns):
            if isinstance(step, tuple):
                out.append({"from": "function_call", "value": sharegpt_call_value(step[0])})
                out.append({"from": "observation", "value": sharegpt_observation_value(step[1])})
            else:
                out.append({"from": roles[step["role"]], "value": value(step)})
        return out

    # A tool result has no ShareGPT role: the KeyError sends the row to `with_tools`, so plain rows pay nothing.
    def plain(turns: list[Message]) -> list[dict[str, str]]:
        try:
            return [{"from": roles[t["role"]], "value": t["content"]} for t in turns]
        except KeyError:
            return with_tools(turns)

    def thinking(turns: list[Message]) -> list[dict[str, str]]:
        try:
            return [{"from": roles[t["role"]], "value": with_think(t)} for t in turns]
        except KeyError:
            return with_tools(turns)

    return thinking if include_reasoning else plain


def tools_column(row: Row) -> str | None:
    """The row's tool definitions as the JSON string LLaMA-Factory's `tools` column holds, or None."""
    tools = row.get("tools")
    return dumps(function_definitions(tools)) if tools else None


def make_converter(options: ExportOptions) -> Converter:
    """Build the per-row converter."""
    turns = sharegpt_turns(options.include_reasoning)
    system = None if options.system_prompt is None else {"from": "system", "value": options.system_prompt}

    def convert(row: Row) -> Record:
        conversation = turns(row["conversations"])
        if system is not None:
            conversation.insert(0, system)
        record: Record = {"conversations": conversation}
        if row.get("tools"):
            record["tools"] = tools_column(row)
        return record

    return RowConverter(convert)


def turn_arrow_type() -> Any:
    """The pyarrow type of a ShareGPT turns list."""
    import pyarrow as pa

    return pa.list_(pa.struct([pa.field("from", pa.string()), pa.field("value", pa.string())]))


def arrow_schema(options: ExportOptions) -> Any:
    """The parquet schema."""
    import pyarrow as pa

    fields = [pa.field("conversations", turn_arrow_type())]
    if options.tools:
        fields.append(pa.field("tools", pa.string()))
    return pa.schema(fields)


def dataset_info(file_name: str, options: ExportOptions) -> dict[str, Any] | None:
    """The dataset_info.json entry of a tool export, naming the tools column (the system prompt is the first
    turn, which LLaMA-Factory reads as such); plain sharegpt files get none, as before tools."""
    if not options.tools:
        return None
    columns = {"messages": "conversations", "tools": "tools"}
    return {"file_name": file_name, "formatting": "sharegpt", "columns": columns, "tags": dict(TAGS)}


FORMAT = ExportFormat(
    name="sharegpt",
    summary='{"conversations": [{"from": "system|human|gpt|function_call|observation", "value": ...}], '
    '"tools": "[...]"} (+ dataset_info.json for tool rows in -o DIR)',
    make_converter=make_converter,
    arrow_schema=arrow_schema,
    dataset_info=dataset_info,
)
