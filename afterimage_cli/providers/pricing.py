"""Model prices from litellm's bundled price map, read as JSON so pricing never pays for importing litellm."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import orjson

PRICE_FILE = "model_prices_and_context_window_backup.json"


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


def price_per_token(model: str, bare_model: str | None = None) -> tuple[float, float] | None:
    """USD per (prompt, completion) token for 'provider/model' (or the bare name), or None if unpriced."""
    prices = _price_map()
    entry = prices.get(model) or (prices.get(bare_model) if bare_model else None)
    if not isinstance(entry, dict) or entry.get("input_cost_per_token") is None:
        return None
    return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token") or 0.0)


def batch_price_per_token(model: str, bare_model: str | None = None) -> tuple[float, float] | None:
    """USD per (prompt, completion) token through the provider's batch API, when the price map has it."""
    prices = _price_map()
    entry = prices.get(model) or (prices.get(bare_model) if bare_model else None)
    if not isinstance(entry, dict) or entry.get("input_cost_per_token_batches") is None:
        return None
    return float(entry["input_cost_per_token_batches"]), float(entry.get("output_cost_per_token_batches") or 0.0)
