"""Offline metrics of one conversation: no LLM, a few microseconds per row.

Turns and alternation, lengths, empty and truncated turns, refusal phrases, and how much of the
answers' vocabulary comes from the row's context. Set-wide measures (duplicates, distinct-n) live in
`duplicates.py` and `diversity.py`; `RowMetrics.measure` feeds them as it goes.

In a tool-calling row the tool steps (assistant messages with tool_calls, tool results) belong to the
exchange they sit in: the text metrics read the user turns and the answers, and the steps are measured by
`tool_metrics.py` (metadata.metrics.tool_use, only on rows with tools).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..hygiene.checks import is_truncated
from ..rowshape import row_has_tools
from .diversity import DistinctN
from .duplicates import NearDuplicateIndex
from .grading import row_context
from .tool_metrics import ToolCallChecker, measure_tool_use

if TYPE_CHECKING:
    from ..hygiene import TurnChecker

WORD = re.compile(r"\w+")
# Refusals and boilerplate disclaimers a fine-tune should not learn; apostrophes are normalised first.
REFUSAL = re.compile(
    r"\b(?:i'?m sorry,? but i|i (?:cannot|can't|can not|won't|am unable to|am not able to) "
    r"(?:help|assist|provide|comply|do that|fulfil|answer|share)|as an ai(?: language model)?,|"
    r"i'?m (?:unable|not able) to (?:help|assist|provide|comply))",
    re.IGNORECASE,
)
# Substrings every refusal pattern contains: a cheap test that spares most answers the regex.
_REFUSAL_CUES = ("sorry", "cannot", "can't", "can’t", "can not", "won't", "won’t", "unable", "not able", "as an ai")
_STOP = frozenset(
    "the and for are but not you your with this that from have has had was were will would could should "
    "what when where which who how why there their they them then than also into about over such some "
    "more most other only just like very can may might must been being its it's does doing done each".split()
)


def content_words(words: list[str]) -> set[str]:
    """Distinct words longer than three letters, minus common function words."""
    return {w for w in set(words) if len(w) > 3} - _STOP


def context_overlap(answer_words: list[str], context: str) -> float | None:
    """Share of the answers' distinct content words that occur in the context (None: no context)."""
    if not context:
        return None
    answer_vocabulary = content_words(answer_words)
    if not answer_vocabulary:
        return 0.0
    context_vocabulary = content_words(WORD.findall(context.lower()))
    return round(len(answer_vocabulary & context_vocabulary) / len(answer_vocabulary), 4)


class RowMetrics:
    """Measures rows one at a time and feeds the set-wide duplicate index and distinct-n counters."""

    def __init__(self, duplicates: NearDuplicateIndex, hygiene: TurnChecker | None = None) -> None:
        self.duplicates = duplicates
        self.hygiene = hygiene
        self.user_diversity = DistinctN()
        self.assistant_diversity = DistinctN()
        self.tool_calls = ToolCallChecker()

    def measure(self, row: dict[str, Any], label: str | None) -> dict[str, Any]:
        """The row's metrics (written to metadata.metrics); `label` names it in later duplicate reports."""
        turns = row["conversations"]
        tool_use = measure_tool_use(row, self.tool_calls) if row_has_tools(row) else None
        ends_with_answer = bool(turns) and not turns[-1].get("tool_calls") and turns[-1].get("role") == "assistant"
        if tool_use is not None:  # the steps inside an exchange are not turns of the dialog
            turns = [t for t in turns if t.get("role") != "tool" and not t.get("tool_calls")]
        roles = [t.get("role") for t in turns]
        texts = [t.get("content") or "" for t in turns]
        lowered = [text.lower() for text in texts]
        words = [WORD.findall(text) for text in lowered]
        user_words = [w for role, ws in zip(roles, words, strict=True) if role == "user" for w in ws]
        answer_words = [w for role, ws in zip(roles, words, strict=True) if role == "assistant" for w in ws]
        answers = [text for role, text in zip(roles, texts, strict=True) if role == "assistant"]
        alternation_ok = (
            bool(turns)
            and all(role == ("user" if i % 2 == 0 else "assistant") for i, role in enumerate(roles))
            and ends_with_answer
        )
        empty = sum(1 for text in texts if not text.strip())
        truncated = sum(1 for a in answers if a.strip() and is_truncated(a))
        refusals = sum(
            1
            for role, low in zip(roles, lowered, strict=True)
            if role == "assistant"
            and any(cue in low for cue in _REFUSAL_CUES)
            and REFUSAL.search(low.replace("’", "'"))
        )
        self.user_diversity.add(user_words)
        self.assistant_diversity.add(answer_words)
        duplicate = self.duplicates.check_and_add([w for ws in words for w in ws], hash((*roles, *texts)), label)
        issues = [
            name
            for name, present in (
                ("broken_alternation", not alternation_ok),
                ("empty_turn", empty),
                ("truncated", truncated),
                ("refusal", refusals),
                ("exact_duplicate", duplicate is not None and duplicate.kind == "exact"),
                ("near_duplicate", duplicate is not None and duplicate.kind == "near"),
                ("invalid_tool_call", tool_use is not None and tool_use["valid_calls"] < tool_use["calls"]),
            )
            if present
        ]
        metrics = {
            "turns": len(turns),
            "user_turns": roles.count("user"),
            "assistant_turns": len(answers),
            "alternation_ok": alternation_ok,
            "user_chars": sum(len(t) for r, t in zip(roles, texts, strict=True) if r == "user"),
            "assistant_chars": sum(map(len, answers)),
            "assistant_words": [len(answer.split()) for answer in answers],
            "empty_turns": empty,
            "truncated_turns": truncated,
            "refusals": refusals,
            "context_overlap": context_overlap(answer_words, row_context(row)),
            "duplicate": None
            if duplicate is None
            else {"kind": duplicate.kind, "similarity": duplicate.similarity, "of": duplicate.of},
            "issues": issues,
            "hygiene": None if self.hygiene is None else self.hygiene.row(row),
        }
        if tool_use is not None:
            metrics["tool_use"] = tool_use
        return metrics
