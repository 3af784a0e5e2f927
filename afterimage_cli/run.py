"""Running `generate` from a resolved Config: execute (with the monitor) and preview (--dry-run)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import orjson
import yaml
from rich.console import Console

from .components import checked_instruction_generator, model_routes
from .config import Config, ModelConfig
from .engine.fingerprint import grounded_fingerprint
from .engine.items import ItemPlanner
from .engine.spend import budgeted_models
from .errors import BudgetExceeded, RunAborted, UsageError
from .monitor import GenerationMonitor
from .pipeline import build_run, check_components
from .providers.factory import model_batch_price, model_price
from .providers.logging import warn
from .resources import Resources
from .stopping import chunk_coverage_target, items_until_all_used, target_items

ASSUMED_ANSWER_TOKENS = 300
ASSUMED_QUESTION_TOKENS = 40
ASSUMED_TOOL_CALLS = 1  # per respondent turn of a run with tools
ASSUMED_RESULT_TOKENS = 80


def execute(
    cfg: Config, *, overwrite: bool, quiet: bool, console: Console, retry_rejected: bool = False
) -> dict[str, Any]:
    """Run to exactly num_conversations rows (resuming), print the summary, return it."""
    on_ray = cfg.execution.executor == "ray"
    if on_ray:
        _check_ray(cfg)
    monitor = GenerationMonitor(cfg.generation.num_conversations, console)
    run = build_run(cfg, monitor)

    async def main() -> Any:
        try:
            await run.aprepare(None if quiet else console.print)  # personas and the retrieval index
            target = target_items(cfg, run.generator)  # num_conversations, or what generation.stop_when needs
            monitor.target = target
            with monitor.display("quiet" if quiet else "progress"):
                if on_ray:
                    from .engine.ray_executor import run_on_ray

                    say = None if quiet else console.print
                    return await run_on_ray(
                        run, target, cfg.execution, overwrite=overwrite, retry_rejected=retry_rejected, say=say
                    )
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


def _check_ray(cfg: Config) -> None:
    """Before anything is built: Ray is installed, and the run is one it can spread over workers."""
    from .engine.ray_executor import require_ray

    require_ray()
    if cfg.generation.mode == "batch":
        raise UsageError(
            "--executor ray runs online calls on many workers; batch mode (--mode batch) runs in one process: "
            "drop one of them"
        )
    for field, model in budgeted_models(cfg):
        limited = _endpoint_limits(model)
        if limited:
            # A model's own rpm/tpm/max_concurrency are held by one coordinator for all workers; an endpoint's
            # are held by each worker's replica set, so K workers would allow K times the limit.
            raise UsageError(
                f"{field}.{limited}: with --executor ray an endpoint's own limits would apply per worker; set the "
                f"limit on the model block ({field}.rpm / tpm / max_concurrency), which all workers share"
            )


def _endpoint_limits(model: ModelConfig) -> str | None:
    """The first per-endpoint limit a model block sets (`api_base[1].max_concurrency`, `deployments[0].rpm`)."""
    replicas = model.api_base if isinstance(model.api_base, list) else []
    for index, replica in enumerate(replicas):
        if not isinstance(replica, str) and replica.max_concurrency is not None:
            return f"api_base[{index}].max_concurrency"
    for index, deployment in enumerate(model.deployments or ()):
        for name in ("max_concurrency", "rpm", "tpm"):
            if getattr(deployment, name) is not None:
                return f"deployments[{index}].{name}"
    return None


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


def _turn_counts(cfg: Config) -> list[tuple[int, float]]:
    """(turns, probability) of an item's dialog: uniform between min_turns and max_turns; a preference run with
    at_turn random cuts its dialog at a turn drawn uniformly from the first to the planned last."""
    gen = cfg.generation
    if gen.kind == "structured":
        return [(1, 1.0)]
    planned = range(gen.min_turns, gen.max_turns + 1)
    if gen.kind == "preference" and cfg.preference_settings.at_turn == "random":
        cut: dict[int, float] = {}
        for t in planned:
            for r in range(1, t + 1):
                cut[r] = cut.get(r, 0.0) + 1 / (t * len(planned))
        return sorted(cut.items())
    return [(t, 1 / len(planned)) for t in planned]


def _expected_turns(cfg: Config) -> float:
    return sum(t * w for t, w in _turn_counts(cfg))


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
    counts = _turn_counts(cfg)
    respondent_in = sum(
        w * sum(system + k * ASSUMED_QUESTION_TOKENS + (k - 1) * answer for k in range(1, t + 1)) for t, w in counts
    )
    simulator_in = sum(w * sum(k * (ASSUMED_QUESTION_TOKENS + answer) for k in range(1, t)) for t, w in counts)

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
    pairs = _pair_calls(cfg, turns, answer) if gen.kind == "preference" else None
    steps = _tool_steps(cfg, counts, answer) if cfg.tools is not None else None
    if steps is not None:
        per_item_calls += steps["calls"]
        per_item_in += steps["prompt_tokens"]
        per_item_out += steps["completion_tokens"]
        cost = None if cost is None or steps["cost"] is None else cost + n * steps["cost"]
    rounds: dict[str, Any] = {}
    if batch:
        # Each item makes its calls one per round; items_in_flight of them advance together, in waves.
        calls_per_item = math.ceil(instruction_calls) + (1 if gen.kind == "structured" else 2 * gen.max_turns - 1)
        calls_per_item += math.ceil(pairs["branches"]) if pairs else 0  # each branch's judging is one more round
        calls_per_item += steps["rounds_per_turn"] * gen.max_turns if steps else 0  # each tool step is a round
        rounds = {"mode": "batch", "rounds": calls_per_item * math.ceil(n / cfg.batch.items_in_flight)}
    extra: dict[str, Any] = {}
    if steps is not None:
        extra = {"calls_per_row": round(per_item_calls, 1), "tool_calls_per_row": round(steps["tool_calls"], 1)}
    if pairs is not None:
        per_item_calls += pairs["calls"]
        per_item_in += pairs["prompt_tokens"]
        per_item_out += pairs["completion_tokens"]
        cost = None if cost is None or pairs["cost"] is None else cost + n * pairs["cost"]
        extra = {"calls_per_row": round(per_item_calls, 1), "pair_calls_per_row": round(pairs["calls"], 1)}
    return {
        **rounds,
        "conversations": n,
        "llm_calls": round(per_item_calls * n),
        "prompt_tokens": round(per_item_in * n),
        "completion_tokens": round(per_item_out * n),
        "cost_usd": None if cost is None else round(cost, 4),
        **extra,
        "assumptions": f"{answer} tokens per answer, {ASSUMED_QUESTION_TOKENS} per question, "
        f"{turns:g} turns on average"
        + (", no pair dropped by the judge" if pairs else "")
        + (f", {ASSUMED_TOOL_CALLS} tool call per turn of {ASSUMED_RESULT_TOKENS} result tokens" if steps else ""),
    }


def _tool_steps(cfg: Config, counts: list[tuple[int, float]], answer: int) -> dict[str, Any]:
    """What tools add to a dialog, assuming one call per turn: the definitions in every respondent request, the
    step that asks for the call and, with results: simulate, the simulator's call that writes its result."""
    from .tools.definitions import configured_tools

    tools = cfg.tools
    assert tools is not None
    known = configured_tools(tools)  # an MCP server's tools are listed only by the run: a guess of 5 tools
    definitions = len(orjson.dumps(known.openai())) // 4 + 1 if known is not None else 5 * 100
    simulated = tools.results == "simulate"
    system = len(cfg.generation.system_prompt) // 4 + 1
    call = 30  # the tokens of one call (name and arguments)
    turns = sum(t * w for t, w in counts)
    # Each turn's request now carries the definitions; the step after the call re-reads it with the call and result.
    request = sum(
        w * sum(system + k * ASSUMED_QUESTION_TOKENS + (k - 1) * answer for k in range(1, t + 1)) for t, w in counts
    )
    step_in = turns * (definitions * 2 + call + ASSUMED_RESULT_TOKENS) + request
    simulator_in = turns * (200 + ASSUMED_QUESTION_TOKENS) if simulated else 0
    simulator_out = turns * ASSUMED_RESULT_TOKENS if simulated else 0
    price_of = model_batch_price if cfg.generation.mode == "batch" else model_price
    respondent_price = price_of(cfg.respondent)
    simulator_price = price_of(tools.simulator or cfg.user_model)
    cost = None
    if respondent_price is not None and simulator_price is not None:
        cost = step_in * respondent_price.input + turns * call * respondent_price.output
        cost += simulator_in * simulator_price.input + simulator_out * simulator_price.output
    return {
        "calls": turns * (ASSUMED_TOOL_CALLS + (1 if simulated else 0)),
        "tool_calls": turns * ASSUMED_TOOL_CALLS,
        "prompt_tokens": step_in + simulator_in,
        "completion_tokens": turns * call + simulator_out,
        "cost": cost,
        "rounds_per_turn": 2 if simulated else 1,
    }


def _pair_calls(cfg: Config, turns: float, answer: int) -> dict[str, Any]:
    """What a preference item adds to its dialog: the candidates beyond the respondent's own answer and two judge
    calls (both orders) per branch; tokens and cost at each model's price. Items whose pair is dropped are
    replaced, so a run pays this again for each: divide by the share of pairs kept."""
    settings = cfg.preference_settings
    branches = turns if settings.at_turn == "every" else 1.0
    count = 2 if settings.strategy in ("models", "degrade") else settings.candidates
    extra_candidates = count - 1  # on_policy writes every candidate, but the respondent's answer is not asked for
    writer = {"models": settings.rejected_model, "on_policy": settings.policy}.get(settings.strategy) or cfg.respondent
    judge = cfg.evaluation.judge or cfg.respondent
    system = len(cfg.generation.system_prompt) // 4 + 1
    history = system + turns * ASSUMED_QUESTION_TOKENS + (turns - 1) * answer  # the request at a branch, about
    judge_in = history + count * answer + 200  # the conversation, the candidates and the instructions
    judge_out = count * 60 + 60
    price_of = model_batch_price if cfg.generation.mode == "batch" else model_price
    writer_price, judge_price = price_of(writer), price_of(judge)
    cost = None
    if writer_price is not None and judge_price is not None:
        cost = branches * (
            extra_candidates * (history * writer_price.input + answer * writer_price.output)
            + 2 * (judge_in * judge_price.input + judge_out * judge_price.output)
        )
    return {
        "branches": branches,
        "calls": branches * (extra_candidates + 2),
        "prompt_tokens": branches * (extra_candidates * history + 2 * judge_in),
        "completion_tokens": branches * (extra_candidates * answer + 2 * judge_out),
        "cost": cost,
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
    routes = model_routes(cfg)
    served_elsewhere = any(r.serves_elsewhere for w, r in routes.items() if w in ("respondent", "correspondent"))
    lines = [
        "# resolved config",
        yaml.safe_dump(resolved, sort_keys=False).rstrip(),
        "",
        f"# run fingerprint: {grounded_fingerprint(cfg, Resources(cfg), personas)[:16]}"
        + (" (a run adds the model its api_base server serves)" if served_elsewhere else ""),
        "# transports:",
        *(f"#   {where}: {route.describe()}" for where, route in routes.items()),
        "# respondent system prompt:",
        *(f"#   {line}" for line in cfg.generation.system_prompt.splitlines()),
        "# first items:",
        *(f"#   item {p['item']}: {p['turns']} turn(s), persona: {p['persona'] or '-'}" for p in plans),
        f"# estimate: {est['llm_calls']:,} LLM calls, {est['prompt_tokens']:,} prompt tokens, "
        f"{est['completion_tokens']:,} completion tokens, "
        + ("cost unknown (unpriced model)" if est["cost_usd"] is None else f"~${est['cost_usd']:,.4f}")
        + f" ({est['assumptions']})"
        + (f"; batch mode: at batch prices, about {est['rounds']} rounds" if "rounds" in est else "")
        + (
            f"; {est['calls_per_row']:g} calls per row, {est['pair_calls_per_row']:g} of them candidates and judging"
            if "pair_calls_per_row" in est
            else ""
        )
        + (
            f"; {est['calls_per_row']:g} LLM calls per row, making {est['tool_calls_per_row']:g} tool calls"
            if "tool_calls_per_row" in est
            else ""
        ),
        *(f"# warning: {w}" for w in warnings),
    ]
    transports = {where: route.describe() for where, route in routes.items()}
    return {
        "config": resolved,
        "transports": transports,
        "items": plans,
        "estimate": est,
        "warnings": warnings,
        "text": "\n".join(lines),
    }


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
