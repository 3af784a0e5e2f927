"""What every provider that calls a server shares: endpoint settings, key-pool feedback and pricing."""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import ProviderError
from .base import BaseProvider, LLMResponse, StructuredLLMResponse
from .http_errors import status_error
from .keypool import ApiKey, SmartKeyPool
from .pricing import ModelPrice
from .structured import Schema

# What a run sends to learn the served model when the server keeps no model list: one token, at most.
PROBE_MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "Say OK."}]


class RemoteProvider(BaseProvider):
    """Settings of a served model; subclasses implement the transport (`acomplete`, `acomplete_structured`)."""

    # Where the config sets this model (`respondent`, `persona_generation.model`, …), for messages.
    config_path = ""

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        keys: SmartKeyPool | None = None,
        timeout: float = 60.0,
        params: dict[str, Any] | None = None,
        price: ModelPrice | None = None,
    ) -> None:
        self.model_name = model
        self.api_base = api_base
        self.keys = keys
        self.timeout = timeout
        self.params = dict(params or {})
        self.price = price

    @property
    def requested_model(self) -> str:
        """The model name the server is asked for: 'openai/llama3' → 'llama3'."""
        return self.model_name.split("/", 1)[1] if "/" in self.model_name else self.model_name

    def request_headers(self, key: ApiKey | None) -> dict[str, str]:
        """The headers of every request besides its content type: the key, as OpenAI's protocol sends it."""
        return {"Authorization": f"Bearer {key.value}"} if key is not None else {}

    @property
    def models_url(self) -> str:
        """Where the server lists the models it serves."""
        assert self.api_base is not None
        return self.api_base.rstrip("/") + "/models"

    async def alist_models(self) -> list[Any] | None:
        """The entries of GET `models_url`; None when the server keeps no usable list. Raises
        ProviderError when the server cannot be reached, fails (5xx, 429) or refuses the key."""
        import aiohttp

        assert self.api_base is not None
        key = await self.keys.acquire() if self.keys else None
        headers = self.request_headers(key)
        url = self.models_url
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
                async with session.get(url, headers=headers) as response:
                    status, body = response.status, await response.read()
                    answer_headers = {k.lower(): v for k, v in response.headers.items()}
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ProviderError(
                f"{self.model_name}: cannot reach the server at {self.api_base}: {exc or 'timed out'}",
                retryable=True,
                kind="connection",
            ) from None
        if status in (401, 403, 429) or status >= 500:
            raise status_error(
                self.model_name, status, body[:200].decode("utf-8", "replace"), answer_headers, key, self.api_base
            )
        try:
            data = orjson.loads(body) if status == 200 else None
        except orjson.JSONDecodeError:
            return None
        return self.model_entries(data) if isinstance(data, dict) else None

    def model_entries(self, data: dict[str, Any]) -> list[Any] | None:
        """The entries of the server's model list, each with an `id` (OpenAI's and Anthropic's `data`)."""
        entries = data.get("data")
        return entries if isinstance(entries, list) else None

    async def aprobe_model(self) -> str | None:
        """The `model` field of the server's answer to a one-token request (PROBE_MESSAGES)."""
        raise NotImplementedError

    def priced(self, prompt: int, completion: int, cached: int = 0, cache_creation: int = 0) -> float | None:
        """USD for a call at the configured or mapped price (`prompt` counts the `cached` and `cache_creation`
        tokens too); None when the model is unpriced."""
        if self.price is None:
            return None
        return self.price.cost(prompt, completion, cached, cache_creation)

    def report_key_error(self, key: ApiKey | None, error: ProviderError) -> None:
        """Tell the key pool how a key fared; a rejected key is retryable while others remain."""
        if key is None or self.keys is None:
            return
        self.keys.report_error(key, error.status_code, error.retry_after)
        if error.kind == "auth" and self.keys.has_live_keys():
            error.retryable = True  # another key may work; the rejected one is out of the pool

    def whole(self, response: LLMResponse) -> LLMResponse:
        """The answer, unless the end of the context window cut it: `finish_reason: length` with fewer
        tokens than max_tokens allows (llama.cpp stops there when the dialog fills its slot). Asking again
        cannot help, so it is a context limit (the dialog ends at its last whole turn), not a truncation."""
        limit = self.params.get("max_tokens")
        used = response.completion_token_count
        if response.finish_reason == "length" and isinstance(limit, int) and 0 < used < limit:
            error = ProviderError(
                f"{self.model_name}: the answer was cut off by the end of the context window after {used} tokens "
                f"(max_tokens is {limit})",
                retryable=False,
                kind="context_limit",
            )
            error.response = response  # its tokens were paid for
            raise error
        return response

    def parse_answer(self, plain: LLMResponse, schema: Schema) -> StructuredLLMResponse:
        """An answer parsed by `schema`; one cut off by the token limit fails naming the setting to raise."""
        setting = f"{self.config_path}.max_tokens" if self.config_path else "max_tokens"
        return StructuredLLMResponse.parse(
            self.whole(plain), schema, max_tokens=self.params.get("max_tokens"), setting=setting
        )
