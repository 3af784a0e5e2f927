"""Unpaired preference data for KTO in TRL's conversational layout: two records per pair.

``{"prompt": [system?, …, user], "completion": [assistant], "label": true}`` for the chosen answer and the same
with the rejected answer and ``"label": false``. Rows without a pair are skipped and counted.
"""

from __future__ import annotations

from typing import Any

from ..rows import Record
from .base import (
    Converter,
    ExportFormat,
    ExportOptions,
    chat_message,
    message_arrow_type,
    role_content_message,
    system_message,
)
from .pairs import Message, PairConverter


def make_converter(options: ExportOptions) -> Converter:
    """Build the per-pair converter."""
    reasoning = options.include_reasoning
    head = [] if options.system_prompt is None else [system_message(options.system_prompt, reasoning)]

    def render(prompt: list[Message], chosen: Message, rejected: Message) -> list[Record]:
        messages = [*head, *(chat_message(turn, reasoning) for turn in prompt)]
        return [
            {"prompt": messages, "completion": [role_content_message(answer, reasoning)], "label": label}
            for answer, label in ((chosen, True), (rejected, False))
        ]

    return PairConverter(render)


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
