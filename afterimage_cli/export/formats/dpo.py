"""Preference pairs for DPO and ORPO in TRL's conversational preference layout (registered as ``dpo`` and ``orpo``).

``{"prompt": [system?, …, user], "chosen": [assistant], "rejected": [assistant]}``: the prompt is the
conversation up to the user turn the pair answers (with --system-prompt as its first message), and chosen and
rejected hold one assistant message each. One record per pair a row holds (see formats/pairs.py); rows
without a pair are skipped and counted.
"""

from __future__ import annotations

from typing import Any

from ..rows import Record
from .base import Converter, ExportFormat, ExportOptions, message_arrow_type
from .pairs import chat_pairs


def make_converter(options: ExportOptions) -> Converter:
    """Build the per-pair converter."""

    def shape(prompt: list[Record], chosen: Record, rejected: Record) -> list[Record]:
        return [{"prompt": prompt, "chosen": [chosen], "rejected": [rejected]}]

    return chat_pairs(options, shape)


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
