"""Model prices from litellm's bundled price map, read as JSON so pricing never pays for importing litellm."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

PRICE_FILE = "model_prices_and_context_window_backup.json"


@dataclass(frozen=True)
class ModelPrice:
    """USD per token. Prompt tokens read from the provider's prompt cache cost `cache_read` (the input price
    when the map names none); `batch_*` are the batch API's prices (half the online ones unless named)."""

    input: float
    output: float
    cache_read: float | None = None
    cache_creation: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None

    def cost(self, prompt: int, completion: int, cached: int = 0, cache_creation: int = 0) -> float:
        """USD for one call; `cached` and `cache_creation` are the parts of `prompt` billed at cache prices."""
        read = self.input if self.cache_read is None else self.cache_read
        write = self.input if self.cache_creation is None else self.cache_creation
        plain = max(prompt - cached - cache_creation, 0)
        return plain * self.input + cached * read + cache_creation * write + completion * self.output


@functools.cache
def _price_map() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / PRICE_FILE
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _optional(entry: dict[str, Any], field: str) -> float | None:
    value = entry.get(field)
    return None if value is None else float(value)


def price_per_token(model: str, bare_model: str | None = None) -> ModelPrice | None:
    """USD per token for 'provider/model' (or the bare name), or None if unpriced."""
    prices = _price_map()
    entry = prices.get(model) or (prices.get(bare_model) if bare_model else None)
    if not isinstance(entry, dict) or entry.get("input_cost_per_token") is None:
        return None
    input_price, output_price = float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token") or 0.0)
    batch_input = _optional(entry, "input_cost_per_token_batches")
    batch_output = _optional(entry, "output_cost_per_token_batches")
    return ModelPrice(
        input=input_price,
        output=output_price,
        cache_read=_optional(entry, "cache_read_input_token_cost"),
        cache_creation=_optional(entry, "cache_creation_input_token_cost"),
        batch_input=input_price / 2 if batch_input is None else batch_input,
        batch_output=output_price / 2 if batch_output is None else batch_output,
    )
