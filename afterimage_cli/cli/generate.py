"""`afterimage generate`: config + flags → the async pipeline → rows."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

from . import app
from .common import RESUMABLE, ExecutorFlag, RunModeFlag, run_command, stderr, terminate_like_interrupt


@app.command()
def generate(
    config: Path = typer.Argument(..., help="The YAML config."),
    output: str | None = typer.Option(None, "-o", "--output", help="Output path; '-' streams JSONL to stdout."),
    num: int | None = typer.Option(None, "-n", "--num", min=1, help="Conversations to end with (exactly)."),
    max_turns: int | None = typer.Option(None, "--max-turns", min=1, help="User turns per conversation, at most."),
    model: str | None = typer.Option(None, "--model", help="Respondent model, e.g. openai/gpt-4o-mini."),
    user_model: str | None = typer.Option(None, "--user-model", help="Simulated user's model (default: --model)."),
    api_base: list[str] | None = typer.Option(
        None,
        "--api-base",
        help="Point every model at this OpenAI-compatible URL; repeat it for replicas serving the same model.",
    ),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", metavar="NAME", help="Send the key in this variable to the --api-base server."
    ),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, help="Conversations in flight at once."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for every sampling choice."),
    mode: RunModeFlag | None = typer.Option(
        None, "--mode", help="online, or batch: rounds through the providers' batch APIs at about half the price."
    ),
    executor: ExecutorFlag | None = typer.Option(
        None, "--executor", help="local, or ray: items made by Ray workers (pip install 'afterimage[ray]')."
    ),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Ray workers (with --executor ray)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output instead of resuming it."),
    retry_rejected: bool = typer.Option(
        False, "--retry-rejected", help="Try again the items the ledger records as rejected."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the response cache."),
    max_cost: float | None = typer.Option(None, "--max-cost", min=0, help="Stop cleanly once this many USD are spent."),
    max_total_tokens: int | None = typer.Option(
        None, "--max-total-tokens", min=1, help="Stop cleanly once the run has used this many tokens."
    ),
    renamed_max_tokens: str | None = typer.Option(None, "--max-tokens", hidden=True),
    dry_run: bool = typer.Option(False, "--dry-run", help="Call no model: show config, prompts and an estimate."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Show nothing but errors."),
    json_summary: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Generate conversations; re-running the same command resumes where it stopped."""

    def body() -> None:
        from ..config_loader import load_config
        from ..errors import UsageError
        from ..overrides import Overrides, apply_overrides
        from ..run import execute, preview

        if renamed_max_tokens is not None:
            raise UsageError(
                "--max-tokens was renamed --max-total-tokens (the run's token budget); a per-call completion "
                "limit is max_tokens in the config's model block"
            )
        if output == "-" and json_summary:
            raise UsageError("-o - and --json both write stdout: pick one")
        cfg = apply_overrides(
            load_config(config),
            Overrides(
                output,
                num,
                max_turns,
                model,
                user_model,
                api_base,
                concurrency,
                seed,
                no_cache,
                max_cost,
                max_total_tokens,
                api_key_env=api_key_env,
                mode=mode.value if mode is not None else None,
                executor=executor.value if executor is not None else None,
                workers=workers,
            ),
        )
        if dry_run:
            report = preview(cfg)
            typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() if json_summary else report["text"])
            return
        with terminate_like_interrupt():
            summary = execute(cfg, overwrite=overwrite, quiet=quiet, console=stderr, retry_rejected=retry_rejected)
        if json_summary:
            typer.echo(orjson.dumps(summary).decode())

    run_command(body, debug=debug, on_interrupt=RESUMABLE)
