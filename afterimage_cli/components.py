"""The components a config names (generators, modifiers, storage, providers): looked up, checked, built.

A config may name a plugin by `module:Class`: the lookup imports that module (running its top-level
code) and checks what it names against the kind's interface, without calling it. Only a run builds
plugins; `validate` and `--dry-run` (`check_components`) build afterimage's own components, to check
their options and documents, and for plugins only bind the options to the constructor's signature.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from .config import Config, ModelConfig, ModifierConfig
from .engine.spend import budgeted_models, require_prices
from .errors import AfterimageError, ConfigError
from .instructions.base import BaseInstructionGeneratorCallback
from .modifiers.base import BaseRespondentPromptModifierCallback
from .personas.store import writable_format
from .providers.base import LLMProvider
from .providers.factory import Route, build_key_pool, endpoint_configs, parse_model, resolve_route
from .providers.replicas import SEVERAL_ENDPOINTS_IN_BATCH_MODE
from .registry import instruction_generators, is_builtin, prompt_modifiers, providers, retrievers, storage
from .resources import Resources, with_resources
from .stopping import chunk_coverage_target, coverage_method
from .storage.base import BaseStorage


def check_options(factory: Any, field: str, *args: Any, **options: Any) -> None:
    """Bind the options to the constructor's signature without calling it (what validate can say of a plugin)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no introspectable signature: the run will tell
        return
    try:
        signature.bind(*args, **options)
    except TypeError as exc:
        raise ConfigError(f"{field}: {exc}") from None


def build_instruction_generator(
    cfg: Config, llm: LLMProvider | None, resources: Resources | None = None
) -> BaseInstructionGeneratorCallback:
    factory = instruction_generators.resolve(cfg.instructions.generator, "instructions.generator")
    try:
        generator = factory(llm, **with_resources(factory, resources, cfg.instructions.options))
    except TypeError as exc:
        raise ConfigError(f"instructions.options: {exc}") from None
    if not isinstance(generator, BaseInstructionGeneratorCallback):
        raise ConfigError(f"instructions.generator {cfg.instructions.generator!r} is not an instruction generator")
    return generator


def checked_instruction_generator(cfg: Config, resources: Resources) -> Any:
    """For checks that call no plugin: the built-in generator built, or a plugin's class (options bound)."""
    factory = instruction_generators.resolve(cfg.instructions.generator, "instructions.generator")
    if is_builtin(factory):
        return build_instruction_generator(cfg, None, resources)
    check_options(factory, "instructions.options", None, **with_resources(factory, resources, cfg.instructions.options))
    return factory


def build_modifier(
    number: int, mod: ModifierConfig, resources: Resources | None
) -> BaseRespondentPromptModifierCallback:
    """The modifier `modifiers[number]` names, built with its options."""
    factory = prompt_modifiers.resolve(mod.name, f"modifiers[{number}].name")
    try:
        modifier = factory(**with_resources(factory, resources, mod.options))
    except TypeError as exc:
        raise ConfigError(f"modifiers[{number}].options: {exc}") from None
    if not isinstance(modifier, BaseRespondentPromptModifierCallback):
        raise ConfigError(f"modifiers[{number}].name {mod.name!r} is not a respondent prompt modifier")
    return modifier


def build_modifiers(cfg: Config, resources: Resources | None = None) -> list[BaseRespondentPromptModifierCallback]:
    return [build_modifier(number, mod, resources) for number, mod in enumerate(cfg.modifiers)]


def check_modifiers(cfg: Config, resources: Resources) -> None:
    """Built-in modifiers are built (they check their options); plugins only have their options bound."""
    for number, mod in enumerate(cfg.modifiers):
        factory = prompt_modifiers.resolve(mod.name, f"modifiers[{number}].name")
        if is_builtin(factory):
            build_modifier(number, mod, resources)
        else:
            check_options(factory, f"modifiers[{number}].options", **with_resources(factory, resources, mod.options))


def build_storage(cfg: Config) -> BaseStorage:
    store = storage.resolve(cfg.storage.type, "storage.type")(cfg.storage.path)
    if not isinstance(store, BaseStorage):
        raise ConfigError(f"storage.type {cfg.storage.type!r} is not a BaseStorage")
    return store


def check_model(where: str, model: ModelConfig) -> Route:
    """Resolve the provider, its URL and its keys without calling anything."""
    try:
        route = resolve_route(model)
    except AfterimageError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    providers.resolve(route.spec.provider, f"{where}.provider")
    if route.spec.provider != "offline":
        try:
            for endpoint in endpoint_configs(model):  # each replica or deployment has its keys
                build_key_pool(resolve_route(endpoint.config), endpoint.config, os.environ)
        except AfterimageError as exc:
            raise type(exc)(f"{where}: {exc}") from None
    return route


def model_routes(cfg: Config) -> dict[str, Route]:
    """Where each configured model's calls go (config field → route), for validate and --dry-run to show."""
    models = {"respondent": cfg.respondent, "correspondent": cfg.correspondent}
    models["persona_generation.model"] = cfg.persona_generation.model if cfg.persona_generation else None
    models["evaluation.judge"] = cfg.evaluation.judge
    models["tools.simulator"] = cfg.tools.simulator if cfg.tools else None
    routes: dict[str, Route] = {}
    for where, model in models.items():
        if model is None:
            continue
        try:
            routes[where] = resolve_route(model)
        except AfterimageError as exc:
            raise type(exc)(f"{where}: {exc}") from None
    return routes


def check_batch_mode(cfg: Config) -> None:
    """In batch mode every model an item calls must speak a batch protocol (providers/batch): refused before
    the run, naming the model block, rather than at its first round."""
    if cfg.generation.mode != "batch":
        return
    for where, model in budgeted_models(cfg):
        if where == "persona_generation.model":
            continue  # called before the first item, online
        if isinstance(model.api_base, list) or model.deployments:
            raise ConfigError(f"{where}: {SEVERAL_ENDPOINTS_IN_BATCH_MODE}")
        spec = parse_model(model.model, api_base=next(iter(model.api_base_urls), None), provider=model.provider)
        if getattr(providers.resolve(spec.provider, f"{where}.provider"), "batch_protocol", None) is None:
            raise ConfigError(
                f"{where}: {model.model} cannot run in batch mode (generation.mode / --mode batch): it goes "
                f"through the {spec.provider} transport, and batch mode needs an OpenAI-protocol model (openai/…, "
                "azure/…, an api_base server with /v1/batches) or an Anthropic model (anthropic/…)"
            )


def check_components(cfg: Config, resources: Resources | None = None) -> list[str]:
    """Resolve every named component as a run would, calling no plugin, and return warnings; raise on errors."""
    check_model("respondent", cfg.respondent)
    if cfg.correspondent:
        check_model("correspondent", cfg.correspondent)
    check_batch_mode(cfg)
    resources = resources or Resources(cfg)
    check_tools(cfg, resources)
    instruction_generator = checked_instruction_generator(cfg, resources)
    check_modifiers(cfg, resources)
    storage.resolve(cfg.storage.type, "storage.type")
    if cfg.retriever is not None:
        retrievers.resolve(cfg.retriever.type, "retriever.type")
    require_prices(cfg.budget.max_cost_usd, budgeted_models(cfg))
    if cfg.personas_file and resources.personas_to_generate:
        writable_format(cfg.personas_file)  # a suffix the generated personas cannot be saved as
    warnings: list[str] = []
    warnings += grounding_warnings(cfg, resources, instruction_generator)
    if any(m.name == "persona" for m in cfg.modifiers) and not (
        cfg.personas or cfg.personas_file or cfg.persona_generation
    ):
        warnings.append("the 'persona' modifier is listed but no personas are configured")
    return warnings


def check_tools(cfg: Config, resources: Resources) -> None:
    """The tools section as a run would use it: definitions read (an MCP server's need the `mcp` package; they are
    listed only by the run, which starts it), the simulator's model resolved, the Python function imported."""
    tools = cfg.tools
    if tools is None:
        return
    if tools.from_mcp is not None:
        from .tools.mcp import require_mcp

        require_mcp()
    else:
        resources.tool_set()
    if tools.simulator is not None:
        check_model("tools.simulator", tools.simulator)
    if tools.results == "python":
        from .tools.sources import python_function

        assert tools.python is not None  # the config requires it
        python_function(tools.python)


def grounding_warnings(cfg: Config, resources: Resources, instruction_generator: Any) -> list[str]:
    """Check documents, personas and stopping rules as a run would (raising ConfigError); return warnings.

    `instruction_generator` is the built generator, or a plugin's class (plugins are not built to check)."""
    warnings = []
    if cfg.documents is not None:
        resources.corpus()
    if cfg.personas_file and (cfg.persona_generation is None or Path(cfg.personas_file).exists()):
        resources.known_personas()
    if cfg.retriever is not None and not any(m.name == "rag" for m in cfg.modifiers):
        warnings.append("a `retriever:` is configured but no 'rag' modifier uses it")
    if cfg.persona_generation is not None and cfg.documents is None:
        warnings.append("persona_generation without documents: personas are written from the system prompt")
    has_personas = bool(cfg.personas or cfg.personas_file or cfg.persona_generation)
    if getattr(instruction_generator, "use_persona", False) and not has_personas:
        warnings.append(f"instructions.generator {cfg.instructions.generator!r} writes as a persona, but none are set")
    rule = cfg.generation.stop_when
    if rule is not None and rule.chunk_coverage is not None:
        if isinstance(instruction_generator, type):  # a plugin's class: it is not built just to check
            coverage_method(instruction_generator)
        else:
            chunk_coverage_target(instruction_generator, rule.chunk_coverage)
    if rule is not None and rule.all_personas_used and not has_personas:
        raise ConfigError(
            "generation.stop_when.all_personas_used needs personas (personas, personas_file or persona_generation)"
        )
    return warnings
