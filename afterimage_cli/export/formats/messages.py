"""Chat messages: ``{"messages": [{"role": "system|user|assistant", "content": …}]}``.

The row layout of OpenAI chat fine-tuning and of TRL's / Hugging Face's conversational datasets
(registered as ``messages`` and ``openai``). Reasoning, when kept, is a ``reasoning_content`` field on
every message ("" where there is none), the name DeepSeek, vLLM and Qwen chat templates use.
"""

from __future__ import annotations

from typing import Any

from ..rows import Record, Row
from .base import (
    Converter,
    ExportFormat,
    ExportOptions,
    RowConverter,
    message_arrow_type,
    role_content_message,
    system_message,
)


def make_converter(options: ExportOptions) -> Converter:
    """Build the per-row converter."""
    include_reasoning = options.include_reasoning
    head = [] if options.system_prompt is None else [system_message(options.system_prompt, include_reasoning)]
    if include_reasoning:

        def convert(row: Row) -> Record:
            return {"messages": [*head, *(role_content_message(t, True) for t in row["conversations"])]}

    else:

        def convert(row: Row) -> Record:
            return {"messages": [*head, *({"role": t["role"], "content": t["content"]} for t in row["conversations"])]}

    return RowConverter(convert)


def arrow_schema(options: ExportOptions) -> Any:
    """The parquet schema."""
    import pyarrow as pa

    return pa.schema([pa.field("messages", pa.list_(message_arrow_type(options.include_reasoning)))])


FORMAT = ExportFormat(
    name="messages",
    summary='OpenAI / TRL chat rows: {"messages": [{"role": "system|user|assistant", "content": ...}]}',
    make_converter=make_converter,
    arrow_schema=arrow_schema,
)
