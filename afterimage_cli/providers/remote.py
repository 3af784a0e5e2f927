"""What every provider that calls a server shares: endpoint settings, key-pool feedback and pricing."""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError
from .base import BaseProvider, LLMResponse, StructuredLLMResponse
from .keypool import ApiKey, SmartKeyPool
from .structured import Schema


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
        price: tuple[float, float] | None = None,
    ) -> None:
        self.model_name = model
        self.api_base = api_base
        self.keys = keys
        self.timeout = timeout
        self.params = dict(params or {})
        self.price = price

    def priced(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for a call at the configured or mapped price; None when the model is unpriced."""
        if self.price is None:
            return None
        return prompt_tokens * self.price[0] + completion_tokens * self.price[1]

    def report_key_error(self, key: ApiKey | None, error: ProviderError) -> None:
        """Tell the key pool how a key fared; a rejected key is retryable while others remain."""
        if key is None or self.keys is None:
            return
        self.keys.report_error(key, error.status_code, error.retry_after)
        if error.kind == "auth" and self.keys.has_live_keys():
            error.retryable = True  # another key may work; the rejected one is out of the pool

    def parse_answer(self, plain: LLMResponse, schema: Schema) -> StructuredLLMResponse:
        """An answer parsed by `schema`; one cut off by the token limit fails naming the setting to raise."""
        setting = f"{self.config_path}.max_tokens" if self.config_path else "max_tokens"
        return StructuredLLMResponse.parse(plain, schema, max_tokens=self.params.get("max_tokens"), setting=setting)
