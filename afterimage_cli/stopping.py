"""Stopping rules (`generation.stop_when`) turned into a number of items, so runs stay exact and resumable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .config import Config
from .errors import ConfigError
from .types import Persona

MAX_ITEMS = 1_000_000


def items_until_all_used(personas: Sequence[Persona], persona_of: Callable[[int], Persona | None]) -> int:
    """The smallest n such that items 0..n-1 drew every persona at least once."""
    remaining = {id(p) for p in personas}
    for index in range(MAX_ITEMS):
        persona = persona_of(index)
        remaining.discard(id(persona))
        if not remaining:
            return index + 1
    raise ConfigError(f"generation.stop_when.all_personas_used: not every persona is drawn in {MAX_ITEMS:,} items")


def coverage_method(instruction_generator: Any) -> Any:
    """The generator's `items_to_cover` (bound, or on its class); ConfigError when it has none."""
    cover = getattr(instruction_generator, "items_to_cover", None)
    if cover is None:
        raise ConfigError(
            "generation.stop_when.chunk_coverage needs an instruction generator that samples document chunks "
            "(instructions.generator: contextual or persona)"
        )
    return cover


def chunk_coverage_target(instruction_generator: Any, times: int) -> int:
    """Items needed for every chunk to be the context `times` times."""
    return int(coverage_method(instruction_generator)(times))


def target_items(cfg: Config, generator: Any) -> int:
    """How many items the run makes: num_conversations, or what the stopping rule needs."""
    rule = cfg.generation.stop_when
    if rule is None:
        return cfg.generation.num_conversations
    if rule.chunk_coverage is not None:
        return chunk_coverage_target(getattr(generator, "instruction_generator", None), rule.chunk_coverage)
    personas = list(generator.personas)
    if not personas:
        raise ConfigError(
            "generation.stop_when.all_personas_used needs personas (personas, personas_file or persona_generation)"
        )
    return items_until_all_used(personas, lambda index: generator.plan(index).persona)
