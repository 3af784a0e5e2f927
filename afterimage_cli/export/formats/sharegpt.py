"""ShareGPT: ``{"conversations": [{"from": "system|human|gpt", "value": …}]}``.

The system prompt is the first turn (``from: system``), which LLaMA-Factory and Axolotl both read.
Reasoning, when kept, is a ``<think>…</think>`` prefix of the gpt value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..rows import Record, Row
from .base import Converter, ExportFormat, ExportOptions, RowConverter, with_think

SHAREGPT_ROLES = {"user": "human", "assistant": "gpt"}


def sharegpt_turns(include_reasoning: bool) -> Callable[[Row], list[dict[str, str]]]:
    """A function from a row to its turns as ShareGPT ``{from, value}`` dicts."""
    roles = SHAREGPT_ROLES
    if include_reasoning:
        return lambda row: [{"from": roles[t["role"]], "value": with_think(t)} for t in row["conversations"]]
    return lambda row: [{"from": roles[t["role"]], "value": t["content"]} for t in row["conversations"]]


def make_converter(options: ExportOptions) -> Converter:
    """Build the per-row converter."""
    turns = sharegpt_turns(options.include_reasoning)
    if options.system_prompt is None:
        return RowConverter(lambda row: {"conversations": turns(row)})
    system = {"from": "system", "value": options.system_prompt}

    def convert(row: Row) -> Record:
        return {"conversations": [system, *turns(row)]}

    return RowConverter(convert)


def turn_arrow_type() -> Any:
    """The pyarrow type of a ShareGPT turns list."""
    import pyarrow as pa

    return pa.list_(pa.struct([pa.field("from", pa.string()), pa.field("value", pa.string())]))


def arrow_schema(options: ExportOptions) -> Any:
    """The parquet schema."""
    import pyarrow as pa

    return pa.schema([pa.field("conversations", turn_arrow_type())])


FORMAT = ExportFormat(
    name="sharegpt",
    summary='{"conversations": [{"from": "system|human|gpt", "value": ...}]}',
    make_converter=make_converter,
    arrow_schema=arrow_schema,
)
