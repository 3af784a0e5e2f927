"""What the direct transports share: one aiohttp session per provider, and a JSON POST whose failures map to
ProviderErrors the same way whichever protocol the body speaks (OpenAI chat completions, Anthropic Messages,
Gemini generateContent)."""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import ProviderError
from .base import LLMResponse, Messages, StructuredLLMResponse
from .http_errors import status_error
from .keypool import ApiKey
from .remote import RemoteProvider
from .structured import Schema


def error_message(body: bytes) -> str:
    """The server's own error text, if its body is JSON with an `error` (OpenAI's and Anthropic's shape)."""
    try:
        data = orjson.loads(body)
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        return str(message or data)[:300]
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace")


class HttpTransport(RemoteProvider):
    """A provider that POSTs JSON bodies to `url` over one HTTP session for the whole run. A subclass says
    what its protocol's body is (`request_payload`) and how to read an answer (`answer_from`); batch mode
    sends and reads the same bodies."""

    url = ""
    _session: Any = None

    def request_payload(self, messages: Messages, schema: Schema | None = None, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of one call."""
        raise NotImplementedError

    def _to_response(self, data: dict[str, Any], headers: dict[str, str]) -> LLMResponse:
        """The plain answer in a response body (text, usage, reasoning, finish reason, cost)."""
        raise NotImplementedError

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
        """The JSON answer to `payload` and the answer's headers (lower-cased); ProviderError otherwise."""
        import aiohttp

        key = await self.keys.acquire() if self.keys else None
        headers = {"Content-Type": "application/json", **self.request_headers(key)}
        try:
            async with self._client().post(self.url, data=orjson.dumps(payload), headers=headers) as response:
                body = await response.read()
                answer_headers = {k.lower(): v for k, v in response.headers.items()}
                status = response.status
        except TimeoutError:
            raise ProviderError(f"{self.model_name}: request timed out", retryable=True, kind="timeout") from None
        except aiohttp.ClientError as exc:
            raise ProviderError(
                f"{self.model_name}: cannot reach the server at {self.api_base or self.url}: {exc}",
                retryable=True,
                kind="connection",
            ) from exc
        if status >= 400:
            error = self.error_for(status, body, answer_headers, key)
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

    def error_for(self, status: int, body: bytes, headers: dict[str, str], key: ApiKey | None) -> ProviderError:
        """The ProviderError an error status stands for; a protocol whose error bodies say more overrides it."""
        return status_error(self.model_name, status, error_message(body), headers, key, self.api_base)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
