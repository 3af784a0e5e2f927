"""ChatML rendered to text: ``{"text": "<|im_start|>system\\n…<|im_end|>\\n<|im_start|>user\\n…"}``.

The text a ChatML chat template (Qwen, OpenHermes, …) renders, for trainers that take raw text.
Reasoning, when kept, is a ``<think>…</think>`` prefix of each assistant message.
"""

from __future__ import annotations

from typing import Any

from ..rows import Record, Row
from .base import Converter, ExportFormat, ExportOptions, RowConverter, with_think


def make_converter(options: ExportOptions) -> Converter:
    """Build the per-row converter."""
    head = "" if options.system_prompt is None else f"<|im_start|>system\n{options.system_prompt}<|im_end|>\n"
    include_reasoning = options.include_reasoning

    def convert(row: Row) -> Record:
        parts = [head]
        for turn in row["conversations"]:
            content = with_think(turn) if include_reasoning else turn["content"]
            parts.append(f"<|im_start|>{turn['role']}\n{content}<|im_end|>\n")
        return {"text": "".join(parts)}

    return RowConverter(convert)


def arrow_schema(options: ExportOptions) -> Any:
    """The parquet schema."""
    import pyarrow as pa

    return pa.schema([pa.field("text", pa.string())])


FORMAT = ExportFormat(
    name="chatml",
    summary='{"text": "<|im_start|>system\\n...<|im_end|>\\n<|im_start|>user\\n...<|im_end|>\\n..."}',
    make_converter=make_converter,
    arrow_schema=arrow_schema,
)
