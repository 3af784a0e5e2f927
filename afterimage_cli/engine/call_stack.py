"""The stack every model call goes through: response cache → retries, error budget, outage gate and spend
limit → rate limiter → the provider's transport. generate, evaluate and persona generation build theirs here."""

from __future__ import annotations

from ..config import Config, ModelConfig
from ..errors import ConfigError
from ..monitor import GenerationMonitor
from ..providers.base import LLMProvider
from ..providers.batch import batch_api_for
from ..providers.cache import CachedProvider, ResponseCache, default_cache_path, open_response_cache
from ..providers.factory import LLMFactory, model_batch_price, resolve_route
from ..providers.ratelimit import RateLimiter
from ..providers.replicas import PROBE_MIN, SEVERAL_ENDPOINTS_IN_BATCH_MODE, ReplicaSet
from .batch_calls import BatchedProvider
from .batch_state import BatchState
from .retry import ErrorBudget, RetryingProvider
from .rounds import BatchRounds
from .spend import SpendLimit


def open_cache(cfg: Config) -> ResponseCache | None:
    """The run's response cache, unless it is off."""
    if not cfg.cache.enabled:
        return None
    return open_response_cache(cfg.cache.path or default_cache_path())


def server_name(model: ModelConfig) -> str:
    """How an outage message names the server a model is served by (its outage gate is shared by name)."""
    route = resolve_route(model)
    if route.others:
        return f"every endpoint of {model.model} ({', '.join((route.api_base or route.spec.full, *route.others))})"
    if route.api_base and route.source != "default":  # an api_base, or OPENAI_BASE_URL and the like
        return f"the server at {route.api_base}"
    return f"the {route.spec.prefix or route.spec.provider} API"


def build_provider(
    model: ModelConfig,
    cfg: Config,
    budget: ErrorBudget,
    monitor: GenerationMonitor,
    cache: ResponseCache | None = None,
    where: str = "",
    rounds: BatchRounds | None = None,
) -> tuple[LLMProvider, LLMProvider]:
    """(raw provider, the one every call goes through: cache → retries and budget → rate limiter → raw).

    `where` is the model block's place in the config (`respondent`, …), named by errors that a setting
    of it must change. The offline provider is neither cached nor rate limited: it is deterministic and local.
    With `rounds` (batch mode) the calls of items wait for their round instead of a rate limiter.
    """
    raw = LLMFactory.from_config(model)
    if where and hasattr(raw, "config_path"):
        raw.config_path = where
    if raw.model_name.split("/")[0] == "offline" and rounds is None:
        return raw, RetryingProvider(raw, cfg.retry, budget, monitor)
    spend = SpendLimit(monitor, cfg.budget.max_cost_usd, cfg.budget.max_total_tokens)
    wrapped: LLMProvider
    if isinstance(raw, ReplicaSet):
        if rounds is not None:
            raise ConfigError(f"{where or raw.model_name}: {SEVERAL_ENDPOINTS_IN_BATCH_MODE}")
        raw.on_failover = lambda kind: monitor.record_error(kind, will_retry=True)
        raw.probe_first = max(cfg.retry.base_delay, PROBE_MIN)  # where the outage gate's probes start too
        # By model; a second block of the same model (the simulated user's, say) by its place too.
        shown = raw.model_name if raw.model_name not in monitor.endpoints else f"{raw.model_name} ({where})"
        monitor.endpoints[shown] = raw
    if rounds is not None:  # a failed line's retry joins the next round; the rounds pace the calls
        batched = BatchedProvider(raw, batch_api_for(raw, retry=cfg.retry), rounds, model_batch_price(model))
        wrapped = RetryingProvider(batched, cfg.retry, budget, monitor, None, model.max_tokens or 256, spend)
    else:
        limiter = RateLimiter(
            max_concurrency=model.max_concurrency, rpm=model.rpm, tpm=model.tpm, adaptive=model.adaptive_concurrency
        )
        monitor.limiters[raw.model_name] = limiter
        outage = budget.outage_gate(server_name(model), cfg.retry.base_delay)
        monitor.outage_gates[outage.server] = outage
        wrapped = RetryingProvider(raw, cfg.retry, budget, monitor, limiter, model.max_tokens or 256, spend, outage)
    if cache is not None:
        wrapped = CachedProvider(wrapped, cache, LLMFactory.request_params(model), on_hit=monitor.record_cache_hit)
    return raw, wrapped


def batch_rounds(cfg: Config, monitor: GenerationMonitor) -> BatchRounds:
    """The run's round scheduler for batch mode, shown by the monitor; its ledger state is read at start."""
    rounds = BatchRounds(
        BatchState(),
        monitor,
        items_in_flight=cfg.batch.items_in_flight,
        poll_interval=cfg.batch.poll_interval,
        finish_online_below=cfg.batch.finish_online_below,
        max_requests=cfg.batch.max_requests,
        spend=SpendLimit(monitor, cfg.budget.max_cost_usd, cfg.budget.max_total_tokens),
    )
    monitor.batches = rounds
    return rounds
