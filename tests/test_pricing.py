"""What a call costs: ModelPrice from litellm's bundled map (cached prompt tokens at the cached rate, batch
prices), the config's overrides, and the run's cost and cached tokens in the summary and the rows."""

from __future__ import annotations

import orjson
import pytest

from afterimage_cli.config import ModelConfig
from afterimage_cli.providers.factory import model_price
from afterimage_cli.providers.pricing import ModelPrice, price_map, price_per_token

from .helpers import invoke, make_config, read_rows


def test_the_map_gives_cache_and_batch_prices() -> None:
    entry = price_map()["gpt-4o-mini"]
    price = price_per_token("openai/gpt-4o-mini", "gpt-4o-mini")
    assert price == ModelPrice(
        input=entry["input_cost_per_token"],
        output=entry["output_cost_per_token"],
        cache_read=entry["cache_read_input_token_cost"],
        cache_creation=entry["input_cost_per_token"],  # OpenAI charges nothing extra to write its cache
        batch_input=entry["input_cost_per_token_batches"],
        batch_output=entry["output_cost_per_token_batches"],
    )
    assert price_per_token("openai/no-such-model", "no-such-model") is None


def test_cached_tokens_cost_the_cached_rate_and_missing_prices_take_their_defaults() -> None:
    price = ModelPrice.of(2e-6, 8e-6, cache_read=0.5e-6, cache_creation=2.5e-6)
    # 100 prompt tokens, of which 30 were read from the cache and 10 written to it; 20 completion tokens.
    assert price.cost(100, 20, cached=30, cache_creation=10) == pytest.approx(
        60 * 2e-6 + 30 * 0.5e-6 + 10 * 2.5e-6 + 20 * 8e-6
    )
    plain = ModelPrice.of(2e-6, 8e-6)
    assert plain.cost(100, 20, cached=30) == pytest.approx(plain.cost(100, 20))  # no cache price: the input's
    assert (plain.batch_input, plain.batch_output) == (1e-6, 4e-6)  # no batch price: half


def test_batch_is_the_price_through_a_batch_api() -> None:
    price = ModelPrice.of(2e-6, 8e-6, cache_read=0.5e-6, batch_input=1.5e-6, batch_output=6e-6)
    batch = price.batch()
    assert (batch.input, batch.output) == (1.5e-6, 6e-6)
    assert batch.cache_read == pytest.approx(0.5e-6 * 0.75)  # discounted as the input price is
    assert batch.cost(100, 20) == pytest.approx(100 * 1.5e-6 + 20 * 6e-6)


def test_config_overrides_replace_the_maps_prices() -> None:
    mapped = model_price(ModelConfig(model="openai/gpt-4o-mini"))
    assert mapped is not None and mapped.cache_read < mapped.input
    override = model_price(ModelConfig(model="openai/gpt-4o-mini", input_cost_per_million=3, output_cost_per_million=9))
    assert override == ModelPrice.of(3e-6, 9e-6)  # the cached rate is the map's for the map's prices only
    batch = ModelConfig(
        model="openai/gpt-4o-mini", batch_input_cost_per_million=0.05, batch_output_cost_per_million=0.2
    )
    priced = model_price(batch)
    assert priced is not None and (priced.batch_input, priced.batch_output) == pytest.approx((0.05e-6, 0.2e-6))
    assert (priced.input, priced.cache_read) == (mapped.input, mapped.cache_read)
    assert priced.batch().input == pytest.approx(0.05e-6)
    assert model_price(ModelConfig(model="openai/no-such-model", batch_input_cost_per_million=1)) is None


def test_a_run_counts_cached_prompt_tokens_and_prices_them_at_the_cached_rate(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.api_base)
    fake_server.cached_share = 0.5
    cfg = make_config(tmp_path, respondent={"model": "openai/gpt-4o-mini"}, generation={"max_turns": 1})
    result = invoke("generate", str(cfg), "-n", "4", "--json")
    assert result.exit_code == 0, result.stderr
    summary = orjson.loads(result.stdout)
    stats = fake_server.stats
    assert summary["cached_prompt_tokens"] == stats["cached_tokens"] > 0
    assert summary["prompt_tokens"] == stats["prompt_tokens"]
    price = price_per_token("openai/gpt-4o-mini", "gpt-4o-mini")
    assert price is not None
    fresh = stats["prompt_tokens"] - summary["cached_prompt_tokens"]
    expected = fresh * price.input + summary["cached_prompt_tokens"] * price.cache_read
    expected += stats["completion_tokens"] * price.output
    assert summary["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert f"in ({summary['cached_prompt_tokens']:,} cached)" in result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert sum(r["metadata"]["usage"]["cached_prompt_tokens"] for r in rows) == summary["cached_prompt_tokens"]
