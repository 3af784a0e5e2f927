"""Preference pairs for DPO (TRL's conversational preference layout).

``{"prompt": [system?, first user turn], "chosen": [rest of the best row], "rejected": [rest of the worst row]}``

Rows that share the same first user instruction form a group; of each group's evaluated rows the one
with the highest ``final_score`` is chosen and the lowest rejected, when their scores differ (ties keep
the row seen first). Unevaluated rows are ignored.

Memory: grouping needs the whole input, so this format holds, per distinct first instruction, the best
and worst row's turns seen so far (two conversations, not the whole group) and writes its pairs when the input ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..rows import Record, Row, row_score
from .base import ExportFormat, ExportOptions, message_arrow_type, role_content_message, system_message


@dataclass
class _Extremes:
    """The turns of the best and worst row of one instruction group (only turns: the rest is not needed)."""

    best: list[dict[str, Any]]
    best_score: float
    worst: list[dict[str, Any]]
    worst_score: float


class PreferencePairer:
    """Collects each group's extremes while rows stream by; `finish` yields the pairs in first-seen order."""

    def __init__(self, options: ExportOptions) -> None:
        self.options = options
        self.groups: dict[str, _Extremes] = {}

    def feed(self, row: Row) -> Record | None:
        """Remember the row if it is its group's best or worst so far; nothing is written yet."""
        score = row_score(row)
        if score is None:
            return None
        turns = row["conversations"]
        instruction = turns[0]["content"].strip()
        group = self.groups.get(instruction)
        if group is None:
            self.groups[instruction] = _Extremes(turns, score, turns, score)
        elif score > group.best_score:
            group.best, group.best_score = turns, score
        elif score < group.worst_score:
            group.worst, group.worst_score = turns, score
        return None

    def finish(self) -> Iterator[tuple[Record, str]]:
        """One pair per group whose best and worst scores differ, keyed by the instruction for the split."""
        for instruction, group in self.groups.items():
            if group.best_score > group.worst_score:
                yield self._pair(group), instruction

    def _pair(self, group: _Extremes) -> Record:
        """Render a group's extremes as prompt / chosen / rejected message lists."""
        include_reasoning = self.options.include_reasoning
        prompt = [role_content_message(group.best[0], include_reasoning)]
        if self.options.system_prompt is not None:
            prompt.insert(0, system_message(self.options.system_prompt, include_reasoning))
        return {
            "prompt": prompt,
            "chosen": [role_content_message(t, include_reasoning) for t in group.best[1:]],
            "rejected": [role_content_message(t, include_reasoning) for t in group.worst[1:]],
        }


def arrow_schema(options: ExportOptions) -> Any:
    """The parquet schema."""
    import pyarrow as pa

    messages = pa.list_(message_arrow_type(options.include_reasoning))
    return pa.schema([pa.field(name, messages) for name in ("prompt", "chosen", "rejected")])


FORMAT = ExportFormat(
    name="dpo",
    summary='{"prompt": [...], "chosen": [...], "rejected": [...]}: best vs worst final_score per first instruction',
    make_converter=PreferencePairer,
    arrow_schema=arrow_schema,
)
