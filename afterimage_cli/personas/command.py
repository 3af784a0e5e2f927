"""What `afterimage personas` does: generate the config's persona tree with its model and save it."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from rich.console import Console

from ..config import Config
from ..errors import ConfigError
from .store import save_personas, writable_format
from .tree import PersonaTree


def generate_personas(cfg: Config, console: Console | None = None) -> PersonaTree:
    """Build the persona tree `persona_generation:` describes, with retries and the error budget."""
    from ..engine.call_stack import build_provider
    from ..engine.retry import ErrorBudget
    from ..monitor import GenerationMonitor
    from ..resources import Resources

    pg = cfg.persona_generation
    if pg is None:
        raise ConfigError("personas: the config has no `persona_generation:` section to generate from")
    monitor = GenerationMonitor(pg.tree_size, console)
    where = "persona_generation.model" if pg.model else ("correspondent" if cfg.correspondent else "respondent")
    raw, llm = build_provider(pg.model or cfg.user_model, cfg, ErrorBudget(cfg.error_budget), monitor, where=where)
    resources = Resources(cfg, persona_llm=llm)

    async def main() -> PersonaTree:
        try:
            return await resources.agenerate_persona_tree()
        finally:
            await resources.aclose()
            await raw.aclose()

    return asyncio.run(main())


def write_personas(cfg: Config, output: str | None, console: Console | None = None) -> dict[str, Any]:
    """Generate and save to `output` (default: personas_file); a summary of what was written."""
    target = output or cfg.personas_file
    if not target:
        raise ConfigError("personas: give -o FILE or set personas_file in the config")
    writable_format(target, "-o" if output else "personas_file")
    tree = generate_personas(cfg, console)
    save_personas(target, tree.personas, tree.parents)
    depths = Counter(p.depth for p in tree.personas)
    by_depth = {str(depth): count for depth, count in sorted(depths.items())}  # JSON keys are strings
    return {"output": target, "personas": len(tree.personas), "by_depth": by_depth}
