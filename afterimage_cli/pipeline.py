"""Builds a run from a Config: providers, callbacks, storage, generator; and the run's fingerprint."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import orjson

from .config import Config, ModelConfig
from .engine.retry import ErrorBudget, RetryingProvider
from .errors import AfterimageError, ConfigError
from .generators.base import BaseGenerator
from .instructions.base import BaseInstructionGeneratorCallback
from .modifiers.base import BaseRespondentPromptModifierCallback
from .monitor import GenerationMonitor
from .providers.base import LLMProvider
from .providers.factory import LLMFactory, build_key_pool, parse_model
from .registry import instruction_generators, prompt_modifiers, providers, storage
from .storage.base import BaseStorage
from .types import Persona


def run_fingerprint(cfg: Config) -> str:
    """A hash of everything that decides a row's content; count, concurrency and endpoints are left out."""
    data = cfg.model_dump(mode="json")
    data["generation"].pop("num_conversations", None)
    data["generation"].pop("concurrency", None)
    for name in ("storage", "retry", "error_budget"):
        data.pop(name, None)
    for role in ("respondent", "correspondent"):
        if data.get(role):
            for key in ("api_base", "api_key_env", "timeout", "provider"):
                data[role].pop(key, None)
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def build_instruction_generator(cfg: Config, llm: LLMProvider | None) -> BaseInstructionGeneratorCallback:
    factory = instruction_generators.get(cfg.instructions.generator)
    try:
        generator = factory(llm, **cfg.instructions.options)
    except TypeError as exc:
        raise ConfigError(f"instructions.options: {exc}") from None
    if not isinstance(generator, BaseInstructionGeneratorCallback):
        raise ConfigError(f"instructions.generator {cfg.instructions.generator!r} is not an instruction generator")
    return generator


def build_modifiers(cfg: Config) -> list[BaseRespondentPromptModifierCallback]:
    out = []
    for number, mod in enumerate(cfg.modifiers):
        try:
            modifier = prompt_modifiers.create(mod.name, **mod.options)
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


def check_components(cfg: Config) -> list[str]:
    """Resolve every named component (as a run would) and return warnings; raise on errors."""
    _check_model("respondent", cfg.respondent)
    if cfg.correspondent:
        _check_model("correspondent", cfg.correspondent)
    build_instruction_generator(cfg, None)
    build_modifiers(cfg)
    storage.get(cfg.storage.type)
    warnings = []
    if any(m.name == "persona" for m in cfg.modifiers) and not cfg.personas:
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

    async def aclose(self) -> None:
        for provider in self.providers:
            await provider.aclose()


def build_provider(
    model: ModelConfig, cfg: Config, budget: ErrorBudget, monitor: GenerationMonitor
) -> tuple[LLMProvider, LLMProvider]:
    """(raw provider, the wrapped one every call should go through: retries, budget, monitor)."""
    raw = LLMFactory.from_config(model)
    return raw, RetryingProvider(raw, cfg.retry, budget, monitor)


def build_run(cfg: Config, monitor: GenerationMonitor) -> Run:
    """Wire providers (with retries and the error budget), callbacks, storage and the generator."""
    from .generators.conversation import ConversationGenerator
    from .generators.structured import StructuredGenerator

    check_components(cfg)
    budget = ErrorBudget(cfg.error_budget)
    respondent_raw = LLMFactory.from_config(cfg.respondent)
    correspondent_raw = LLMFactory.from_config(cfg.correspondent) if cfg.correspondent else respondent_raw
    respondent = RetryingProvider(respondent_raw, cfg.retry, budget, monitor)
    correspondent = RetryingProvider(correspondent_raw, cfg.retry, budget, monitor) if cfg.correspondent else respondent
    fingerprint = run_fingerprint(cfg)
    gen = cfg.generation
    common: dict[str, Any] = dict(
        storage=build_storage(cfg),
        monitor=monitor,
        budget=budget,
        fingerprint=fingerprint,
        seed=gen.seed,
        concurrency=gen.concurrency,
        personas=[Persona(description=p) for p in cfg.personas],
        min_turns=gen.min_turns,
        max_turns=gen.max_turns,
        respondent=respondent,
        correspondent=correspondent,
        instruction_generator=build_instruction_generator(cfg, correspondent),
        modifiers=build_modifiers(cfg),
        system_prompt=gen.system_prompt,
    )
    generator: BaseGenerator
    if gen.kind == "structured":
        assert gen.output_schema is not None
        common.update(min_turns=1, max_turns=1)
        generator = StructuredGenerator(schema=gen.output_schema, **common)
    else:
        generator = ConversationGenerator(**common)
    distinct = [respondent_raw] if correspondent_raw is respondent_raw else [respondent_raw, correspondent_raw]
    return Run(cfg=cfg, generator=generator, monitor=monitor, fingerprint=fingerprint, providers=distinct)
