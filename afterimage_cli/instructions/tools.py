"""`tools`: the model writes a user request that needs the run's tools, one alone or several chained, with
coverage: every tool is a target once before any is a target twice (like `contextual`'s chunks).

Items take target tools from a `CoverageOrder` over the tools in a fixed pattern of counts (`tools_per_request`,
cycled: [1, 2] alternates one-tool requests and two-tool chains), so item i's targets depend on (seed, i) alone,
whatever the concurrency or a resume. With `documents:`, each request is also about a chunk (chunk coverage as
`contextual` has it), and with personas it is written in the item's persona's voice. The row records the targets
in metadata.tool_use.target_tools.
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
from ..tools.definitions import ToolSet
from ..types import GeneratedInstructions, Persona
from .base import BaseInstructionGeneratorCallback

TOOLS_PROMPT = (
    prompts.INSTRUCTION_MARKER + " that a user would send to " + prompts.TOOLS_REQUEST_MARKER + ", with a request "
    "it can only fulfil by calling {chain}, about: {targets}.{persona}\n"
    "The tools the assistant has:\n{tools}\n"
    "Give the details the calls need (names, places, dates, amounts) in the message, in your own words, without "
    "naming the tools. Reply with the message only."
)
_KNOWN = "tools_per_request, prompt, use_persona"


def _pattern(value: Any) -> list[int]:
    """tools_per_request as a cycle of counts: an int, or a list of ints of at least 1."""
    counts = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(counts, list) or not counts or not all(isinstance(c, int) and c >= 1 for c in counts):
        raise ConfigError("instructions.options.tools_per_request must be a whole number >= 1, or a list of them")
    return list(counts)


class ToolsInstructionGenerator(BaseInstructionGeneratorCallback):
    """Options: `tools_per_request` ([1, 2]), `prompt` (with {targets}, {tools}, {chain}, {persona}),
    `use_persona` (True)."""

    def __init__(
        self,
        llm: LLMProvider | None = None,
        *,
        resources: Resources | None = None,
        tools_per_request: Any = None,
        prompt: str | None = None,
        use_persona: bool = True,
        **options: Any,
    ) -> None:
        if options:
            raise ConfigError(
                f"instructions.options: unknown option(s) {', '.join(sorted(options))} for the 'tools' generator "
                f"(known: {_KNOWN})"
            )
        if resources is None or resources.cfg.tools is None:
            raise ConfigError("the 'tools' instruction generator needs a `tools:` section")
        self.prompt = prompt or TOOLS_PROMPT
        missing = [f"{{{k}}}" for k in ("targets", "tools", "persona") if f"{{{k}}}" not in self.prompt]
        if missing:
            raise ConfigError(f"instructions.options.prompt must contain {', '.join(missing)}")
        super().__init__(llm)
        self.pattern = _pattern([1, 2] if tools_per_request is None else tools_per_request)
        # Written in the item's persona's voice when the run has personas (not `use_persona`: a run without
        # personas is not missing anything, so validate has nothing to warn about).
        self.persona_voice = use_persona
        self.resources = resources
        self.seed = resources.seed
        self.chunks: list[Chunk] = resources.corpus("the 'tools' generator").chunks if resources.cfg.documents else []
        self.chunk_order = CoverageOrder(len(self.chunks), resources.seed) if self.chunks else None
        self._order: CoverageOrder | None = None

    @property
    def tool_set(self) -> ToolSet:
        return self.resources.tool_set("the 'tools' instruction generator")

    def targets_for(self, item_index: int) -> list[str]:
        """The tools item `item_index` is asked to need, in the order the request chains them."""
        tools = self.tool_set
        if self._order is None:
            self._order = CoverageOrder(len(tools.names), self.seed)
        cycle, offset = divmod(item_index, len(self.pattern))
        start = cycle * sum(self.pattern) + sum(self.pattern[:offset])
        count = min(self.pattern[offset], len(tools.names))
        return [tools.names[n] for n in self._order.numbers_from(start, count)]

    def _request(self, targets: list[str], persona: Persona | None, context: str | None) -> str:
        clause = prompts.persona_clause(persona.description if persona and self.persona_voice else None)
        tools = self.tool_set.by_name
        described = ", then ".join(f"{n} ({tools[n].description.rstrip('.') or 'no description'})" for n in targets)
        chain = "these tools in turn, each using what the one before returned" if len(targets) > 1 else "this tool"
        text = self.prompt.format(targets=described, tools=self.tool_set.describe(), chain=chain, persona=clause)
        return prompts.with_context(text, context)

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
            raise ConfigError("the 'tools' generator needs a model to write requests")
        targets = self.targets_for(item_index)
        chunk = self.chunks[self.chunk_order.at(item_index)] if self.chunk_order is not None else None
        response = await self.llm.agenerate_content(self._request(targets, persona, chunk.text if chunk else None))
        request = response.text.strip().strip('"').strip()
        metadata: dict[str, Any] = {"instruction_index": 0, "target_tools": targets}
        if chunk is not None:
            metadata["document_ids"] = [chunk.document_id]
        return GeneratedInstructions(
            instructions=[request or f"Can you help me with {targets[0].replace('_', ' ')}?"],
            context=chunk.text if chunk else None,
            context_id=chunk.id if chunk else None,
            context_ids=[chunk.id] if chunk else None,
            metadata=metadata,
        )
