"""OpenAI preference fine-tuning (the `dpo` method): one line per pair.

``{"input": {"messages": [system?, …, user]}, "preferred_output": [assistant], "non_preferred_output":
[assistant]}``. Rows without a pair are skipped and counted.
"""

from __future__ import annotations

from typing import Any

from ..rows import Record
from .base import Converter, ExportFormat, ExportOptions, message_arrow_type
from .pairs import chat_pairs


def make_converter(options: ExportOptions) -> Converter:
    """Build the per-pair converter."""

    def shape(prompt: list[Record], chosen: Record, rejected: Record) -> list[Record]:
        return [{"input": {"messages": prompt}, "preferred_output": [chosen], "non_preferred_output": [rejected]}]

    return chat_pairs(options, shape)


def arrow_schema(options: ExportOptions) -> Any:
    """The parquet schema."""
    import pyarrow as pa

    messages = pa.list_(message_arrow_type(options.include_reasoning, options.tools))
    return pa.schema(
        [
            pa.field("input", pa.struct([pa.field("messages", messages)])),
            pa.field("preferred_output", messages),
            pa.field("non_preferred_output", messages),
        ]
    )


FORMAT = ExportFormat(
    name="openai-preference",
    summary='OpenAI preference fine-tuning: {"input": {"messages": [...]}, "preferred_output": [...], '
    '"non_preferred_output": [...]}',
    make_converter=make_converter,
    arrow_schema=arrow_schema,
    pairs=True,
)
