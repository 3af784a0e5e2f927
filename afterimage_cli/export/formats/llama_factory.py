"""LLaMA-Factory's ShareGPT layout: ``{"conversations": [{"from": "human|gpt", "value"}], "system": …, "tools": …}``.

Unlike plain ``sharegpt`` the system prompt is a column of its own, which LLaMA-Factory maps with
``columns.system``. Tool rows are written as in ``sharegpt`` (function_call/observation turns, the
``tools`` column). When the output is a directory its dataset_info.json entry is written alongside.
"""

from __future__ import annotations

from typing import Any

from ..rows import Record, Row
from .base import Converter, ExportFormat, ExportOptions, RowConverter
from .sharegpt import TAGS, sharegpt_turns, tools_column, turn_arrow_type


def make_converter(options: ExportOptions) -> Converter:
    """Build the per-row converter."""
    turns = sharegpt_turns(options.include_reasoning)
    system = options.system_prompt

    def convert(row: Row) -> Record:
        record: Record = {"conversations": turns(row["conversations"])}
        if system is not None:
            record["system"] = system
        tools = tools_column(row)
        if tools is not None:
            record["tools"] = tools
        return record

    return RowConverter(convert)


def arrow_schema(options: ExportOptions) -> Any:
    """The parquet schema."""
    import pyarrow as pa

    fields = [pa.field("conversations", turn_arrow_type())]
    if options.system_prompt is not None:
        fields.append(pa.field("system", pa.string()))
    if options.tools:
        fields.append(pa.field("tools", pa.string()))
    return pa.schema(fields)


def dataset_info(file_name: str, options: ExportOptions) -> dict[str, Any]:
    """The dataset_info.json entry that tells LLaMA-Factory how to read the file."""
    columns = {"messages": "conversations"}
    if options.system_prompt is not None:
        columns["system"] = "system"
    if options.tools:
        columns["tools"] = "tools"
    return {"file_name": file_name, "formatting": "sharegpt", "columns": columns, "tags": dict(TAGS)}


FORMAT = ExportFormat(
    name="llama_factory",
    summary='LLaMA-Factory sharegpt: {"conversations": [{"from": "human|gpt", "value": ...}], "system": ...}'
    " (+ dataset_info.json in -o DIR)",
    make_converter=make_converter,
    arrow_schema=arrow_schema,
    dataset_info=dataset_info,
)
