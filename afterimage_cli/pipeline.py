"""Builds a run from a Config: providers, callbacks, storage, generator; and the run's fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel

from .components import build_instruction_generator, build_modifiers, build_storage, check_components
from .config import OPERATIONAL_FIELDS, Config, ModelConfig
from .engine.ledger import ledger_path
from .engine.retry import ErrorBudget, RetryingProvider
from .engine.served import aidentify_served
from .engine.spend import SpendLimit
from .generators.base import BaseGenerator
from .monitor import GenerationMonitor
from .providers.base import LLMProvider
from .providers.cache import CachedProvider, ResponseCache, default_cache_path, open_response_cache
from .providers.factory import LLMFactory, resolve_route
from .providers.ratelimit import RateLimiter
from .resources import Resources
from .types import Persona


def content_settings(value: Any) -> Any:
    """A config (or part of one) as plain data, without its OPERATIONAL_FIELDS."""
    if isinstance(value, BaseModel):
        skip = OPERATIONAL_FIELDS.get(type(value), frozenset())
        return {name: content_settings(getattr(value, name)) for name in type(value).model_fields if name not in skip}
    if isinstance(value, list | tuple):
        return [content_settings(item) for item in value]
    if isinstance(value, dict):
        return {key: content_settings(item) for key, item in value.items()}
    return value


def run_fingerprint(cfg: Config, content: str = "", served: Mapping[str, str] | None = None) -> str:
    """A hash of everything that decides a row's content (see OPERATIONAL_FIELDS for what is left out).

    `content` is a hash of what the config points at (the documents' chunks), so editing a document
    makes a new run instead of resuming into a mix of old and new rows. `served` is what each role's
    api_base server said it serves (role → id): the URL is operational, the model behind it is not."""
    data = content_settings(cfg)
    if content:
        data["content"] = content
    if served:
        data["served"] = dict(served)
    if not cfg.quality.auto_improve:  # the judge decides row content only through the quality gate
        data.pop("quality", None)
        data.pop("evaluation", None)
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def grounded_fingerprint(
    cfg: Config, resources: Resources, personas: Sequence[Persona], served: Mapping[str, str] | None = None
) -> str:
    """The run fingerprint with what the config points at: the documents' chunks and the personas in use
    (a regenerated personas file is a new run, not a resume into a mix), and the served models."""
    drawn = hashlib.sha256(orjson.dumps([[p.description, p.depth] for p in personas])).hexdigest()
    return run_fingerprint(cfg, resources.content_fingerprint() + (drawn if personas else ""), served)


@dataclass
class Run:
    """Everything a `generate` run needs, built and wired."""

    cfg: Config
    generator: BaseGenerator
    monitor: GenerationMonitor
    fingerprint: str
    providers: list[LLMProvider]
    resources: Resources | None = None
    cache: ResponseCache | None = None
    # role → (raw provider, the provider the run calls), for asking api_base servers what they serve.
    roles: dict[str, tuple[LLMProvider, LLMProvider]] = field(default_factory=dict)
    served: dict[str, str] = field(default_factory=dict)

    async def aprepare(self, say: Callable[[str], object] | None = None) -> None:
        """Work a run does before its first item: the api_base servers asked which model they serve (before
        any cached call), personas generated (or read) and the retrieval index built."""
        self.served = await aidentify_served(self.roles, self.cfg.retry)
        if self.resources is not None:
            personas = await self.resources.aprepare(say)
            if personas is not None:
                self.generator.personas = personas
            # Only now are the personas known (generated, or read from their file): they shape rows too.
            self.fingerprint = grounded_fingerprint(self.cfg, self.resources, self.generator.personas, self.served)
            self.generator.fingerprint = self.fingerprint

    async def aclose(self) -> None:
        for provider in self.providers:
            await provider.aclose()
        if self.resources is not None:
            await self.resources.aclose()
        if self.cache is not None:
            self.cache.close()


def open_cache(cfg: Config) -> ResponseCache | None:
    """The run's response cache, unless it is off."""
    if not cfg.cache.enabled:
        return None
    return open_response_cache(cfg.cache.path or default_cache_path())


def server_name(model: ModelConfig) -> str:
    """How an outage message names the server a model is served by (its outage gate is shared by name)."""
    route = resolve_route(model)
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
) -> tuple[LLMProvider, LLMProvider]:
    """(raw provider, the one every call goes through: cache → retries and budget → rate limiter → raw).

    `where` is the model block's place in the config (`respondent`, …), named by errors that a setting
    of it must change. The offline provider is neither cached nor rate limited: it is deterministic and local.
    """
    raw = LLMFactory.from_config(model)
    if where and hasattr(raw, "config_path"):
        raw.config_path = where
    if raw.model_name.split("/")[0] == "offline":
        return raw, RetryingProvider(raw, cfg.retry, budget, monitor)
    limiter = RateLimiter(
        max_concurrency=model.max_concurrency, rpm=model.rpm, tpm=model.tpm, adaptive=model.adaptive_concurrency
    )
    monitor.limiters[raw.model_name] = limiter
    spend = SpendLimit(monitor, cfg.budget.max_cost_usd, cfg.budget.max_total_tokens)
    outage = budget.outage_gate(server_name(model), cfg.retry.base_delay)
    monitor.outage_gates[outage.server] = outage
    wrapped: LLMProvider = RetryingProvider(
        raw, cfg.retry, budget, monitor, limiter, model.max_tokens or 256, spend, outage
    )
    if cache is not None:
        wrapped = CachedProvider(wrapped, cache, LLMFactory.request_params(model), on_hit=monitor.record_cache_hit)
    return raw, wrapped


def build_quality_gate(
    cfg: Config, respondent: LLMProvider, budget: ErrorBudget, monitor: GenerationMonitor, cache: ResponseCache | None
) -> tuple[LLMProvider | None, Any]:
    """(the judge's own raw provider or None, generate's quality gate or None when auto_improve is off)."""
    if not cfg.quality.auto_improve:
        return None, None
    from .evaluation.judge import ConversationJudge
    from .evaluation.quality import QualityGate

    raw, judge = None, respondent  # without evaluation.judge the respondent judges, through its own limiter
    if cfg.evaluation.judge is not None:
        raw, judge = build_provider(cfg.evaluation.judge, cfg, budget, monitor, cache, "evaluation.judge")
    return raw, QualityGate(ConversationJudge(judge, cfg.evaluation), cfg.quality)


def build_run(cfg: Config, monitor: GenerationMonitor) -> Run:
    """Wire providers (with retries and the error budget), callbacks, storage and the generator."""
    from .generators.conversation import ConversationGenerator
    from .generators.structured import StructuredGenerator

    resources = Resources(cfg)
    check_components(cfg, resources)
    budget = ErrorBudget(cfg.error_budget)
    resources.budget = budget
    cache = open_cache(cfg)
    respondent_raw, respondent = build_provider(cfg.respondent, cfg, budget, monitor, cache, "respondent")
    correspondent_raw, correspondent = respondent_raw, respondent
    if cfg.correspondent:
        correspondent_raw, correspondent = build_provider(
            cfg.correspondent, cfg, budget, monitor, cache, "correspondent"
        )
    resources.persona_llm = correspondent
    if cfg.persona_generation is not None and cfg.persona_generation.model is not None:
        persona_raw, resources.persona_llm = build_provider(
            cfg.persona_generation.model, cfg, budget, monitor, where="persona_generation.model"
        )
        resources.owned_providers.append(persona_raw)
    fingerprint = grounded_fingerprint(cfg, resources, resources.known_personas())
    gen = cfg.generation
    common: dict[str, Any] = dict(
        storage=build_storage(cfg),
        monitor=monitor,
        budget=budget,
        fingerprint=fingerprint,
        seed=gen.seed,
        concurrency=gen.concurrency,
        personas=resources.known_personas(),
        min_turns=gen.min_turns,
        max_turns=gen.max_turns,
        respondent=respondent,
        correspondent=correspondent,
        instruction_generator=build_instruction_generator(cfg, correspondent, resources),
        modifiers=build_modifiers(cfg, resources),
        system_prompt=gen.system_prompt,
        on_truncated=gen.on_truncated,
        ledger_path=ledger_path(cfg.storage.path),
        max_rejected_share=cfg.error_budget.max_rejected_share,
    )
    judge_raw, common["quality_gate"] = build_quality_gate(cfg, respondent, budget, monitor, cache)
    roles = {"respondent": (respondent_raw, respondent), "correspondent": (correspondent_raw, correspondent)}
    if judge_raw is not None:  # a judge of its own decides rows through the quality gate
        roles["judge"] = (judge_raw, common["quality_gate"].judge.provider)
    generator: BaseGenerator
    if gen.kind == "structured":
        assert gen.output_schema is not None
        common.update(min_turns=1, max_turns=1)
        generator = StructuredGenerator(schema=gen.output_schema, **common)
    else:
        generator = ConversationGenerator(**common)
    distinct = [respondent_raw] if correspondent_raw is respondent_raw else [respondent_raw, correspondent_raw]
    distinct += [judge_raw] if judge_raw is not None else []
    return Run(
        cfg=cfg,
        generator=generator,
        monitor=monitor,
        fingerprint=fingerprint,
        providers=distinct,
        resources=resources,
        cache=cache,
        roles=roles,
    )
