"""Alpaca with history (LLaMA-Factory's layout): the last exchange is instruction/output, earlier ones history.

``{"instruction": last user turn, "input": "", "output": last assistant turn,
"history": [[user, assistant], …], "system": …}``. Every turn survives: the published afterimage kept
only the first exchange. Reasoning, when kept, is a ``<think>…</think>`` prefix of each assistant text.
Alpaca has no place for tool calls and results, and dropping them would train answers on results the
prompt never shows, so a tool row stops the export with an error naming the formats that keep them.
"""

from __future__ import annotations

from typing import Any

from ...errors import InputError
from ..rows import Record, Row
from .base import Converter, ExportFormat, ExportOptions, RowConverter, with_think


def make_converter(options: ExportOptions) -> Converter:
    """Build the per-row converter."""
    system = options.system_prompt
    include_reasoning = options.include_reasoning

    def convert(row: Row) -> Record:
        turns = row["conversations"]
        if row.get("tools") or any(turn["role"] == "tool" for turn in turns):
            _refuse_tools(row)
        # Rows alternate user/assistant and end with an assistant turn (rows.row_problem checks it).
        if include_reasoning:
            texts = [with_think(t) for t in turns]
        else:
            texts = [t["content"] for t in turns]
        record: Record = {
            "instruction": texts[-2],
            "input": "",
            "output": texts[-1],
            "history": [[texts[i], texts[i + 1]] for i in range(0, len(texts) - 2, 2)],
        }
        if system is not None:
            record["system"] = system
        return record

    return RowConverter(convert)


def _refuse_tools(row: Row) -> None:
    """Alpaca cannot express a tool row."""
    where = f"row {row['id']!r}" if row.get("id") is not None else "a row"
    raise InputError(
        f"{where} has tool calls, which --format alpaca cannot hold (dropping them would train answers on "
        "results the prompt never shows); export tool rows with messages, openai, sharegpt, llama_factory "
        "or chatml"
    )


def arrow_schema(options: ExportOptions) -> Any:
    """The parquet schema."""
    import pyarrow as pa

    fields = [
        pa.field("instruction", pa.string()),
        pa.field("input", pa.string()),
        pa.field("output", pa.string()),
        pa.field("history", pa.list_(pa.list_(pa.string()))),
    ]
    if options.system_prompt is not None:
        fields.append(pa.field("system", pa.string()))
    return pa.schema(fields)


def dataset_info(file_name: str, options: ExportOptions) -> dict[str, Any]:
    """The dataset_info.json entry that tells LLaMA-Factory how to read the file."""
    columns = {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}
    if options.system_prompt is not None:
        columns["system"] = "system"
    return {"file_name": file_name, "formatting": "alpaca", "columns": columns}


FORMAT = ExportFormat(
    name="alpaca",
    summary='{"instruction": ..., "input": "", "output": ..., "history": [[user, assistant], ...]} (all turns)',
    make_converter=make_converter,
    arrow_schema=arrow_schema,
    dataset_info=dataset_info,
)
