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
    """USD per token: prompt (`input`), completion (`output`), prompt tokens read from the provider's prompt
    cache (`cache_read`) and written to it (`cache_creation`), and the batch API's rates."""

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
        *,
        cache_read: float | None = None,
        cache_creation: float | None = None,
        batch_input: float | None = None,
        batch_output: float | None = None,
    ) -> ModelPrice:
        """A price whose unknown rates follow the known ones: cache tokens cost the input price, the batch API
        half the online prices (what OpenAI, Anthropic and Gemini all charge)."""
        return cls(
            input,
            output,
            input if cache_read is None else cache_read,
            input if cache_creation is None else cache_creation,
            input / 2 if batch_input is None else batch_input,
            output / 2 if batch_output is None else batch_output,
        )

    def batch(self) -> ModelPrice:
        """The price through the provider's batch API, as a price of its own (cache rates scaled alike)."""
        scale = self.batch_input / self.input if self.input else 0.5
        return ModelPrice(
            self.batch_input,
            self.batch_output,
            self.cache_read * scale,
            self.cache_creation * scale,
            self.batch_input,
            self.batch_output,
        )

    def cost(self, prompt: int, completion: int, cached: int = 0, cache_creation: int = 0) -> float:
        """USD for a call; `prompt` counts every prompt token, the `cached` and `cache_creation` ones included."""
        fresh = prompt - cached - cache_creation
        return (
            fresh * self.input
            + cached * self.cache_read
            + cache_creation * self.cache_creation
            + completion * self.output
        )


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


def model_entry(model: str, bare_model: str | None = None) -> dict[str, Any]:
    """The price map's entry for 'provider/model' (or the bare name): prices and what the model supports."""
    prices = _price_map()
    entry = prices.get(model) or (prices.get(bare_model) if bare_model else None)
    return entry if isinstance(entry, dict) else {}


def _rate(entry: dict[str, Any], field: str) -> float | None:
    value = entry.get(field)
    return None if value is None else float(value)


def price_per_token(model: str, bare_model: str | None = None) -> ModelPrice | None:
    """The price of 'provider/model' (or the bare name), or None if unpriced."""
    entry = model_entry(model, bare_model)
    if entry.get("input_cost_per_token") is None:
        return None
    return ModelPrice.of(
        float(entry["input_cost_per_token"]),
        float(entry.get("output_cost_per_token") or 0.0),
        cache_read=_rate(entry, "cache_read_input_token_cost"),
        cache_creation=_rate(entry, "cache_creation_input_token_cost"),
        batch_input=_rate(entry, "input_cost_per_token_batches"),
        batch_output=_rate(entry, "output_cost_per_token_batches"),
    )
