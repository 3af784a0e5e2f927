"""Model prices from litellm's bundled price map, read as JSON so pricing never pays for importing litellm."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

PRICE_FILE = "model_prices_and_context_window_backup.json"


@functools.cache
def price_map() -> dict[str, Any]:
    """litellm's bundled price and capability map (model → entry), or {} when litellm is not installed."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / PRICE_FILE
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class ModelPrice:
    """USD per token. `cache_read` is what a prompt token read from the provider's prompt cache costs,
    `cache_creation` one written to it (Anthropic); the batch prices are what the provider's batch API
    charges (unused until batch mode; `batch()` is the price of the same calls sent through it)."""

    input: float
    output: float
    cache_read: float
    cache_creation: float
    batch_input: float
    batch_output: float

    @classmethod
    def of(
        cls,
        input: float,
        output: float,
        cache_read: float | None = None,
        cache_creation: float | None = None,
        batch_input: float | None = None,
        batch_output: float | None = None,
    ) -> ModelPrice:
        """A price whose missing parts take their defaults: cached tokens without a cache price cost the
        input price; a batch price not known is half the online one (what OpenAI and Anthropic charge)."""
        return cls(
            input=input,
            output=output,
            cache_read=input if cache_read is None else cache_read,
            cache_creation=input if cache_creation is None else cache_creation,
            batch_input=input / 2 if batch_input is None else batch_input,
            batch_output=output / 2 if batch_output is None else batch_output,
        )

    def cost(self, prompt_tokens: int, completion_tokens: int, cached: int = 0, cache_creation: int = 0) -> float:
        """USD of one call. `prompt_tokens` counts every prompt token, the cached and cache-written ones
        included (OpenAI's `prompt_tokens`; litellm adds Anthropic's cache tokens to it the same way)."""
        fresh = max(prompt_tokens - cached - cache_creation, 0)
        return (
            fresh * self.input
            + cached * self.cache_read
            + cache_creation * self.cache_creation
            + completion_tokens * self.output
        )

    def batch(self) -> ModelPrice:
        """The price of the same calls through the provider's batch API: the batch prices, and the cache
        prices discounted as the input price is."""
        ratio = self.batch_input / self.input if self.input else 1.0
        return ModelPrice(
            input=self.batch_input,
            output=self.batch_output,
            cache_read=self.cache_read * ratio,
            cache_creation=self.cache_creation * ratio,
            batch_input=self.batch_input,
            batch_output=self.batch_output,
        )


def _number(entry: dict[str, Any], field: str) -> float | None:
    value = entry.get(field)
    return float(value) if isinstance(value, int | float) else None


def model_entry(model: str, bare_model: str | None = None) -> dict[str, Any] | None:
    """The price map's entry for 'provider/model', or else for the bare name."""
    prices = price_map()
    entry = prices.get(model) or (prices.get(bare_model) if bare_model else None)
    return entry if isinstance(entry, dict) else None


def price_per_token(model: str, bare_model: str | None = None) -> ModelPrice | None:
    """The price of 'provider/model' (or the bare name) in the bundled map, or None if unpriced."""
    entry = model_entry(model, bare_model)
    if entry is None:
        return None
    input_price = _number(entry, "input_cost_per_token")
    if input_price is None:
        return None
    return ModelPrice.of(
        input_price,
        _number(entry, "output_cost_per_token") or 0.0,
        cache_read=_number(entry, "cache_read_input_token_cost"),
        cache_creation=_number(entry, "cache_creation_input_token_cost"),
        batch_input=_number(entry, "input_cost_per_token_batches"),
        batch_output=_number(entry, "output_cost_per_token_batches"),
    )
