"""Preference pairs for DPO and ORPO in TRL's conversational preference layout (registered as ``dpo`` and ``orpo``).

``{"prompt": [system?, …, user], "chosen": [assistant], "rejected": [assistant]}``: the prompt is the
conversation up to the user turn the pair answers (with --system-prompt as its first message), and chosen and
rejected hold one assistant message each. One record per pair a row holds (see formats/pairs.py); rows
without a pair are skipped and counted.
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
                "prompt": [*head, *(chat_message(turn, reasoning) for turn in prompt)],
                "chosen": [role_content_message(chosen, reasoning)],
                "rejected": [role_content_message(rejected, reasoning)],
            }
        ]

    return PairConverter(render)


def arrow_schema(options: ExportOptions) -> Any:
    """The parquet schema."""
    import pyarrow as pa

    messages = pa.list_(message_arrow_type(options.include_reasoning, options.tools))
    return pa.schema([pa.field(name, messages) for name in ("prompt", "chosen", "rejected")])


FORMAT = ExportFormat(
    name="dpo",
    summary='TRL preference: {"prompt": [..., user], "chosen": [assistant], "rejected": [assistant]} per pair',
    make_converter=make_converter,
    arrow_schema=arrow_schema,
    pairs=True,
)
