"""Builds a run from a Config: providers, callbacks, storage, generator; and the run's fingerprint."""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel

from .config import OPERATIONAL_FIELDS, Config, ModelConfig
from .engine.retry import ErrorBudget, RetryingProvider, SpendLimit
from .errors import AfterimageError, ConfigError
from .generators.base import BaseGenerator
from .instructions.base import BaseInstructionGeneratorCallback
from .modifiers.base import BaseRespondentPromptModifierCallback
from .monitor import GenerationMonitor
from .providers.base import LLMProvider
from .providers.cache import CachedProvider, ResponseCache, default_cache_path, open_response_cache
from .providers.factory import LLMFactory, build_key_pool, parse_model
from .providers.ratelimit import RateLimiter
from .registry import instruction_generators, prompt_modifiers, providers, storage
from .resources import Resources, grounding_warnings
from .storage.base import BaseStorage
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


def run_fingerprint(cfg: Config, content: str = "") -> str:
    """A hash of everything that decides a row's content (see OPERATIONAL_FIELDS for what is left out).

    `content` is a hash of what the config points at (the documents' chunks), so editing a document
    makes a new run instead of resuming into a mix of old and new rows."""
    data = content_settings(cfg)
    if content:
        data["content"] = content
    if not cfg.quality.auto_improve:  # the judge decides row content only through the quality gate
        data.pop("quality", None)
        data.pop("evaluation", None)
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def grounded_fingerprint(cfg: Config, resources: Resources, personas: Sequence[Persona]) -> str:
    """The run fingerprint with what the config points at: the documents' chunks and the personas in use
    (a regenerated personas file is a new run, not a resume into a mix)."""
    drawn = hashlib.sha256(orjson.dumps([[p.description, p.depth] for p in personas])).hexdigest()
    return run_fingerprint(cfg, resources.content_fingerprint() + (drawn if personas else ""))


def with_resources(factory: Any, resources: Resources | None, options: dict[str, Any]) -> dict[str, Any]:
    """The options, plus `resources` when the factory declares that parameter (built-ins that need documents)."""
    try:
        parameter = inspect.signature(factory).parameters.get("resources")
    except (TypeError, ValueError):
        return dict(options)
    if resources is None or parameter is None or parameter.kind is inspect.Parameter.VAR_KEYWORD:
        return dict(options)
    return {**options, "resources": resources}


def build_instruction_generator(
    cfg: Config, llm: LLMProvider | None, resources: Resources | None = None
) -> BaseInstructionGeneratorCallback:
    factory = instruction_generators.get(cfg.instructions.generator)
    try:
        generator = factory(llm, **with_resources(factory, resources, cfg.instructions.options))
    except TypeError as exc:
        raise ConfigError(f"instructions.options: {exc}") from None
    if not isinstance(generator, BaseInstructionGeneratorCallback):
        raise ConfigError(f"instructions.generator {cfg.instructions.generator!r} is not an instruction generator")
    return generator


def build_modifiers(cfg: Config, resources: Resources | None = None) -> list[BaseRespondentPromptModifierCallback]:
    out = []
    for number, mod in enumerate(cfg.modifiers):
        try:
            factory = prompt_modifiers.get(mod.name)
            modifier = factory(**with_resources(factory, resources, mod.options))
        except TypeError as exc:
            raise ConfigError(f"modifiers[{number}].options: {exc}") from None
        if not isinstance(modifier, BaseRespondentPromptModifierCallback):
            raise ConfigError(f"modifiers[{number}].name {mod.name!r} is not a respondent prompt modifier")
        out.append(modifier)
    return out


def build_storage(cfg: Config) -> BaseStorage:
    store = storage.create(cfg.storage.type, cfg.storage.path)
    if not isinstance(store, BaseStorage):
        raise ConfigError(f"storage.type {cfg.storage.type!r} is not a BaseStorage")
    return store


def _check_model(where: str, model: ModelConfig) -> None:
    """Resolve the provider and its keys without calling anything."""
    try:
        spec = parse_model(model.model, api_base=model.api_base, provider=model.provider)
        providers.get(spec.provider)
        if spec.provider != "offline":
            build_key_pool(spec, model, os.environ)
    except AfterimageError as exc:
        raise type(exc)(f"{where}: {exc}") from None


def check_components(cfg: Config, resources: Resources | None = None) -> list[str]:
    """Resolve every named component (as a run would) and return warnings; raise on errors."""
    _check_model("respondent", cfg.respondent)
    if cfg.correspondent:
        _check_model("correspondent", cfg.correspondent)
    resources = resources or Resources(cfg)
    instruction_generator = build_instruction_generator(cfg, None, resources)
    build_modifiers(cfg, resources)
    storage.get(cfg.storage.type)
    warnings: list[str] = []
    warnings += grounding_warnings(cfg, resources, instruction_generator)
    if any(m.name == "persona" for m in cfg.modifiers) and not (
        cfg.personas or cfg.personas_file or cfg.persona_generation
    ):
        warnings.append("the 'persona' modifier is listed but no personas are configured")
    return warnings


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

    async def aprepare(self, say: Callable[[str], object] | None = None) -> None:
        """Work a run does before its first item: personas generated (or read) and the retrieval index built."""
        if self.resources is not None:
            personas = await self.resources.aprepare(say)
            if personas is not None:
                self.generator.personas = personas
            # Only now are the personas known (generated, or read from their file): they shape rows too.
            self.fingerprint = grounded_fingerprint(self.cfg, self.resources, self.generator.personas)
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


def build_provider(
    model: ModelConfig,
    cfg: Config,
    budget: ErrorBudget,
    monitor: GenerationMonitor,
    cache: ResponseCache | None = None,
) -> tuple[LLMProvider, LLMProvider]:
    """(raw provider, the one every call goes through: cache → retries and budget → rate limiter → raw).

    The offline provider is neither cached nor rate limited: it is deterministic and local.
    """
    raw = LLMFactory.from_config(model)
    if raw.model_name.split("/")[0] == "offline":
        return raw, RetryingProvider(raw, cfg.retry, budget, monitor)
    limiter = RateLimiter(
        max_concurrency=model.max_concurrency, rpm=model.rpm, tpm=model.tpm, adaptive=model.adaptive_concurrency
    )
    monitor.limiters[raw.model_name] = limiter
    spend = SpendLimit(monitor, cfg.budget.max_cost_usd, cfg.budget.max_tokens)
    wrapped: LLMProvider = RetryingProvider(raw, cfg.retry, budget, monitor, limiter, model.max_tokens or 256, spend)
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
        raw, judge = build_provider(cfg.evaluation.judge, cfg, budget, monitor, cache)
    return raw, QualityGate(ConversationJudge(judge, cfg.evaluation), cfg.quality)


def build_run(cfg: Config, monitor: GenerationMonitor) -> Run:
    """Wire providers (with retries and the error budget), callbacks, storage and the generator."""
    from .generators.conversation import ConversationGenerator
    from .generators.structured import StructuredGenerator

    resources = Resources(cfg)
    check_components(cfg, resources)
    budget = ErrorBudget(cfg.error_budget)
    cache = open_cache(cfg)
    respondent_raw, respondent = build_provider(cfg.respondent, cfg, budget, monitor, cache)
    correspondent_raw, correspondent = respondent_raw, respondent
    if cfg.correspondent:
        correspondent_raw, correspondent = build_provider(cfg.correspondent, cfg, budget, monitor, cache)
    resources.persona_llm = correspondent
    if cfg.persona_generation is not None and cfg.persona_generation.model is not None:
        persona_raw, resources.persona_llm = build_provider(cfg.persona_generation.model, cfg, budget, monitor)
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
    )
    judge_raw, common["quality_gate"] = build_quality_gate(cfg, respondent, budget, monitor, cache)
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
    )
