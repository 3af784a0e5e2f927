"""OpenAI preference fine-tuning (the `dpo` method): one line per pair.

``{"input": {"messages": [system?, …, user]}, "preferred_output": [assistant], "non_preferred_output":
[assistant]}``. Rows without a pair are skipped and counted.
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
        return [
            {
                "input": {"messages": [*head, *(chat_message(turn, reasoning) for turn in prompt)]},
                "preferred_output": [role_content_message(chosen, reasoning)],
                "non_preferred_output": [role_content_message(rejected, reasoning)],
            }
        ]

    return PairConverter(render)


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
