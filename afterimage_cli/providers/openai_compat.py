"""A direct OpenAI-compatible transport (vLLM, llama.cpp, Ollama's /v1, LM Studio, any --api-base server).

It speaks only POST {api_base}/chat/completions over one aiohttp session, so a call costs a fraction of
litellm's CPU. Errors, retries, usage, reasoning and structured output behave exactly as through litellm.
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError
from .base import LLMResponse, Messages, StructuredLLMResponse
from .http_transport import HttpTransport
from .remote import PROBE_MESSAGES
from .structured import Schema, response_format


class OpenAICompatProvider(HttpTransport):
    """Chat completions against an OpenAI-compatible server, one HTTP session for the whole run."""

    # The batch API that takes these bodies (providers/batch): /v1/files + /v1/batches.
    batch_protocol = "openai"

    def __init__(self, model: str, **settings: Any) -> None:
        super().__init__(model, **settings)
        if not self.api_base:
            raise ProviderError(
                f"{model}: the openai_compat provider needs api_base (the server's /v1 URL)",
                retryable=False,
                kind="bad_request",
            )
        # 'openai/llama3' or 'hosted_vllm/llama3' → the server is asked for 'llama3'.
        self.served_model = self.requested_model
        self.url = self.api_base.rstrip("/") + "/chat/completions"

    def _to_response(self, data: dict[str, Any], headers: dict[str, str]) -> LLMResponse:
        try:
            choice = data["choices"][0]
            message = choice["message"]
            text = message.get("content")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderError(
                f"{self.model_name}: malformed response: missing {exc}", retryable=True, kind="invalid_output"
            ) from None
        if text is None:
            raise ProviderError(
                f"{self.model_name}: empty response (finish_reason={choice.get('finish_reason')})",
                retryable=True,
                kind="invalid_output",
            )
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        limits = {k: v for k, v in headers.items() if "ratelimit" in k}
        return LLMResponse(
            text=text,
            prompt_token_count=prompt_tokens,
            completion_token_count=completion_tokens,
            total_token_count=int(usage.get("total_tokens") or prompt_tokens + completion_tokens),
            finish_reason=choice.get("finish_reason"),
            model_name=self.model_name,
            raw_response=data,
            reasoning_content=message.get("reasoning_content") or message.get("reasoning"),
            cost=self.priced(prompt_tokens, completion_tokens),
            headers=limits or None,
        )

    def request_payload(self, messages: Messages, schema: Schema | None = None, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of one chat call (batch mode sends the same body inside a batch file)."""
        payload = {**self.params, **kwargs, "model": self.served_model, "messages": messages}
        if schema is not None:
            payload["response_format"] = response_format(schema)
        return payload

    def answer_from(
        self, data: dict[str, Any], headers: dict[str, str], schema: Schema | None = None
    ) -> LLMResponse | StructuredLLMResponse:
        """The answer in a response body, read exactly as an online call reads it (batch output lines too)."""
        plain = self._to_response(data, headers)
        return self.whole(plain) if schema is None else self.parse_answer(plain, schema)

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        answer = self.answer_from(*await self._post(self.request_payload(messages, **kwargs)))
        assert not isinstance(answer, StructuredLLMResponse)
        return answer

    async def acomplete_structured(self, messages: Messages, schema: Schema, **kwargs: Any) -> StructuredLLMResponse:
        answer = self.answer_from(*await self._post(self.request_payload(messages, schema, **kwargs)), schema)
        assert isinstance(answer, StructuredLLMResponse)
        return answer

    async def aprobe_model(self) -> str | None:
        payload = {**self.params, "model": self.served_model, "messages": PROBE_MESSAGES, "max_tokens": 1}
        data, _ = await self._post(payload)
        model = data.get("model")
        return model if isinstance(model, str) and model else None
