"""StructuredGenerator: single-turn outputs validated against a schema from the config."""

from __future__ import annotations

from typing import Any

import orjson

from ..engine.served import models_metadata
from ..providers.structured import Schema
from ..storage.base import Row
from .base import ItemPlan
from .conversation import ConversationGenerator


class StructuredGenerator(ConversationGenerator):
    """One user message, one assistant answer that is JSON valid against `schema` (retried until it is)."""

    def __init__(self, *, schema: Schema, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schema = schema

    async def generate_item(self, plan: ItemPlan) -> Row:
        generated, instruction, response_prompt = await self.prepare(plan)
        messages = [
            {"role": "system", "content": response_prompt.prompt},
            {"role": "user", "content": instruction},
        ]
        answer = await self.respondent.acomplete_structured(messages, self.schema)
        parsed = answer.parsed
        value = parsed.model_dump(mode="json") if hasattr(parsed, "model_dump") else parsed
        turns = [
            {"role": "user", "content": instruction, "reasoning_content": None},
            {
                "role": "assistant",
                "content": orjson.dumps(value).decode(),
                "reasoning_content": answer.reasoning_content,
            },
        ]
        extra = {"structured": True, "models": models_metadata(self.respondent)}
        return self.build_row(plan, generated, response_prompt, turns, extra)


AsyncStructuredGenerator = StructuredGenerator
