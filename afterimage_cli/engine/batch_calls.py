"""A model in batch mode: each call of an item waits for its round (engine/rounds.py) instead of going out.

It sits where the transport sits in the call stack (cache → retries → here), so retries, item rejection,
context limits and structured output work as online: a line that failed in its batch raises the same
ProviderError an online call would, and the retry that follows joins the next round. The request body and
the reading of its answer are the transport's own (`request_payload`, `answer_from`)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ConfigError
from ..providers.base import BaseProvider, LLMResponse, Messages, StructuredLLMResponse
from ..providers.cache import CallScope, current_scope
from ..providers.pricing import ModelPrice
from ..providers.structured import Schema
from .batch_state import Outcome

if TYPE_CHECKING:
    from ..providers.batch import BatchAPI
    from .rounds import BatchRounds


def custom_id(scope: CallScope, body: dict[str, Any]) -> str:
    """`<item>-<attempt>-<request digest>-<occurrence>`: the same request of the same item attempt gets the
    same id in every session (so a re-run finds its answer in the ledger), a repeated one the next occurrence.
    Only `[A-Za-z0-9_-]`, at most 64 characters: what both OpenAI and Anthropic accept."""
    digest = hashlib.blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()
    occurrence = scope.batch_calls.get(digest, 0)
    scope.batch_calls[digest] = occurrence + 1
    return f"{scope.item}-{scope.attempt}-{digest}-{occurrence}"


class BatchedProvider(BaseProvider):
    """Calls of items go through the rounds; calls outside any item (persona generation) go out online."""

    def __init__(
        self,
        transport: Any,
        api: BatchAPI,
        rounds: BatchRounds,
        price: ModelPrice | None,
    ) -> None:
        for method in ("request_payload", "answer_from", "acomplete"):
            if not hasattr(transport, method):
                raise ConfigError(
                    f"{transport.model_name}: batch mode needs a model served over the OpenAI protocol or "
                    "Anthropic's API (its transport builds no batch request)"
                )
        self.transport = transport
        self.model_name = transport.model_name
        self.api = api
        self.rounds = rounds
        self.price = price  # at the batch API's rates
        rounds.register(self)

    @property
    def served_model_id(self) -> str | None:  # type: ignore[override]
        return self.transport.served_model_id

    async def online(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """One request sent online (a round's tail), as the transport sends it."""
        result: tuple[dict[str, Any], dict[str, str]] = await self.transport._post(body)
        return result

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        answer = await self._call(messages, None, kwargs)
        assert not isinstance(answer, StructuredLLMResponse)
        return answer

    async def acomplete_structured(self, messages: Messages, schema: Schema, **kwargs: Any) -> StructuredLLMResponse:
        answer = await self._call(messages, schema, kwargs)
        assert isinstance(answer, StructuredLLMResponse)
        return answer

    async def _call(
        self, messages: Messages, schema: Schema | None, kwargs: dict[str, Any]
    ) -> LLMResponse | StructuredLLMResponse:
        scope = current_scope.get()
        if scope is None:  # not an item's call: nothing to put in a round
            if schema is None:
                return await self.transport.acomplete(messages, **kwargs)  # type: ignore[no-any-return]
            return await self.transport.acomplete_structured(messages, schema, **kwargs)  # type: ignore[no-any-return]
        body = self.transport.request_payload(messages, schema, **kwargs)
        outcome = await self.rounds.call(self, custom_id(scope, body), body)
        return self._read(outcome, schema)

    def _read(self, outcome: Outcome, schema: Schema | None) -> LLMResponse | StructuredLLMResponse:
        if outcome.error is not None:
            raise outcome.error
        assert outcome.body is not None
        answer: LLMResponse = self.transport.answer_from(outcome.body, outcome.headers, schema)
        if not outcome.online and self.price is not None:
            answer.cost = self.price.cost(
                answer.prompt_token_count,
                answer.completion_token_count,
                answer.cached_prompt_tokens,
                answer.cache_creation_tokens,
            )
        return answer

    async def aclose(self) -> None:
        await self.api.aclose()
        await self.transport.aclose()
