"""`rag`: WithRAGRespondentPromptModifier — retrieve once per sampled instruction, put the hits in the prompt.

Retrieval is session-scoped: it runs once, before the first answer, with the opening instruction as
the query; the retrieved text stays fixed for the whole dialog. Hit ids and scores go to
`metadata["retrieval"]`; when nothing is found the respondent is told so (`NO_RETRIEVAL_CONTEXT`).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..resources import Resources
from ..retrieval.base import aretrieve
from ..types import GeneratedInstructions, GeneratedResponsePrompt, Persona
from .base import BaseRespondentPromptModifierCallback
from .context import add_context


class WithRAGRespondentPromptModifier(BaseRespondentPromptModifierCallback):
    """Built from the run's retriever (`retriever:` section), or given one directly in Python."""

    def __init__(self, *, resources: Resources | None = None, retriever: Any = None, **options: Any) -> None:
        if options:
            raise ConfigError(
                f"modifiers: unknown option(s) {', '.join(sorted(options))} for 'rag' "
                "(it takes none; retrieval settings live in the `retriever:` section)"
            )
        if retriever is None:
            if resources is None:
                raise ConfigError("the 'rag' modifier needs a retriever")
            resources.require_retriever("the 'rag' modifier")
        super().__init__()
        self._retriever = retriever
        self._resources = resources

    @property
    def retriever(self) -> Any:
        """The retriever; a plugin's is built by the run (Resources.aprepare), never when a config is checked."""
        if self._retriever is None:
            assert self._resources is not None
            self._retriever = self._resources.retriever("the 'rag' modifier")
        return self._retriever

    @staticmethod
    def query_for(instructions: GeneratedInstructions) -> str:
        """The opening instruction (several are joined: the modifier cannot see which one is sampled)."""
        return "\n".join(instructions.instructions)

    async def amodify(
        self,
        prompt: GeneratedResponsePrompt,
        *,
        instructions: GeneratedInstructions,
        persona: Persona | None = None,
    ) -> GeneratedResponsePrompt:
        query = self.query_for(instructions)
        result = await aretrieve(self.retriever, query)
        updated = add_context(prompt, result.text)
        retrieval = {"query": query, "hits": [{"id": hit.id, "score": round(hit.score, 6)} for hit in result.hits]}
        return updated.model_copy(update={"metadata": {**prompt.metadata, "retrieval": retrieval}})


RAGPromptModifier = WithRAGRespondentPromptModifier
