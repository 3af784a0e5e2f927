"""The LLM layer's contract: LLMProvider, LLMResponse, StructuredLLMResponse and ChatSession."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from ..errors import ProviderError
from .structured import Schema, parse_complete

Messages = list[dict[str, Any]]
# What the model finished with when it asked for tools, whatever its protocol calls it (Anthropic's
# "tool_use", a Gemini answer of functionCall parts).
TOOL_CALLS = "tool_calls"


class ToolCall(BaseModel):
    """A call the model asked for. `arguments` is the JSON text exactly as the model wrote it, which may be
    invalid JSON or break the tool's schema: the caller validates it."""

    id: str
    name: str
    arguments: str

    def wire(self) -> dict[str, Any]:
        """The call as an OpenAI assistant message carries it in `tool_calls`."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


class LLMResponse(BaseModel):
    """A provider-neutral answer with the usage the monitor needs."""

    text: str
    prompt_token_count: int = 0
    completion_token_count: int = 0
    total_token_count: int = 0
    # Of prompt_token_count: tokens read from the provider's prompt cache (billed at its cached rate), and
    # tokens written to it (Anthropic bills those apart).
    cached_prompt_tokens: int = 0
    cache_creation_tokens: int = 0
    finish_reason: str | None = None
    model_name: str = ""
    raw_response: Any = None
    reasoning_content: str | None = None
    cost: float | None = Field(default=None, description="USD, when the provider knows the price.")
    headers: dict[str, str] | None = Field(default=None, description="Rate-limit headers of the HTTP answer.")
    cached: bool = False
    # The calls the model asked for (finish_reason is then "tool_calls"); None when it answered in text.
    tool_calls: list[ToolCall] | None = None


class StructuredLLMResponse(LLMResponse):
    """An answer parsed and validated: a pydantic instance, or plain data for a JSON-Schema dict."""

    parsed: Any

    @classmethod
    def parse(
        cls, answer: LLMResponse, schema: Schema, *, max_tokens: Any = None, setting: str = "max_tokens"
    ) -> StructuredLLMResponse:
        """`answer` parsed and validated by `schema`; when it does not fit (or the token limit cut it off:
        `setting` is what to raise), the error carries the answer, because its tokens were paid for and
        the monitor and the budget must count them."""
        try:
            parsed = parse_complete(answer.text, answer.finish_reason, schema, answer.model_name, max_tokens, setting)
        except ProviderError as error:
            error.response = answer
            raise
        return cls(**answer.model_dump(), parsed=parsed)


@runtime_checkable
class LLMProvider(Protocol):
    """What every provider implements; sync methods exist for scripts, the engine uses async ones."""

    model_name: str

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse: ...

    def complete(self, messages: Messages, **kwargs: Any) -> LLMResponse: ...

    async def acomplete_structured(
        self, messages: Messages, schema: Schema, **kwargs: Any
    ) -> StructuredLLMResponse: ...

    async def agenerate_content(self, prompt: str, **kwargs: Any) -> LLMResponse: ...

    def generate_content(self, prompt: str, **kwargs: Any) -> LLMResponse: ...

    async def agenerate_structured(self, prompt: str, schema: Schema, **kwargs: Any) -> StructuredLLMResponse: ...

    def generate_structured(self, prompt: str, schema: Schema, **kwargs: Any) -> StructuredLLMResponse: ...

    def start_chat(self, **kwargs: Any) -> ChatSession: ...

    async def astart_chat(self, **kwargs: Any) -> ChatSession: ...

    async def aclose(self) -> None: ...


class BaseProvider:
    """Derives every LLMProvider method from `acomplete` (and `acomplete_structured`)."""

    model_name: str = ""
    # The model an api_base server says it serves (engine/served.py), set on the provider a run calls
    # once the server was asked; None for hosted providers and offline.
    served_model_id: str | None = None

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        raise NotImplementedError

    async def acomplete_structured(self, messages: Messages, schema: Schema, **kwargs: Any) -> StructuredLLMResponse:
        raise NotImplementedError

    def complete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        return asyncio.run(self.acomplete(messages, **kwargs))

    async def agenerate_content(self, prompt: str, **kwargs: Any) -> LLMResponse:
        return await self.acomplete([{"role": "user", "content": prompt}], **kwargs)

    def generate_content(self, prompt: str, **kwargs: Any) -> LLMResponse:
        return self.complete([{"role": "user", "content": prompt}], **kwargs)

    async def agenerate_structured(self, prompt: str, schema: Schema, **kwargs: Any) -> StructuredLLMResponse:
        return await self.acomplete_structured([{"role": "user", "content": prompt}], schema, **kwargs)

    def generate_structured(self, prompt: str, schema: Schema, **kwargs: Any) -> StructuredLLMResponse:
        return asyncio.run(self.agenerate_structured(prompt, schema, **kwargs))

    def start_chat(self, **kwargs: Any) -> ChatSession:
        return ChatSession(self, **kwargs)

    async def astart_chat(self, **kwargs: Any) -> ChatSession:
        return ChatSession(self, **kwargs)

    async def aclose(self) -> None:
        return None


class ChatSession:
    """Keeps a conversation's history so callers send one message at a time."""

    def __init__(
        self, provider: LLMProvider, system_prompt: str | None = None, history: Messages | None = None
    ) -> None:
        self.provider = provider
        self.system_prompt = system_prompt
        self.history: Messages = list(history or [])

    def messages(self) -> Messages:
        """The full request: system prompt first, then the history."""
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return head + self.history

    async def asend_message(self, message: str, **kwargs: Any) -> LLMResponse:
        """Send a user message; on success both it and the answer join the history."""
        request = self.messages() + [{"role": "user", "content": message}]
        response = await self.provider.acomplete(request, **kwargs)
        self.history.append({"role": "user", "content": message})
        self.history.append({"role": "assistant", "content": response.text})
        return response

    def send_message(self, message: str, **kwargs: Any) -> LLMResponse:
        return asyncio.run(self.asend_message(message, **kwargs))
