"""`contextual`: the model writes the opening question about document chunks, with full coverage.

Item i takes the chunks at positions i·k … i·k+k-1 of a `CoverageOrder` (k = chunks_per_instruction),
so every chunk is the context once before any is the context twice, whatever the concurrency.
"""

from __future__ import annotations

import random
from typing import Any

from .. import prompts
from ..coverage import CoverageOrder
from ..documents.models import Chunk
from ..errors import ConfigError
from ..providers.base import LLMProvider
from ..resources import Resources
from ..types import GeneratedInstructions, Persona
from .base import BaseInstructionGeneratorCallback

CONTEXTUAL_PROMPT = (
    prompts.INSTRUCTION_MARKER + " that a user would send to an AI assistant about the material below.{persona}\n"
    "Ask one specific, natural question that the material answers, without mentioning 'the text' or "
    "'the passage'. Reply with the message only."
)


class ContextualInstructionGenerator(BaseInstructionGeneratorCallback):
    """Options: `chunks_per_instruction` (1), `prompt` (with {persona}), `use_persona` (False)."""

    name = "contextual"
    default_prompt = CONTEXTUAL_PROMPT
    default_use_persona = False

    def __init__(
        self,
        llm: LLMProvider | None = None,
        *,
        resources: Resources | None = None,
        chunks_per_instruction: int = 1,
        prompt: str | None = None,
        use_persona: bool | None = None,
        **options: Any,
    ) -> None:
        if options:
            raise ConfigError(
                f"instructions.options: unknown option(s) {', '.join(sorted(options))} for the {self.name!r} "
                "generator (known: chunks_per_instruction, prompt, use_persona)"
            )
        if resources is None:
            raise ConfigError(f"the {self.name!r} instruction generator needs the run's documents (resources)")
        if not isinstance(chunks_per_instruction, int) or chunks_per_instruction < 1:
            raise ConfigError("instructions.options.chunks_per_instruction must be a whole number of at least 1")
        prompt = prompt or self.default_prompt
        if "{persona}" not in prompt:
            raise ConfigError("instructions.options.prompt must contain {persona}")
        super().__init__(llm)
        self.chunks: list[Chunk] = resources.corpus(f"instructions.generator {self.name!r}").chunks
        self.chunks_per_instruction = min(chunks_per_instruction, len(self.chunks))
        self.prompt = prompt
        self.use_persona = self.default_use_persona if use_persona is None else use_persona
        self.order = CoverageOrder(len(self.chunks), resources.seed)

    def chunks_for(self, item_index: int) -> list[Chunk]:
        """The chunks item `item_index` is about."""
        return [self.chunks[n] for n in self.order.positions_for_item(item_index, self.chunks_per_instruction)]

    def items_to_cover(self, times: int) -> int:
        """How many items make every chunk the context at least `times` times."""
        return self.order.items_to_cover(times, self.chunks_per_instruction)

    def _request(self, context: str, persona: Persona | None) -> str:
        clause = prompts.persona_clause(persona.description if persona and self.use_persona else None)
        return prompts.with_context(self.prompt.format(persona=clause), context)

    async def agenerate(
        self,
        original_prompt: str,
        *,
        rng: random.Random | None = None,
        persona: Persona | None = None,
        item_index: int | None = None,
    ) -> GeneratedInstructions:
        item_index = self.item_number(item_index)
        if self.llm is None:
            raise ConfigError(f"the {self.name!r} generator needs a model to write questions")
        chunks = self.chunks_for(item_index)
        context = "\n\n".join(c.text for c in chunks)
        response = await self.llm.agenerate_content(self._request(context, persona))
        question = response.text.strip().strip('"').strip()
        return GeneratedInstructions(
            instructions=[question or f"What should I know about {chunks[0].title or 'this'}?"],
            context=context,
            context_id=chunks[0].id,
            context_ids=[c.id for c in chunks],
            metadata={
                "instruction_index": 0,
                "document_ids": list(dict.fromkeys(c.document_id for c in chunks)),
                "coverage_round": item_index * self.chunks_per_instruction // len(self.chunks),
            },
        )
