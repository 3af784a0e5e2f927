"""Components loaded by dotted path in tests, as a user's own plugins would be."""

from __future__ import annotations

import random
from typing import Any

from afterimage_cli.instructions.base import BaseInstructionGeneratorCallback
from afterimage_cli.modifiers.base import BaseRespondentPromptModifierCallback
from afterimage_cli.types import GeneratedInstructions, GeneratedResponsePrompt, Persona


class TwoOpenings(BaseInstructionGeneratorCallback):
    """Offers two candidate openings per item."""

    async def agenerate(
        self,
        original_prompt: str,
        *,
        rng: random.Random | None = None,
        persona: Persona | None = None,
        item_index: int | None = None,
    ) -> GeneratedInstructions:
        return GeneratedInstructions(instructions=["first opening?", "second opening?"])


class NoOpenings(BaseInstructionGeneratorCallback):
    """A broken generator: offers nothing."""

    async def agenerate(
        self,
        original_prompt: str,
        *,
        rng: random.Random | None = None,
        persona: Persona | None = None,
        item_index: int | None = None,
    ) -> GeneratedInstructions:
        return GeneratedInstructions(instructions=[])


class RecordOpenings(BaseRespondentPromptModifierCallback):
    """Records which openings it was shown in the row's metadata."""

    async def amodify(
        self, prompt: GeneratedResponsePrompt, *, instructions: GeneratedInstructions, persona: Persona | None = None
    ) -> GeneratedResponsePrompt:
        metadata: dict[str, Any] = {**prompt.metadata, "seen": list(instructions.instructions)}
        return prompt.model_copy(update={"metadata": metadata})


class MisconfiguredOpenings(BaseInstructionGeneratorCallback):
    """Finds out about a bad option only when asked (as a plugin reading a file lazily would)."""

    async def agenerate(
        self,
        original_prompt: str,
        *,
        rng: random.Random | None = None,
        persona: Persona | None = None,
        item_index: int | None = None,
    ) -> GeneratedInstructions:
        from afterimage_cli.errors import ConfigError

        raise ConfigError("instructions.options.path: tickets.txt does not exist")


def _mark(path: str, what: str) -> None:
    """Record that a command built a plugin (appends, so several builds show up)."""
    with open(path, "a") as fh:
        fh.write(what + "\n")


class MarkingModifier(BaseRespondentPromptModifierCallback):
    """A plugin whose constructor leaves a marker file: shows whether a command built (ran) it."""

    def __init__(self, *, marker: str) -> None:
        _mark(marker, "modifier")
        super().__init__()

    async def amodify(
        self, prompt: GeneratedResponsePrompt, *, instructions: GeneratedInstructions, persona: Persona | None = None
    ) -> GeneratedResponsePrompt:
        return prompt


class MarkingOpenings(TwoOpenings):
    """An instruction generator plugin that leaves a marker file when built."""

    def __init__(self, llm: Any = None, *, marker: str) -> None:
        _mark(marker, "instructions")
        super().__init__(llm)


def marking_retriever(cfg: Any, chunks: list[Any]) -> Any:
    """A retriever factory plugin that leaves a marker file (retriever.options.marker) when called."""
    _mark(cfg.options["marker"], "retriever")

    class FirstChunk:
        def get_context(self, query: str) -> str:
            return chunks[0].text

    return FirstChunk()
