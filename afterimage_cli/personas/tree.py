"""Persona trees: root personas written from the documents, each expanded into more specific children.

Depth 0 holds `roots` personas; each persona at depth d < `depth` spawns `branching` children at d + 1.
Requests of one level run concurrently, and results are taken in parent order, so the tree depends
only on the model's answers, never on timing. Repeated descriptions are dropped and asked for again.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import prompts
from ..config import PersonaGenerationConfig
from ..documents.models import Chunk
from ..engine.items import item_rng
from ..providers.base import LLMProvider
from ..types import Persona

ROOT_PROMPT = (
    prompts.PERSONA_MARKER + ": describe {n} distinct people who would ask an AI assistant about the material "
    "below. Vary their role, expertise and goal. Each description is one sentence saying who they are and what "
    "they want to know."
)
CHILD_PROMPT = (
    prompts.PERSONA_MARKER + ": describe {n} more specific people derived from this persona: {parent}\n"
    "Each narrows the role, situation or goal in a different direction and still fits the material below. "
    "Each description is one sentence."
)
AVOID = "\nDo not repeat any of these: {taken}."
MAX_ATTEMPTS = 3


def batch_schema(n: int) -> dict[str, Any]:
    """A JSON Schema for exactly `n` persona descriptions."""
    return {
        "title": "personas",
        "type": "object",
        "properties": {
            "personas": {
                "type": "array",
                "minItems": n,
                "maxItems": n,
                "items": {
                    "type": "object",
                    "properties": {"description": {"type": "string", "minLength": 3}},
                    "required": ["description"],
                },
            }
        },
        "required": ["personas"],
    }


def _key(description: str) -> str:
    """Descriptions that differ only in case, spacing or a final period are the same persona."""
    return " ".join(description.lower().split()).rstrip(".")


@dataclass
class PersonaTree:
    """Personas in breadth-first order, and each one's parent (an index into `personas`, None for roots)."""

    personas: list[Persona] = field(default_factory=list)
    parents: list[int | None] = field(default_factory=list)

    def add(self, persona: Persona, parent: int | None) -> None:
        self.personas.append(persona)
        self.parents.append(parent)


class PersonaTreeBuilder:
    """Writes a persona tree with structured-output calls to `llm`."""

    def __init__(
        self,
        llm: LLMProvider,
        cfg: PersonaGenerationConfig,
        chunks: Sequence[Chunk] = (),
        *,
        seed: int = 0,
        domain: str = "",
    ) -> None:
        self.llm = llm
        self.cfg = cfg
        self.chunks = list(chunks)
        self.seed = seed
        self.domain = domain
        self._semaphore = asyncio.Semaphore(cfg.concurrency)

    def _material(self, request_number: int) -> str:
        """A seeded sample of chunks (or the domain text when there are no documents)."""
        if not self.chunks:
            return self.domain
        rng: random.Random = item_rng(self.seed, 1_000_000 + request_number)
        picked = rng.sample(self.chunks, min(self.cfg.excerpts, len(self.chunks)))
        return "\n\n".join(c.text for c in picked)

    async def _ask(self, n: int, parent: Persona | None, request_number: int, taken: set[str]) -> list[str]:
        """Up to `n` new descriptions for one parent (or the roots), re-asking while some repeat."""
        found: list[str] = []
        for attempt in range(MAX_ATTEMPTS):
            want = n - len(found)
            head = CHILD_PROMPT.format(n=want, parent=parent.description) if parent else ROOT_PROMPT.format(n=want)
            seen = sorted(taken | {_key(f) for f in found})
            if attempt and seen:
                head += AVOID.format(taken="; ".join(seen[:50]))
            request = prompts.with_context(head, self._material(request_number * MAX_ATTEMPTS + attempt))
            async with self._semaphore:
                response = await self.llm.agenerate_structured(request, batch_schema(want))
            for item in response.parsed["personas"]:
                text = " ".join(str(item["description"]).split())
                if text and _key(text) not in taken and _key(text) not in {_key(f) for f in found}:
                    found.append(text)
            if len(found) >= n:
                break
        return found[:n]

    async def abuild(self) -> PersonaTree:
        """Roots first, then each level from the one above."""
        tree = PersonaTree()
        taken: set[str] = set()
        roots = await self._ask(self.cfg.roots, None, 0, taken)
        for text in roots:
            tree.add(Persona(description=text, depth=0), None)
            taken.add(_key(text))
        level = list(range(len(tree.personas)))
        requests = 1
        for depth in range(1, self.cfg.depth + 1):
            proposals = await asyncio.gather(
                *(
                    self._ask(self.cfg.branching, tree.personas[i], requests + n, set(taken))
                    for n, i in enumerate(level)
                )
            )
            requests += len(level)
            next_level = []
            for parent, texts in zip(level, proposals, strict=True):
                for text in texts:
                    if _key(text) in taken:  # a sibling request proposed it first
                        continue
                    taken.add(_key(text))
                    tree.add(Persona(description=text, depth=depth), parent)
                    next_level.append(len(tree.personas) - 1)
            level = next_level
        return tree
