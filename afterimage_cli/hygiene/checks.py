"""The turn checks: each a pure function of a turn and the dialog before it, returning a Finding or None.

- cut: the token limit cut the turn (`finish_reason: length`), or it ends mid-sentence;
- echo: an answer that repeats the message it answers;
- copy: a simulated-user turn that copies the assistant's previous message;
- repeat: a turn that nearly repeats an earlier turn of the same side;
- leak: prompt scaffolding in the turn (see leaks.py);
- short: empty, or fewer than `min_chars` characters.

No check calls a model: a turn costs a few microseconds (`make bench` measures it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .leaks import Scaffolding, leak_in, scaffolding_templates
from .text import containment, jaccard, normalized, shingles, words

if TYPE_CHECKING:
    from ..config import HygieneConfig

CHECKS = ("cut", "echo", "copy", "repeat", "leak", "short")
# An answer (or question) made of this many shingles, nearly all taken from the other message, is a
# copy of a stretch of it even when the other message is much longer; fewer shingles (a short answer
# that reuses the question's words: "A B-tree index." to "B-tree or hash index?") are judged by
# Jaccard similarity, which a short turn cannot reach against a long one.
MIN_COPIED_SHINGLES = 8
# A repeat needs this many words: "Yes." or "Thanks!" twice in a dialog is not a defect.
MIN_REPEAT_WORDS = 4
# An answer that stops on one of these has almost certainly been cut off mid-sentence.
_DANGLING_CHARS = tuple(",;:-–(/")
_DANGLING_WORDS = frozenset("and or but the a an to of with that which for in on is are because".split())


@dataclass(frozen=True)
class Finding:
    """One failed check: its name and what it saw, for the ledger and the logs."""

    check: str
    detail: str


def is_truncated(text: str) -> bool:
    """An unclosed code fence, or an ending that leaves the sentence hanging."""
    if text.count("```") % 2:
        return True
    stripped = text.rstrip()
    if not stripped:
        return False
    if stripped.endswith(_DANGLING_CHARS):
        return True
    last = stripped.rsplit(None, 1)[-1].lower()
    return last in _DANGLING_WORDS


def check_cut(text: str, finish_reason: str | None = None) -> Finding | None:
    if finish_reason == "length":
        return Finding("cut", "cut off by the token limit (finish_reason: length)")
    if text.strip() and is_truncated(text):
        return Finding("cut", f"ends mid-sentence: …{text.rstrip()[-40:]!r}")
    return None


def check_short(text: str, min_chars: int) -> Finding | None:
    length = len(text.strip())
    if length == 0:
        return Finding("short", "empty")
    if length < min_chars:
        return Finding("short", f"{length} character(s), below hygiene.min_chars {min_chars}")
    return None


def _copied(text: str, source: str, similarity: float) -> float | None:
    """How much of `text` is `source` (the score that reached `similarity`), or None."""
    if normalized(text) == normalized(source) and words(text):
        return 1.0
    score = jaccard(text, source)
    if len(shingles(text)) >= MIN_COPIED_SHINGLES:
        score = max(score, containment(text, source))
    return round(score, 2) if score >= similarity else None


def check_echo(answer: str, question: str, similarity: float) -> Finding | None:
    score = _copied(answer, question, similarity)
    return None if score is None else Finding("echo", f"repeats the message it answers (similarity {score})")


def check_copy(question: str, last_answer: str, similarity: float) -> Finding | None:
    score = _copied(question, last_answer, similarity)
    return None if score is None else Finding("copy", f"copies the assistant's last answer (similarity {score})")


def check_repeat(text: str, earlier: Sequence[str], similarity: float) -> Finding | None:
    if len(words(text)) < MIN_REPEAT_WORDS:
        return None
    for position, before in enumerate(earlier):
        score = jaccard(text, before)
        if score >= similarity:
            return Finding("repeat", f"repeats its own turn {position + 1} of this side (similarity {score:.2f})")
    return None


def check_leak(text: str, role: str, scaffolding: Scaffolding) -> Finding | None:
    leaked = leak_in(text, role, scaffolding)
    return None if leaked is None else Finding("leak", leaked)


class TurnChecker:
    """The enabled checks with their thresholds, applied to one turn in the context of its dialog."""

    def __init__(
        self,
        checks: Sequence[str] = CHECKS,
        *,
        min_chars: int = 2,
        similarity: float = 0.8,
        scaffolding: Scaffolding | None = None,
    ) -> None:
        self.checks = frozenset(checks)
        self.min_chars = min_chars
        self.similarity = similarity
        self.scaffolding = scaffolding or Scaffolding.of(scaffolding_templates())

    @classmethod
    def from_config(cls, cfg: HygieneConfig, templates: Iterable[str] = ()) -> TurnChecker | None:
        """The checker `cfg` asks for (None when every check is off); `templates` are the run's own prompt
        texts (its system prompt, a custom instruction prompt) besides the built-in ones."""
        checks = cfg.enabled_checks()
        if not checks:
            return None
        scaffolding = Scaffolding.of(scaffolding_templates(*templates), cfg.leak_phrases)
        return cls(checks, min_chars=cfg.min_chars, similarity=cfg.similarity, scaffolding=scaffolding)

    def answer(
        self, text: str, question: str, earlier: Sequence[str], finish_reason: str | None = None
    ) -> list[Finding]:
        """What is wrong with an assistant turn answering `question`, after the answers `earlier`."""
        on, sim = self.checks, self.similarity
        found = [
            "short" in on and check_short(text, self.min_chars),
            "cut" in on and check_cut(text, finish_reason),
            "leak" in on and check_leak(text, "assistant", self.scaffolding),
            "echo" in on and check_echo(text, question, sim),
            "repeat" in on and check_repeat(text, earlier, sim),
        ]
        return [f for f in found if f]

    def question(
        self, text: str, last_answer: str | None, earlier: Sequence[str], finish_reason: str | None = None
    ) -> list[Finding]:
        """What is wrong with a simulated-user turn following `last_answer`, after the user turns `earlier`."""
        on, sim = self.checks, self.similarity
        found = [
            "short" in on and check_short(text, self.min_chars),
            "cut" in on and check_cut(text, finish_reason),
            "leak" in on and check_leak(text, "user", self.scaffolding),
            "copy" in on and last_answer is not None and check_copy(text, last_answer, sim),
            "repeat" in on and check_repeat(text, earlier, sim),
        ]
        return [f for f in found if f]

    def row(self, row: Mapping[str, Any]) -> dict[str, list[int]]:
        """Every failed check of a written row, as check → turn indices; the turns its metadata.cut_off_turns
        lists (kept by on_truncated: keep) fail `cut`."""
        turns = row.get("conversations")
        meta = row.get("metadata")
        marked = meta.get("cut_off_turns") if isinstance(meta, Mapping) else None
        cut_off = [i for i in marked if isinstance(i, int)] if isinstance(marked, list) else []
        return self.conversation(turns, cut_off) if isinstance(turns, list) else {}

    def conversation(self, turns: Sequence[dict[str, object]], cut_off: Sequence[int] = ()) -> dict[str, list[int]]:
        """Every failed check of a written dialog, as check → indices of the turns that fail it. `cut_off`
        lists turns known to be cut by the token limit (metadata.cut_off_turns), which text alone may hide."""
        failed: dict[str, list[int]] = {}
        said: dict[str, list[str]] = {"user": [], "assistant": []}
        previous: dict[str, object] | None = None
        for index, turn in enumerate(turns):
            if turn.get("tool_calls") or turn.get("role") == "tool":
                continue  # a tool step inside an exchange: the answer after it is checked against the question
            role, text = turn.get("role"), turn.get("content")
            text = text if isinstance(text, str) else ""
            other = previous.get("content") if previous is not None else None
            other = other if isinstance(other, str) else None
            reason = "length" if index in cut_off else None
            if role == "assistant":
                findings = self.answer(text, other or "", said["assistant"], reason)
            elif role == "user":
                last_answer = other if previous is not None and previous.get("role") == "assistant" else None
                findings = self.question(text, last_answer, said["user"], reason)
            else:
                findings = []
            for finding in findings:
                failed.setdefault(finding.check, []).append(index)
            if role in said:
                said[str(role)].append(text)
            previous = turn
        return failed
