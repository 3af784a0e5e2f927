"""Unpaired preference data for KTO in TRL's conversational layout: two records per pair.

``{"prompt": [system?, …, user], "completion": [assistant], "label": true}`` for the chosen answer and the same
with the rejected answer and ``"label": false``. Rows without a pair are skipped and counted.
"""

from __future__ import annotations

from typing import Any

from ..rows import Record
from .base import Converter, ExportFormat, ExportOptions, message_arrow_type
from .pairs import chat_pairs


def make_converter(options: ExportOptions) -> Converter:
    """Build the per-pair converter."""

    def shape(prompt: list[Record], chosen: Record, rejected: Record) -> list[Record]:
        return [
            {"prompt": prompt, "completion": [answer], "label": label}
            for answer, label in ((chosen, True), (rejected, False))
        ]

    return chat_pairs(options, shape)


def arrow_schema(options: ExportOptions) -> Any:
    """The parquet schema."""
    import pyarrow as pa

    messages = pa.list_(message_arrow_type(options.include_reasoning, options.tools))
    return pa.schema([pa.field("prompt", messages), pa.field("completion", messages), pa.field("label", pa.bool_())])


FORMAT = ExportFormat(
    name="kto",
    summary='TRL unpaired preference: {"prompt": [...], "completion": [assistant], "label": true|false}, 2 per pair',
    make_converter=make_converter,
    arrow_schema=arrow_schema,
    pairs=True,
)
