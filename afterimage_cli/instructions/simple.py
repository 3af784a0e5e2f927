"""`simple`: openings taken verbatim from a list, or written by the model about a list of topics."""

from __future__ import annotations

import random
from typing import Any

from .. import prompts
from ..errors import ConfigError
from ..providers.base import LLMProvider
from ..types import GeneratedInstructions, Persona
from .base import BaseInstructionGeneratorCallback


class SimpleInstructionGenerator(BaseInstructionGeneratorCallback):
    """Options: `instructions` (used as they are) and/or `topics` (the model writes a question on one)."""

    def __init__(
        self,
        llm: LLMProvider | None = None,
        *,
        instructions: list[str] | None = None,
        topics: list[str] | None = None,
        prompt: str = prompts.INSTRUCTION_PROMPT,
        **options: Any,
    ) -> None:
        if options:
            raise ConfigError(
                f"instructions.options: unknown option(s) {', '.join(sorted(options))} for the 'simple' generator "
                "(known: instructions, topics, prompt)"
            )
        super().__init__(llm)
        self.instructions = [str(i) for i in instructions or []]
        self.topics = [str(t) for t in topics or []]
        self.prompt = prompt
        if not self.instructions and not self.topics:
            raise ConfigError("instructions.options: the 'simple' generator needs 'instructions' or 'topics'")
        if "{topic}" not in self.prompt:
            raise ConfigError("instructions.options.prompt must contain {topic}")

    async def agenerate(
        self,
        original_prompt: str,
        *,
        rng: random.Random | None = None,
        persona: Persona | None = None,
        item_index: int | None = None,
    ) -> GeneratedInstructions:
        rng = rng or random.Random()
        sources = len(self.instructions) + len(self.topics)
        index = rng.randrange(sources)
        if index < len(self.instructions):
            return GeneratedInstructions(instructions=[self.instructions[index]], metadata={"instruction_index": index})
        topic = self.topics[index - len(self.instructions)]
        if self.llm is None:
            raise ConfigError("the 'simple' generator needs a model to write questions about topics")
        request = self.prompt.format(
            topic=topic, persona=prompts.persona_clause(persona.description if persona else None)
        )
        response = await self.llm.agenerate_content(request)
        text = response.text.strip().strip('"').strip()
        return GeneratedInstructions(
            instructions=[text or f"Tell me about {topic}."],
            metadata={"instruction_index": index, "topic": topic},
        )
