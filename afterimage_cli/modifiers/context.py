"""`context`: give the respondent the context the instruction was written from."""

from __future__ import annotations

from typing import Any

from .. import prompts
from ..errors import ConfigError
from ..types import GeneratedInstructions, GeneratedResponsePrompt, Persona
from .base import BaseRespondentPromptModifierCallback


def add_context(prompt: GeneratedResponsePrompt, context: str) -> GeneratedResponsePrompt:
    """The prompt with a context block appended; `context` (response_context in the row) accumulates."""
    combined = f"{prompt.context}\n\n{context}" if prompt.context else context
    return prompt.model_copy(update={"prompt": prompts.with_context(prompt.prompt, context), "context": combined})


class ContextPromptModifier(BaseRespondentPromptModifierCallback):
    """Appends the instruction's context (e.g. the chunk a `contextual` question was written from)."""

    def __init__(self, **options: Any) -> None:
        if options:
            raise ConfigError(
                f"modifiers: unknown option(s) {', '.join(sorted(options))} for 'context' (it takes none)"
            )
        super().__init__()

    async def amodify(
        self,
        prompt: GeneratedResponsePrompt,
        *,
        instructions: GeneratedInstructions,
        persona: Persona | None = None,
    ) -> GeneratedResponsePrompt:
        if not instructions.context:
            return prompt
        return add_context(prompt, instructions.context)
