"""ChatML rendered to text: ``{"text": "<|im_start|>system\\n…<|im_end|>\\n<|im_start|>user\\n…"}``.

The text a ChatML chat template (Qwen, OpenHermes, …) renders, for trainers that take raw text.
Reasoning, when kept, is a ``<think>…</think>`` prefix of each assistant message. Tool rows follow the
Hermes function-calling convention (formats/tool_turns.py): the tools in ``<tools></tools>`` in the system
prompt, calls as ``<tool_call>`` blocks in the assistant's text, results as ``<tool_response>`` in a
``tool`` turn.
"""

from __future__ import annotations

from typing import Any

from ..rows import Message, Record, Row
from .base import Converter, ExportFormat, ExportOptions, RowConverter, with_think
from .tool_turns import hermes_calls, hermes_results, hermes_system, steps


def make_converter(options: ExportOptions) -> Converter:
    """Build the per-row converter."""
    system = options.system_prompt
    head = "" if system is None else f"<|im_start|>system\n{system}<|im_end|>\n"
    include_reasoning = options.include_reasoning

    def text(turn: Message) -> str:
        content: str = (with_think(turn) if include_reasoning else turn["content"]) or ""
        return content

    def with_tools(row: Row) -> Record:
        parts = [f"<|im_start|>system\n{hermes_system(system, row.get('tools') or [])}<|im_end|>\n"]
        for step in steps(row["conversations"]):
            if isinstance(step, tuple):
                call, results = step
                said, calls = text(call), hermes_calls(call)
                names = {c["id"]: c["function"]["name"] for c in call["tool_calls"]}
                body = f"{said}\n{calls}" if said else calls
                parts.append(f"<|im_start|>assistant\n{body}<|im_end|>\n")
                parts.append(f"<|im_start|>tool\n{hermes_results(results, names)}<|im_end|>\n")
            else:
                parts.append(f"<|im_start|>{step['role']}\n{text(step)}<|im_end|>\n")
        return {"text": "".join(parts)}

    plain_roles = {"user": "user", "assistant": "assistant"}

    def convert(row: Row) -> Record:
        if row.get("tools"):
            return with_tools(row)
        parts = [head]
        try:  # a tool result's role is not in plain_roles: its row takes the Hermes way
            for turn in row["conversations"]:
                content = with_think(turn) if include_reasoning else turn["content"]
                parts.append(f"<|im_start|>{plain_roles[turn['role']]}\n{content}<|im_end|>\n")
        except KeyError:
            return with_tools(row)
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
