"""Builds a run from a Config: providers, callbacks, storage and the generator, wired."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .components import build_instruction_generator, build_modifiers, build_storage, check_components
from .config import Config
from .engine.call_stack import batch_rounds, build_provider, open_cache
from .engine.fingerprint import grounded_fingerprint
from .engine.ledger import ledger_path
from .engine.retry import ErrorBudget
from .engine.rounds import BatchRounds
from .engine.served import aidentify_served
from .generators.base import BaseGenerator
from .generators.turn_hygiene import TurnHygiene
from .hygiene import TurnChecker
from .monitor import GenerationMonitor
from .providers.base import LLMProvider
from .providers.cache import ResponseCache
from .resources import Resources


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
    rounds: BatchRounds | None = None  # batch mode

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
        if self.rounds is not None:
            await self.rounds.aclose()
        for provider in self.providers:
            await provider.aclose()
        if self.resources is not None:
            await self.resources.aclose()
        if self.cache is not None:
            self.cache.close()


def build_quality_gate(
    cfg: Config,
    respondent: LLMProvider,
    budget: ErrorBudget,
    monitor: GenerationMonitor,
    cache: ResponseCache | None,
    rounds: BatchRounds | None = None,
) -> tuple[LLMProvider | None, Any]:
    """(the judge's own raw provider or None, generate's quality gate or None when auto_improve is off)."""
    if not cfg.quality.auto_improve:
        return None, None
    from .evaluation.judge import ConversationJudge
    from .evaluation.quality import QualityGate

    raw, judge = None, respondent  # without evaluation.judge the respondent judges, through its own limiter
    if cfg.evaluation.judge is not None:
        raw, judge = build_provider(cfg.evaluation.judge, cfg, budget, monitor, cache, "evaluation.judge", rounds)
    return raw, QualityGate(ConversationJudge(judge, cfg.evaluation), cfg.quality)


def build_preference_generator(
    cfg: Config,
    common: dict[str, Any],
    budget: ErrorBudget,
    monitor: GenerationMonitor,
    cache: ResponseCache | None,
    rounds: BatchRounds | None,
) -> tuple[BaseGenerator, dict[str, tuple[LLMProvider, LLMProvider]]]:
    """The generator of `generation.kind: preference`, and the roles of the models it adds (the judge, the
    rejected model, the policy), whose servers are asked what they serve like the respondent's."""
    from .evaluation.judge import ConversationJudge
    from .evaluation.pair_stats import PairStats
    from .evaluation.pairwise import PairwiseJudge
    from .generators.preference import PreferenceGenerator

    settings = cfg.preference_settings
    roles: dict[str, tuple[LLMProvider, LLMProvider]] = {}
    if cfg.evaluation.judge is not None:
        roles["judge"] = build_provider(cfg.evaluation.judge, cfg, budget, monitor, cache, "evaluation.judge", rounds)
    for role in ("rejected_model", "policy"):
        model = getattr(settings, role)
        if model is not None:
            roles[role] = build_provider(model, cfg, budget, monitor, cache, f"preference.{role}", rounds)
    # Without evaluation.judge the respondent judges, through its own limiter.
    judge = roles["judge"][1] if "judge" in roles else common["respondent"]
    stats = PairStats()
    monitor.pairs = stats
    generator = PreferenceGenerator(
        preference=settings,
        judge=PairwiseJudge(ConversationJudge(judge, cfg.evaluation)),
        stats=stats,
        rejected_model=roles["rejected_model"][1] if "rejected_model" in roles else None,
        policy=roles["policy"][1] if "policy" in roles else None,
        **common,
    )
    return generator, roles


def build_tool_generator(
    cfg: Config,
    common: dict[str, Any],
    resources: Resources,
    budget: ErrorBudget,
    monitor: GenerationMonitor,
    cache: ResponseCache | None,
    rounds: BatchRounds | None,
) -> tuple[BaseGenerator, dict[str, tuple[LLMProvider, LLMProvider]]]:
    """The generator of a config with `tools:`, and the role of the simulator's own model (when it has one)."""
    from .generators.tool_use import ToolConversationGenerator
    from .tools.chat import Toolbox
    from .tools.sources import build_source

    tools = cfg.tools
    assert tools is not None
    roles: dict[str, tuple[LLMProvider, LLMProvider]] = {}
    simulator = common["correspondent"]  # without tools.simulator, the simulated user's model writes results
    if tools.simulator is not None:
        own = build_provider(tools.simulator, cfg, budget, monitor, cache, "tools.simulator", rounds)
        roles["tool_simulator"], simulator = own, own[1]
    source = build_source(tools, simulator, lambda: resources.mcp)
    toolbox = Toolbox(tools, lambda: resources.tool_set("tools"), source)
    return ToolConversationGenerator(toolbox=toolbox, **common), roles


def build_hygiene(cfg: Config, instruction_generator: Any, monitor: GenerationMonitor) -> TurnHygiene:
    """The run's turn checks (hygiene), with the run's own prompts as scaffolding a turn must not leak."""
    hygiene = cfg.hygiene
    own_prompt = getattr(instruction_generator, "prompt", None)
    templates = [cfg.generation.system_prompt, own_prompt if isinstance(own_prompt, str) else None]
    checker = TurnChecker.from_config(hygiene, [t for t in templates if t])
    # At a low temperature the same request gives the same answer: a regeneration is sampled hotter.
    floor = hygiene.regeneration_temperature
    models = {"assistant": cfg.respondent, "user": cfg.user_model}
    hotter = {
        role: {"temperature": floor}
        for role, model in models.items()
        if model.temperature is not None and model.temperature < floor
    }
    return TurnHygiene(
        checker,
        max_regenerations=hygiene.max_regenerations,
        on_truncated=cfg.generation.on_truncated,
        seed=cfg.generation.seed,
        hotter=hotter,
        on_regeneration=monitor.record_regeneration,
    )


def build_run(cfg: Config, monitor: GenerationMonitor, resources: Resources | None = None) -> Run:
    """Wire providers (with retries and the error budget), callbacks, storage and the generator; `resources`
    when the run's documents are already loaded (a Ray worker's, shipped by the driver)."""
    from .generators.conversation import ConversationGenerator
    from .generators.structured import StructuredGenerator

    resources = resources or Resources(cfg)
    check_components(cfg, resources)
    budget = ErrorBudget(cfg.error_budget)
    resources.budget = budget
    cache = open_cache(cfg)
    rounds = batch_rounds(cfg, monitor) if cfg.generation.mode == "batch" else None
    respondent_raw, respondent = build_provider(cfg.respondent, cfg, budget, monitor, cache, "respondent", rounds)
    correspondent_raw, correspondent = respondent_raw, respondent
    if cfg.correspondent:
        correspondent_raw, correspondent = build_provider(
            cfg.correspondent, cfg, budget, monitor, cache, "correspondent", rounds
        )
    resources.persona_llm = correspondent
    if cfg.persona_generation is not None and cfg.persona_generation.model is not None:
        persona_raw, resources.persona_llm = build_provider(
            cfg.persona_generation.model, cfg, budget, monitor, where="persona_generation.model"
        )
        resources.owned_providers.append(persona_raw)
    fingerprint = grounded_fingerprint(cfg, resources, resources.known_personas())
    gen = cfg.generation
    instruction_generator = build_instruction_generator(cfg, correspondent, resources)
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
        instruction_generator=instruction_generator,
        modifiers=build_modifiers(cfg, resources),
        system_prompt=gen.system_prompt,
        hygiene=build_hygiene(cfg, instruction_generator, monitor),
        ledger_path=ledger_path(cfg.storage.path),
        max_rejected_share=cfg.error_budget.max_rejected_share,
    )
    judge_raw, common["quality_gate"] = build_quality_gate(cfg, respondent, budget, monitor, cache, rounds)
    roles = {"respondent": (respondent_raw, respondent), "correspondent": (correspondent_raw, correspondent)}
    if judge_raw is not None:  # a judge of its own decides rows through the quality gate
        roles["judge"] = (judge_raw, common["quality_gate"].judge.provider)
    generator: BaseGenerator
    if gen.kind == "structured":
        assert gen.output_schema is not None
        common.update(min_turns=1, max_turns=1)
        generator = StructuredGenerator(schema=gen.output_schema, **common)
    elif gen.kind == "preference":
        generator, preference_roles = build_preference_generator(cfg, common, budget, monitor, cache, rounds)
        roles.update(preference_roles)
    elif cfg.tools is not None:
        generator, tool_roles = build_tool_generator(cfg, common, resources, budget, monitor, cache, rounds)
        roles.update(tool_roles)
    else:
        generator = ConversationGenerator(**common)
    generator.rounds = rounds
    distinct = [respondent_raw] if correspondent_raw is respondent_raw else [respondent_raw, correspondent_raw]
    distinct += [judge_raw] if judge_raw is not None else []
    distinct += [raw for role, (raw, _) in roles.items() if role not in ("respondent", "correspondent", "judge")]
    if "judge" in roles and judge_raw is None:
        distinct.append(roles["judge"][0])
    return Run(
        cfg=cfg,
        generator=generator,
        monitor=monitor,
        fingerprint=fingerprint,
        providers=distinct,
        resources=resources,
        cache=cache,
        roles=roles,
        rounds=rounds,
    )
