"""`afterimage evaluate` as a library call: resolve flags and config, run, report."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from ..config import Config, EvaluationConfig, HygieneConfig, ModelConfig
from ..config_loader import load_config
from ..engine.call_stack import batch_rounds, build_provider, open_cache
from ..engine.ledger import RunLedger, ledger_path
from ..engine.retry import ErrorBudget
from ..engine.served import aserved_by_set, aserved_model, asks_for_served_model
from ..engine.spend import require_prices
from ..errors import RunAborted, UsageError
from ..export.reader import RowReader
from ..hygiene import TurnChecker
from ..monitor import GenerationMonitor
from ..providers.base import BaseProvider
from ..providers.factory import LLMFactory
from ..providers.replicas import ReplicaSet
from .grading import describe
from .judge import ConversationJudge
from .pairwise import PairwiseJudge
from .progress import EvaluateProgress, count_lines
from .reader import open_conversations
from .resume import evaluation_fingerprint
from .runner import EvaluateRunner

NO_JUDGE_HINT = (
    "evaluate needs a judge: give --judge-model MODEL (e.g. openai/gpt-4o-mini, or a name with --api-base), "
    "a --config whose evaluation.judge (or respondent) names one, or --no-judge for offline metrics only"
)


@dataclass
class EvaluateRequest:
    """The evaluate command's flags."""

    input: str
    output: str | None = None
    judge_model: str | None = None
    api_base: str | list[str] | None = None  # several: replicas serving the judge
    api_key_env: str | None = None
    concurrency: int | None = None
    no_judge: bool = False
    min_score: float | None = None
    report: Path | None = None
    json_summary: bool = False
    quiet: bool = False
    skip_invalid: bool = False
    config: Path | None = None
    overwrite: bool = False
    retry_rejected: bool = False
    mode: str | None = None  # online | batch; None: the config's evaluation.mode


def default_output(source: str) -> str:
    """stdout for stdin; otherwise `<input stem>.evaluated.jsonl` beside the input."""
    if source == "-":
        return "-"
    path = Path(source)
    return str(path.with_name(f"{path.stem}.evaluated.jsonl"))


def resolve_judge(request: EvaluateRequest, cfg: Config | None) -> ModelConfig | None:
    """The judge model: --judge-model, else evaluation.judge, else the config's respondent; None with --no-judge."""
    if request.no_judge:
        if request.judge_model or request.api_base or request.api_key_env:
            raise UsageError(
                "--no-judge calls no model: drop --judge-model / --api-base / --api-key-env, or drop --no-judge"
            )
        return None
    if request.api_key_env and not request.api_base:
        raise UsageError("--api-key-env names the key variable for the --api-base server: add --api-base URL")
    configured = (cfg.evaluation.judge or cfg.respondent) if cfg else None
    if request.judge_model:
        base = cfg.evaluation.judge if cfg and cfg.evaluation.judge else ModelConfig(model="offline", temperature=0.0)
        model = base.model_copy(update={"model": request.judge_model})
    elif configured is not None:
        model = configured
    else:
        raise UsageError(NO_JUDGE_HINT)
    if request.api_base:
        if model.model.split("/")[0] == "offline":
            raise UsageError("--api-base needs the model the server serves: add --judge-model NAME")
        bases = [request.api_base] if isinstance(request.api_base, str) else request.api_base
        update: dict[str, Any] = {"api_base": bases[0] if len(bases) == 1 else list(bases), "deployments": None}
        if request.api_key_env:
            update["api_key_env"] = request.api_key_env
        try:
            model = ModelConfig.model_validate({**model.model_dump(), **update})
        except ValidationError as exc:
            raise UsageError(f"--api-base: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    return model


def _check_paths(request: EvaluateRequest, output: str) -> None:
    if output == "-" and request.json_summary:
        raise UsageError("rows and --json would both go to stdout: give -o FILE, or drop --json")
    if request.input != "-" and output != "-":
        source, target = Path(request.input), Path(output)
        if source.exists() and target.exists() and os.path.samefile(source, target):
            raise UsageError(f"{output}: the output must not be the input; give another -o path")


def evaluate(request: EvaluateRequest, console: Console) -> dict[str, Any]:
    """Run evaluate; print the terminal summary (unless quiet) and write --report; return the summary."""

    cfg = load_config(request.config) if request.config else None
    eval_cfg = cfg.evaluation if cfg else EvaluationConfig()
    output = request.output or default_output(request.input)
    _check_paths(request, output)
    judge_model = resolve_judge(request, cfg)
    run_cfg = cfg or Config(respondent=judge_model or ModelConfig(model="offline"))
    if judge_model is not None:
        require_prices(run_cfg.budget.max_cost_usd, [("evaluation.judge", judge_model)])
    monitor = GenerationMonitor(0, console)
    served = _served_judge(judge_model, run_cfg)
    fingerprint = evaluation_fingerprint(eval_cfg, judge_model, served, run_cfg.hygiene)
    ledger = RunLedger(ledger_path(output), "evaluate", fingerprint)
    runner = EvaluateRunner(
        eval_cfg,
        fingerprint=fingerprint,
        min_score=request.min_score,
        concurrency=request.concurrency,
        ledger=ledger,
        retry_rejected=request.retry_rejected,
        max_rejected_share=run_cfg.error_budget.max_rejected_share,
        monitor=monitor,
        hygiene=_hygiene_checker(cfg),
    )
    aborted: RunAborted | None = None
    with open_conversations(request.input, skip_invalid=request.skip_invalid) as reader:
        runner.open_output(output, overwrite=request.overwrite)
        ledger.start(None, input=request.input, judge=judge_model.model if judge_model else None)
        progress = EvaluateProgress(console, count_lines(request.input), lambda: _status(runner, monitor, judge_model))
        status = "interrupted"
        try:
            with progress.display(request.quiet):
                if judge_model is None:
                    runner.run_offline(reader, progress)
                else:
                    mode = request.mode or eval_cfg.mode
                    judged = _judged(
                        runner, reader, progress, judge_model, served, run_cfg, monitor, request.input, mode
                    )
                    asyncio.run(judged)
            status = "finished"
        except RunAborted as exc:
            aborted, status = exc, "stopped"
        finally:
            runner.close_output()
            ledger.end(
                status, runner.counts.written, monitor.usage.as_dict(), None if aborted is None else str(aborted)
            )
    summary = _summary(runner, reader, request, output, judge_model, monitor, eval_cfg)
    _present(summary, request, console)
    if aborted is not None:
        raise RunAborted(
            f"{aborted}; the {runner.counts.written + runner.counts.resumed} rows in {output} are kept "
            "(re-run the same command to resume)"
        )
    _check_rejections(runner, ledger)
    return summary


def _hygiene_checker(cfg: Config | None) -> TurnChecker | None:
    """The turn checks evaluate reports: the config's `hygiene` (its system prompt counts as scaffolding a
    turn must not leak), or every check at its defaults."""
    if cfg is None:
        return TurnChecker.from_config(HygieneConfig())
    return TurnChecker.from_config(cfg.hygiene, [cfg.generation.system_prompt])


def _check_rejections(runner: EvaluateRunner, ledger: RunLedger) -> None:
    """Rows cannot be replaced by others as generate's items are: a run that rejected more than its share
    of rows (however few) fails, pointing at the ledger and --retry-rejected."""
    budget = runner.rejections
    finished = budget.rows + budget.rejected
    if not budget.rejected or budget.rejected / finished <= budget.max_share:
        return
    where = f" (recorded in {ledger.path})" if ledger.path is not None else ""
    raise RunAborted(
        f"{budget.rejected} of {finished} rows could not be judged and were not written{where}: "
        f"{budget.top_causes()}; fix the cause and re-run with --retry-rejected to judge them again"
    )


def _served_judge(judge_model: ModelConfig | None, cfg: Config) -> str | None:
    """The model the judge's api_base server serves (None without one): part of what the verdicts depend on."""
    if judge_model is None:
        return None

    raw: Any = LLMFactory.from_config(judge_model)
    several = isinstance(raw, ReplicaSet)  # replicas: one model, asked of each
    if several:
        raw.config_path = "evaluation.judge"
    if not several and not asks_for_served_model(raw):
        return None

    async def ask() -> str | None:
        try:
            return await (aserved_by_set(raw, cfg.retry) if several else aserved_model(raw, cfg.retry))
        finally:
            await raw.aclose()

    return asyncio.run(ask())


async def _judged(
    runner: EvaluateRunner,
    reader: RowReader,
    progress: EvaluateProgress,
    judge_model: ModelConfig,
    served: str | None,
    cfg: Config,
    monitor: GenerationMonitor,
    source: str,
    mode: str = "online",
) -> None:
    """Build the judge through the shared provider stack (cache, retries, limiter), run, close. `served` is
    what the judge's api_base server said it serves (asked once, before the output was opened). In batch
    mode the judge's calls go out in rounds of batches, resumed from the ledger like generate's."""

    budget = ErrorBudget(cfg.error_budget)
    cache = open_cache(cfg)
    rounds = batch_rounds(cfg, monitor) if mode == "batch" else None
    raw, provider = build_provider(judge_model, cfg, budget, monitor, cache, "evaluation.judge", rounds)
    if rounds is not None and runner.ledger is not None:
        rounds.resume(runner.ledger, lambda row: False, runner.fingerprint)
        runner.rounds, runner.concurrency = rounds, cfg.batch.items_in_flight
    # In every cache key: another model loaded behind the judge's URL must not get the old verdicts.
    if isinstance(provider, BaseProvider):
        provider.served_model_id = served
    runner.judge = ConversationJudge(provider, runner.cfg)
    runner.pairwise = PairwiseJudge(runner.judge)
    runner.budget = budget
    try:
        await runner.run_judged(reader, progress, threaded_read=source == "-")
    finally:
        if rounds is not None:
            await rounds.aclose()
        await raw.aclose()
        if cache is not None:
            cache.close()


def _status(runner: EvaluateRunner, monitor: GenerationMonitor, judge: ModelConfig | None) -> str:
    c = runner.counts
    elapsed = monitor.elapsed
    text = f"{c.evaluated / elapsed:,.0f} rows/s · written {c.written:,}"
    if c.dropped or c.unscored_dropped:
        text += f" · dropped {c.dropped + c.unscored_dropped:,}"
    if judge is not None:  # short enough for an 80-column terminal next to the bar
        text += (
            f" · failed {c.failed} · {monitor.usage.calls:,} calls · {monitor.cost_text()} · retries {monitor.retries}"
        )
    return text


def _summary(
    runner: EvaluateRunner,
    reader: RowReader,
    request: EvaluateRequest,
    output: str,
    judge_model: ModelConfig | None,
    monitor: GenerationMonitor,
    eval_cfg: EvaluationConfig,
) -> dict[str, Any]:
    summary = runner.summary()
    summary["rows"] = {"read": reader.read, "invalid_skipped": reader.skipped, **summary["rows"]}
    summary["invalid_examples"] = reader.skip_examples
    summary["judge_failed_examples"] = runner.counts.failed_examples
    judge: dict[str, Any] | None = None
    if judge_model is not None:
        usage = monitor.summary()
        keys = ("calls", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "retries", "errors")
        judge = {
            "model": judge_model.model,
            **{k: usage.get(k) for k in keys},
            "cache_hits": usage.get("cache_hits", 0),
        }
    return {"input": request.input, "output": output, "judge": judge, "scoring": describe(eval_cfg), **summary}


def _present(summary: dict[str, Any], request: EvaluateRequest, console: Console) -> None:
    """The terminal summary (unless quiet) and the HTML report (when asked)."""
    if not request.quiet:
        from .report import print_summary

        print_summary(summary, console)
    if request.report is not None:
        from .html_report import write_html_report

        write_html_report(summary, request.report)
        if not request.quiet:
            console.print(f"report: {request.report}", markup=False, highlight=False)
