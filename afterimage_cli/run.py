"""Running `generate` from a resolved Config: execute (with the monitor) and preview (--dry-run)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import yaml
from rich.console import Console

from .components import checked_instruction_generator
from .config import Config
from .engine.fingerprint import grounded_fingerprint
from .engine.items import ItemPlanner
from .errors import BudgetExceeded, RunAborted
from .monitor import GenerationMonitor
from .pipeline import build_run, check_components
from .providers.factory import model_batch_price, model_price
from .providers.logging import warn
from .resources import Resources
from .stopping import chunk_coverage_target, items_until_all_used, target_items

ASSUMED_ANSWER_TOKENS = 300
ASSUMED_QUESTION_TOKENS = 40


def execute(
    cfg: Config, *, overwrite: bool, quiet: bool, console: Console, retry_rejected: bool = False
) -> dict[str, Any]:
    """Run to exactly num_conversations rows (resuming), print the summary, return it."""
    monitor = GenerationMonitor(cfg.generation.num_conversations, console)
    run = build_run(cfg, monitor)

    async def main() -> Any:
        try:
            await run.aprepare(None if quiet else console.print)  # personas and the retrieval index
            target = target_items(cfg, run.generator)  # num_conversations, or what generation.stop_when needs
            monitor.target = target
            with monitor.display("quiet" if quiet else "progress"):
                return await run.generator.run(target, overwrite=overwrite, retry_rejected=retry_rejected)
        finally:
            await run.aclose()

    try:
        asyncio.run(main())
    except RunAborted as exc:
        if not quiet:
            monitor.print_summary("stopped")
        which = _budget_named(cfg, monitor) if isinstance(exc, BudgetExceeded) else ""
        raise RunAborted(
            f"{exc}{which}; the {monitor.rows_written + monitor.rows_resumed} rows written are kept "
            "(re-run the same command to resume)"
        ) from None
    if not quiet:
        monitor.print_summary()
    beyond = rows_beyond_target(run.generator.storage.rows_on_open, monitor)
    if beyond:
        _warn_beyond_target(cfg, monitor.target, beyond)
    return {**monitor.summary(), "rows_beyond_target": beyond}


def rows_beyond_target(rows_on_open: int | None, monitor: GenerationMonitor) -> int:
    """Rows the output holds beyond the target: a smaller -n never deletes rows a larger one wrote."""
    if rows_on_open is None:
        return 0
    return max(0, rows_on_open + monitor.rows_written - monitor.target)


def _warn_beyond_target(cfg: Config, target: int, beyond: int) -> None:
    """Say so, loudly (even with -q): the output is not the exact count the user asked for."""
    path = cfg.storage.path
    how = (
        f" For exactly {target:,}: afterimage export {path} --limit {target} --format …, or for the rows "
        f"themselves: head -n {target} {path}"
        if cfg.storage.type == "jsonl"
        else ""
    )
    warn(
        f"{path} holds {target + beyond:,} rows, {beyond:,} more than the {target:,} asked for "
        f"(a smaller -n never deletes rows).{how}",
        once=False,
    )


def _budget_named(cfg: Config, monitor: GenerationMonitor) -> str:
    """Which setting the budget that stopped the run is, so the user knows what to raise."""
    limit = cfg.budget.max_total_tokens
    if limit is not None and monitor.usage.prompt_tokens + monitor.usage.completion_tokens >= limit:
        return " (--max-total-tokens, budget.max_total_tokens)"
    return " (--max-cost, budget.max_cost_usd)"


def _expected_turns(cfg: Config) -> float:
    gen = cfg.generation
    return 1.0 if gen.kind == "structured" else (gen.min_turns + gen.max_turns) / 2


def estimate(cfg: Config) -> dict[str, Any]:
    """Calls and tokens for the whole run, from the turn range and assumed message lengths."""
    gen = cfg.generation
    turns = _expected_turns(cfg)
    options = cfg.instructions.options
    topics, verbatim = len(options.get("topics") or []), len(options.get("instructions") or [])
    instruction_calls = topics / (topics + verbatim) if topics + verbatim else 1.0
    answer = cfg.respondent.max_tokens or ASSUMED_ANSWER_TOKENS
    system = len(gen.system_prompt) // 4 + 1
    # Each call re-reads the growing dialog, so input grows quadratically with turns; average over the
    # turn counts an item can draw (uniform between min_turns and max_turns).
    counts = [1] if gen.kind == "structured" else list(range(gen.min_turns, gen.max_turns + 1))
    respondent_in = sum(
        sum(system + k * ASSUMED_QUESTION_TOKENS + (k - 1) * answer for k in range(1, t + 1)) for t in counts
    ) / len(counts)
    simulator_in = sum(sum(k * (ASSUMED_QUESTION_TOKENS + answer) for k in range(1, t)) for t in counts) / len(counts)

    per_item_calls = instruction_calls + turns + max(turns - 1, 0)
    per_item_in = respondent_in + simulator_in + instruction_calls * 60
    per_item_out = turns * answer + (turns - 1 + instruction_calls) * ASSUMED_QUESTION_TOKENS
    n = gen.num_conversations
    batch = gen.mode == "batch"
    price_of = model_batch_price if batch else model_price
    price = price_of(cfg.respondent)
    user_price = price_of(cfg.user_model)
    cost = None
    if price is not None and user_price is not None:
        # Split by role: the respondent's share is its own calls; the rest is the simulated user's.
        share = (turns / per_item_calls) if per_item_calls else 1.0
        cost = n * (
            share * (per_item_in * price.input + per_item_out * price.output)
            + (1 - share) * (per_item_in * user_price.input + per_item_out * user_price.output)
        )
    rounds: dict[str, Any] = {}
    if batch:
        # Each item makes its calls one per round; items_in_flight of them advance together, in waves.
        calls_per_item = math.ceil(instruction_calls) + (1 if gen.kind == "structured" else 2 * gen.max_turns - 1)
        rounds = {"mode": "batch", "rounds": calls_per_item * math.ceil(n / cfg.batch.items_in_flight)}
    return {
        **rounds,
        "conversations": n,
        "llm_calls": round(per_item_calls * n),
        "prompt_tokens": round(per_item_in * n),
        "completion_tokens": round(per_item_out * n),
        "cost_usd": None if cost is None else round(cost, 4),
        "assumptions": f"{answer} tokens per answer, {ASSUMED_QUESTION_TOKENS} per question, "
        f"{turns:g} turns on average",
    }


def preview(cfg: Config, items: int = 3) -> dict[str, Any]:
    """What --dry-run shows: the resolved config, the first items' plans and prompts, and an estimate."""
    cfg = with_planned_target(cfg)
    warnings = check_components(cfg)
    personas = Resources(cfg).known_personas()
    gen = cfg.generation
    planner = ItemPlanner(gen.seed, personas, gen.min_turns, gen.max_turns)
    plans = []
    for index in range(min(items, gen.num_conversations)):
        plan = planner.plan(index)
        persona = plan.persona.description if plan.persona else None
        plans.append({"item": index, "persona": persona, "turns": plan.num_turns})

    est = estimate(cfg)
    resolved = cfg.model_dump(mode="json")
    served_elsewhere = any(m.api_base for m in (cfg.respondent, cfg.user_model))
    lines = [
        "# resolved config",
        yaml.safe_dump(resolved, sort_keys=False).rstrip(),
        "",
        f"# run fingerprint: {grounded_fingerprint(cfg, Resources(cfg), personas)[:16]}"
        + (" (a run adds the model its api_base server serves)" if served_elsewhere else ""),
        "# respondent system prompt:",
        *(f"#   {line}" for line in cfg.generation.system_prompt.splitlines()),
        "# first items:",
        *(f"#   item {p['item']}: {p['turns']} turn(s), persona: {p['persona'] or '-'}" for p in plans),
        f"# estimate: {est['llm_calls']:,} LLM calls, {est['prompt_tokens']:,} prompt tokens, "
        f"{est['completion_tokens']:,} completion tokens, "
        + ("cost unknown (unpriced model)" if est["cost_usd"] is None else f"~${est['cost_usd']:,.4f}")
        + f" ({est['assumptions']})"
        + (f"; batch mode: at batch prices, about {est['rounds']} rounds" if "rounds" in est else ""),
        *(f"# warning: {w}" for w in warnings),
    ]
    return {"config": resolved, "items": plans, "estimate": est, "warnings": warnings, "text": "\n".join(lines)}


def with_planned_target(cfg: Config) -> Config:
    """For --dry-run: the config with num_conversations set to what its stopping rule needs, when that is
    known without a model (chunk coverage always; personas once they are inline or saved)."""
    rule = cfg.generation.stop_when
    if rule is None:
        return cfg
    resources = Resources(cfg)
    if rule.chunk_coverage is not None:
        generator = checked_instruction_generator(cfg, resources)
        if isinstance(generator, type):  # a plugin: only the run builds it, and only it can count
            return cfg
        target = chunk_coverage_target(generator, rule.chunk_coverage)
    else:
        personas = resources.known_personas()
        if resources.personas_to_generate or not personas:
            return cfg
        planner = ItemPlanner(cfg.generation.seed, personas, cfg.generation.min_turns, cfg.generation.max_turns)
        target = items_until_all_used(personas, lambda index: planner.plan(index).persona)
    generation = cfg.generation.model_copy(update={"num_conversations": target})
    return cfg.model_copy(update={"generation": generation})
