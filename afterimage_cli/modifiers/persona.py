"""`persona`: tell the respondent who it is talking to, so answers fit that user."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..types import GeneratedInstructions, GeneratedResponsePrompt, Persona
from .base import BaseRespondentPromptModifierCallback

DEFAULT_TEMPLATE = "The user you are talking to: {persona}. Adapt your answers to them."


class PersonaPromptModifier(BaseRespondentPromptModifierCallback):
    """Option `template` (with {persona}) is appended to the system prompt when the item has a persona."""

    def __init__(self, template: str = DEFAULT_TEMPLATE, **options: Any) -> None:
        if options:
            raise ConfigError(
                f"modifiers: unknown option(s) {', '.join(sorted(options))} for 'persona' (known: template)"
            )
        if "{persona}" not in template:
            raise ConfigError("modifiers: the 'persona' template must contain {persona}")
        super().__init__()
        self.template = template

    async def amodify(
        self,
        prompt: GeneratedResponsePrompt,
        *,
        instructions: GeneratedInstructions,
        persona: Persona | None = None,
    ) -> GeneratedResponsePrompt:
        if persona is None:
            return prompt
        addition = self.template.format(persona=persona.description.rstrip("."))
        return prompt.model_copy(update={"prompt": f"{prompt.prompt}\n\n{addition}"})
