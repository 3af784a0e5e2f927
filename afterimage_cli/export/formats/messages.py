"""Chat messages: ``{"messages": [{"role": "system|user|assistant|tool", "content": …}], "tools": [...]}``.

The row layout of OpenAI chat fine-tuning and of TRL's / Hugging Face's conversational datasets
(registered as ``messages`` and ``openai``). Reasoning, when kept, is a ``reasoning_content`` field on
every message ("" where there is none), the name DeepSeek, vLLM and Qwen chat templates use. A tool row
keeps its ``tools`` definitions and its steps as OpenAI writes them (formats/tool_turns.py); in parquet,
``tools`` is a JSON string.
"""

from __future__ import annotations

from typing import Any

from ..rows import Message, Record, Row
from .base import (
    Converter,
    ExportFormat,
    ExportOptions,
    RowConverter,
    chat_message,
    message_arrow_type,
    system_message,
)
from .tool_turns import dumps


def make_converter(options: ExportOptions) -> Converter:
    """Build the per-row converter."""
    include_reasoning = options.include_reasoning
    head = [] if options.system_prompt is None else [system_message(options.system_prompt, include_reasoning)]
    tools_as_json = options.tools_as_json

    plain_roles = {"user": "user", "assistant": "assistant"}

    def messages(turns: list[Message]) -> list[dict[str, Any]]:
        if not include_reasoning:
            try:  # a tool result's role is not in plain_roles: its row takes chat_message's way
                return [{"role": plain_roles[t["role"]], "content": t["content"]} for t in turns]
            except KeyError:
                pass
        return [chat_message(t, include_reasoning) for t in turns]

    def convert(row: Row) -> Record:
        record: Record = {"messages": [*head, *messages(row["conversations"])]}
        tools = row.get("tools")
        if tools:
            record["tools"] = dumps(tools) if tools_as_json else tools
        return record

    return RowConverter(convert)


def arrow_schema(options: ExportOptions) -> Any:
    """The parquet schema."""
    import pyarrow as pa

    fields = [pa.field("messages", pa.list_(message_arrow_type(options.include_reasoning, options.tools)))]
    if options.tools:
        fields.append(pa.field("tools", pa.string()))
    return pa.schema(fields)


FORMAT = ExportFormat(
    name="messages",
    summary='OpenAI / TRL chat rows: {"messages": [{"role": "system|user|assistant|tool", "content": ...}]'
    ', "tools": [...]} (tool_calls as OpenAI writes them)',
    make_converter=make_converter,
    arrow_schema=arrow_schema,
)
