"""What a turn must never contain: the prompt's scaffolding (role tags, chat-template tokens, the
instruction templates' own sentences, the `Context:` header, the end token) and, from the simulated
user, talk about being an AI or a simulator.

Code (fenced blocks and inline spans) is left out of the tag and label tests: an answer about XML or a
chat template may quote `<user>` or `<|im_start|>` on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .. import prompts
from .text import words

_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.S)
# Chat-template tokens (ChatML, Llama 3, Gemma, Llama 2) and XML-ish role tags such as the published
# afterimage's <assistant_last_message>.
_ROLE_TAG = re.compile(
    r"<\|[a-z_]+\|>|<(?:start|end)_of_turn>|\[/?INST\]|<</?SYS>>"
    r"|</?(?:user|assistant|system|human|bot|model)(?:_[a-z_]+)?>",
    re.I,
)
# A line that opens with a speaker label: the model wrote a turn of the dialog itself, or labelled its own.
_ROLE_LABEL = re.compile(r"^[ \t*#>]*(?:user|assistant|system|human)[ \t*]*:", re.I | re.M)
_CONTEXT_HEADER = re.compile(rf"^[ \t]*{re.escape(prompts.CONTEXT_HEADER)}[ \t]*$", re.I | re.M)
# The simulated user speaking as what it is (or as the assistant) instead of as its persona.
_META_TALK = re.compile(
    r"\bas an ai\b|\bas a (?:large )?language model\b"
    r"|\bi(?:'m| am) (?:just |only )?an? (?:ai|artificial intelligence|language model|virtual assistant|chatbot)\b"
    r"|\bsimulated user\b|\bhow (?:can|may) i (?:help|assist) you\b|\banything else i can help you with\b"
    r"|\bhere(?:'s| is) (?:my|the|a) (?:next |follow-up |first )?(?:message|question|reply)\b",
    re.I,
)
# Template sentences are matched by runs of this many words (a shorter sentence, of at least
# _MIN_PHRASE words, only whole): short enough to catch a sentence leaked with one word changed, long
# enough that ordinary prose ("requests that a user would send to the server") never matches.
_WINDOW = 8
_MIN_PHRASE = 5
_SENTENCE_END = re.compile(r"[.!?\n]+|\{[^}]*\}")


def _windows(sequence: tuple[str, ...], size: int) -> Iterable[tuple[str, ...]]:
    return zip(*(sequence[i:] for i in range(size)), strict=False)


@dataclass(frozen=True)
class Scaffolding:
    """The prompt texts whose sentences must not show up in a turn, as word runs ready to look up."""

    windows: frozenset[tuple[str, ...]] = frozenset()
    phrases: tuple[str, ...] = field(default_factory=tuple)  # normalised, matched whole

    @classmethod
    def of(cls, templates: Iterable[str], phrases: Iterable[str] = ()) -> Scaffolding:
        """From prompt templates (split into sentences at sentence ends and `{placeholders}`) and literal
        phrases that count as leaks however short."""
        windows: set[tuple[str, ...]] = set()
        whole = [" ".join(words(p)) for p in phrases if words(p)]
        for template in templates:
            for sentence in _SENTENCE_END.split(template):
                found = words(sentence)
                if len(found) >= _WINDOW:
                    windows.update(_windows(found, _WINDOW))
                elif len(found) >= _MIN_PHRASE:
                    whole.append(" ".join(found))
        return cls(frozenset(windows), tuple(dict.fromkeys(whole)))

    def found_in(self, text: str) -> str | None:
        """The template sentence (or phrase) the text contains, or None."""
        found = words(text)
        if self.windows and len(found) >= _WINDOW:
            for run in _windows(found, _WINDOW):
                if run in self.windows:
                    return " ".join(run)
        if self.phrases:
            padded = f" {' '.join(found)} "
            for phrase in self.phrases:
                if f" {phrase} " in padded:
                    return phrase
        return None


def scaffolding_templates(*own: str | None) -> list[str]:
    """The built-in prompt templates (the simulated user's system prompt, the instruction generators'
    prompts) and the run's own prompt texts `own` (its system prompt, a custom instruction prompt)."""
    from ..instructions.contextual import CONTEXTUAL_PROMPT  # the instruction generators import much more
    from ..instructions.persona import PERSONA_PROMPT

    built_in = [prompts.USER_SIMULATOR_SYSTEM, prompts.INSTRUCTION_PROMPT, CONTEXTUAL_PROMPT, PERSONA_PROMPT]
    return built_in + [text for text in own if text]


def leak_in(text: str, role: str, scaffolding: Scaffolding) -> str | None:
    """What scaffolding the turn leaks, as a short description; None when it leaks none."""
    if prompts.END_TOKEN in text:
        return f"the end token {prompts.END_TOKEN} inside the text"
    prose = _CODE.sub(" ", text) if "`" in text else text
    tag = _ROLE_TAG.search(prose)
    if tag:
        return f"the role tag {tag.group(0)!r}"
    label = _ROLE_LABEL.search(prose)
    if label:
        return f"the speaker label {label.group(0).strip()!r}"
    if _CONTEXT_HEADER.search(prose):
        return f"the prompt's {prompts.CONTEXT_HEADER!r} header"
    sentence = scaffolding.found_in(text)
    if sentence:
        return f"the prompt's own words {sentence!r}"
    if role == "user":
        meta = _META_TALK.search(prose.replace("\u2019", "'"))
        if meta:
            return f"the simulated user's meta talk {meta.group(0)!r}"
    return None
