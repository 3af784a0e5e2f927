"""What every export format shares: the options, the converter contract and the reasoning conventions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from ..rows import Record, Row


@dataclass(frozen=True)
class ExportOptions:
    """Choices that change how a row is rendered, the same for every format."""

    system_prompt: str | None = None
    include_reasoning: bool = False
    tools: bool = False
    """The rows carry tools: typed outputs (parquet, the hf folder) and dataset_info.json make room for the
    tool fields. Set by `run_export` from the first row; JSONL records carry a row's tools either way."""
    tools_as_json: bool = False
    """Write a row's `tools` as a JSON string (parquet: JSON Schemas have no fixed Arrow type)."""


class Converter(Protocol):
    """Turns rows into records of one format.

    Per-row formats answer each `feed` with a record; preference formats with a list of records (one or more
    per pair the row holds) or None (no pair). A grouping format would answer None and emit its records from
    `finish`, each with the text its train/val split is decided by.
    """

    def feed(self, row: Row) -> Record | list[Record] | None: ...

    def finish(self) -> Iterator[tuple[Record, str]]: ...


@dataclass(frozen=True)
class RowConverter:
    """A `Converter` for formats that map one row to one record."""

    feed: Callable[[Row], Record]

    def finish(self) -> Iterator[tuple[Record, str]]:
        """Per-row formats hold nothing back."""
        return iter(())


@dataclass(frozen=True)
class ExportFormat:
    """One target format, registered by name in `afterimage_cli.export.formats.FORMATS`."""

    name: str
    summary: str
    """One line for `--list-formats`."""
    make_converter: Callable[[ExportOptions], Converter]
    arrow_schema: Callable[[ExportOptions], Any]
    """The pyarrow schema of a record (for parquet); imports pyarrow, so only called for parquet."""
    dataset_info: Callable[[str, ExportOptions], dict[str, Any] | None] | None = None
    """LLaMA-Factory's dataset_info.json entry for a file of this format, if LLaMA-Factory reads it (None: not
    for these options)."""
    pairs: bool = False
    """A preference format: records come from the pairs rows hold (formats/pairs.py), several per row or none."""


def with_think(turn: dict[str, Any]) -> str:
    """An assistant turn's content, prefixed with `<think>…</think>` when it has reasoning (DeepSeek/Qwen style)."""
    reasoning = turn.get("reasoning_content")
    if reasoning and turn["role"] == "assistant":
        return f"<think>\n{reasoning}\n</think>\n\n{turn['content']}"
    content: str = turn["content"]
    return content


def role_content_message(turn: dict[str, Any], include_reasoning: bool) -> dict[str, Any]:
    """A chat message {role, content}; with reasoning kept, every message also has a `reasoning_content` string.

    Every message carries the key, "" where there is no reasoning, so a file's messages share one type:
    `datasets` infers a JSON file's types from its first chunk, and a first chunk without reasoning (the
    key absent or null) would make a later chunk with reasoning fail to load. Chat templates that read
    the field (Qwen3, DeepSeek) treat "" like an absent one.
    """
    if not include_reasoning:
        return {"role": turn["role"], "content": turn["content"]}
    reasoning = turn.get("reasoning_content") if turn["role"] == "assistant" else None
    return {"role": turn["role"], "content": turn["content"], "reasoning_content": reasoning or ""}


def chat_message(turn: dict[str, Any], include_reasoning: bool) -> dict[str, Any]:
    """`role_content_message`, or for a tool step the OpenAI message with its calls or its call id."""
    if turn.get("tool_calls") or turn["role"] == "tool":
        from .tool_turns import openai_tool_message

        return openai_tool_message(turn, include_reasoning)
    return role_content_message(turn, include_reasoning)


def system_message(system_prompt: str, include_reasoning: bool) -> dict[str, Any]:
    """The system prompt as a chat message shaped like `role_content_message`'s."""
    return role_content_message({"role": "system", "content": system_prompt}, include_reasoning)


def message_arrow_type(include_reasoning: bool, tools: bool = False) -> Any:
    """The pyarrow struct of a `chat_message` (with `tools`, the tool fields, null where a message has none)."""
    import pyarrow as pa

    fields = [pa.field("role", pa.string()), pa.field("content", pa.string())]
    if include_reasoning:
        fields.append(pa.field("reasoning_content", pa.string()))
    if tools:
        function = pa.struct([pa.field("name", pa.string()), pa.field("arguments", pa.string())])
        call = pa.struct([pa.field("id", pa.string()), pa.field("type", pa.string()), pa.field("function", function)])
        fields += [pa.field("tool_calls", pa.list_(call)), pa.field("tool_call_id", pa.string())]
    return pa.struct(fields)
