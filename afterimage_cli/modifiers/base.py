"""BaseRespondentPromptModifierCallback: strategies for what the respondent knows. They chain in order."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ..types import GeneratedInstructions, GeneratedResponsePrompt, Persona


class BaseRespondentPromptModifierCallback(ABC):
    """Rewrites the respondent's system prompt once per conversation, before the first answer."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    async def amodify(
        self,
        prompt: GeneratedResponsePrompt,
        *,
        instructions: GeneratedInstructions,
        persona: Persona | None = None,
    ) -> GeneratedResponsePrompt:
        """Return the prompt to use (the input may be returned changed or unchanged)."""
