"""LLaMA-Factory's sharegpt preference layout (`ranking: true`), for its DPO, ORPO and reward-model stages.

``{"conversations": [{"from": "human|gpt", "value"}, …, human], "chosen": {"from": "gpt", "value"},
"rejected": {"from": "gpt", "value"}, "system": …}``: one record per pair. With ``-o DIR`` its
dataset_info.json entry (``"ranking": true``) is written alongside. Rows without a pair are skipped and counted.
"""

from __future__ import annotations

from typing import Any

from ..rows import Record
from .base import Converter, ExportFormat, ExportOptions, with_think
from .pairs import Message, PairConverter
from .sharegpt import sharegpt_turns, turn_arrow_type


def make_converter(options: ExportOptions) -> Converter:
    """Build the per-pair converter."""
    reasoning = options.include_reasoning
    system = options.system_prompt
    turns = sharegpt_turns(reasoning)

    def value(turn: Message) -> str:
        text: str = with_think(turn) if reasoning else turn["content"]
        return text

    def render(prompt: list[Message], chosen: Message, rejected: Message) -> list[Record]:
        record: Record = {
            "conversations": turns(prompt),
            "chosen": {"from": "gpt", "value": value(chosen)},
            "rejected": {"from": "gpt", "value": value(rejected)},
        }
        if system is not None:
            record["system"] = system
        return [record]

    return PairConverter(render)


def arrow_schema(options: ExportOptions) -> Any:
    """The parquet schema."""
    import pyarrow as pa

    answer = pa.struct([pa.field("from", pa.string()), pa.field("value", pa.string())])
    fields = [pa.field("conversations", turn_arrow_type()), pa.field("chosen", answer), pa.field("rejected", answer)]
    if options.system_prompt is not None:
        fields.append(pa.field("system", pa.string()))
    return pa.schema(fields)


def dataset_info(file_name: str, options: ExportOptions) -> dict[str, Any]:
    """The dataset_info.json entry that tells LLaMA-Factory the file is a preference dataset."""
    columns = {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}
    if options.system_prompt is not None:
        columns["system"] = "system"
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "ranking": True,
        "columns": columns,
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
    }


FORMAT = ExportFormat(
    name="llama_factory_ranking",
    summary='LLaMA-Factory sharegpt preference: {"conversations": [...], "chosen": {"from": "gpt", ...}, '
    '"rejected": {...}} (+ dataset_info.json with ranking: true in -o DIR)',
    make_converter=make_converter,
    arrow_schema=arrow_schema,
    dataset_info=dataset_info,
    pairs=True,
)
