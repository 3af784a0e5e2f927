"""The direct OpenAI-protocol transport: OpenAI, Azure OpenAI, the OpenAI-compatible hosts (Groq, Together,
DeepSeek, …) and any --api-base server (vLLM, llama.cpp, Ollama's /v1, LM Studio).

It speaks only POST …/chat/completions over one aiohttp session, so a call costs a fraction of litellm's
CPU. Errors, retries, usage, reasoning and structured output behave exactly as through litellm; what a host
wants said its own way is in openai_dialect.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import ProviderError
from .base import LLMResponse, Messages, StructuredLLMResponse
from .http_errors import status_error
from .keypool import ApiKey
from .openai_dialect import adapt_request, answer_text
from .remote import PROBE_MESSAGES, RemoteProvider
from .structured import Schema, response_format


def _error_message(body: bytes) -> str:
    """The server's own error text, if its body is OpenAI-shaped JSON."""
    try:
        data = orjson.loads(body)
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        return str(message or data)[:300]
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace")


class OpenAICompatProvider(RemoteProvider):
    """Chat completions against an OpenAI-compatible server, one HTTP session for the whole run."""

    def __init__(self, model: str, *, api_version: str | None = None, **settings: Any) -> None:
        super().__init__(model, **settings)
        if not self.api_base:
            raise ProviderError(
                f"{model}: the openai_compat provider needs api_base (the server's /v1 URL)",
                retryable=False,
                kind="bad_request",
            )
        # 'openai/llama3' or 'hosted_vllm/llama3' → the server is asked for 'llama3'.
        self.served_model = self.requested_model
        self.prefix = model.partition("/")[0] if "/" in model else ""
        self.api_version = api_version
        self.url = self.api_base.rstrip("/") + self.request_url
        self._session: Any = None

    @property
    def is_azure(self) -> bool:
        return self.prefix == "azure"

    @property
    def request_url(self) -> str:
        """The path a chat body is POSTed to under api_base (Azure: the deployment's, with its api-version)."""
        if self.is_azure:
            return f"/openai/deployments/{self.served_model}/chat/completions?api-version={self.api_version}"
        return "/chat/completions"

    def auth_headers(self, key: ApiKey | None) -> dict[str, str]:
        if key is not None and self.is_azure:
            return {"api-key": key.value}
        return super().auth_headers(key)

    def _client(self) -> Any:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
            )
        return self._session

    async def _post(self, payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        import aiohttp

        key = await self.keys.acquire() if self.keys else None
        headers = {"Content-Type": "application/json", **self.auth_headers(key)}
        try:
            async with self._client().post(self.url, data=orjson.dumps(payload), headers=headers) as response:
                body = await response.read()
                answer_headers = {k.lower(): v for k, v in response.headers.items()}
                status = response.status
        except TimeoutError:
            raise ProviderError(f"{self.model_name}: request timed out", retryable=True, kind="timeout") from None
        except aiohttp.ClientError as exc:
            raise ProviderError(
                f"{self.model_name}: cannot reach the server at {self.api_base}: {exc}",
                retryable=True,
                kind="connection",
            ) from exc
        if status >= 400:
            error = status_error(self.model_name, status, _error_message(body), answer_headers, key, self.api_base)
            self.report_key_error(key, error)
            raise error
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ProviderError(
                f"{self.model_name}: malformed response body ({len(body)} bytes)", retryable=True, kind="invalid_output"
            ) from None
        if not isinstance(data, dict):
            raise ProviderError(f"{self.model_name}: malformed response", retryable=True, kind="invalid_output")
        return data, answer_headers

    def _to_response(self, data: dict[str, Any], headers: dict[str, str]) -> LLMResponse:
        try:
            choice = data["choices"][0]
            message = choice["message"]
            text, reasoning = answer_text(message)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderError(
                f"{self.model_name}: malformed response: missing {exc}", retryable=True, kind="invalid_output"
            ) from None
        if not isinstance(text, str):
            raise ProviderError(
                f"{self.model_name}: empty response (finish_reason={choice.get('finish_reason')})",
                retryable=True,
                kind="invalid_output",
            )
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details")
        cached = int((details.get("cached_tokens") if isinstance(details, dict) else None) or 0)
        limits = {k: v for k, v in headers.items() if "ratelimit" in k}
        return LLMResponse(
            text=text,
            prompt_token_count=prompt_tokens,
            completion_token_count=completion_tokens,
            total_token_count=int(usage.get("total_tokens") or prompt_tokens + completion_tokens),
            cached_prompt_tokens=cached,
            finish_reason=choice.get("finish_reason"),
            model_name=self.model_name,
            raw_response=data,
            reasoning_content=reasoning,
            cost=self.priced(prompt_tokens, completion_tokens, cached),
            headers=limits or None,
        )

    def request_payload(self, messages: Messages, schema: Schema | None = None, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of one chat call (batch mode sends the same body inside a batch file)."""
        payload = {**self.params, **kwargs, "model": self.served_model, "messages": messages}
        if schema is not None:
            payload["response_format"] = response_format(schema)
        return adapt_request(self.prefix, self.served_model, payload)

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
        data, _ = await self._post(self.request_payload(PROBE_MESSAGES, max_tokens=1))
        model = data.get("model")
        return model if isinstance(model, str) and model else None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
