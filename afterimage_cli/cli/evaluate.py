"""`afterimage evaluate`: judge rows with an LLM and offline metrics; write them back with a report."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

from . import app
from .common import RESUMABLE, RunModeFlag, run_command, stderr


@app.command()
def evaluate(
    source: str = typer.Argument(..., metavar="INPUT", help="A JSONL file of rows, or - for stdin."),
    output: str | None = typer.Option(
        None,
        "-o",
        "--output",
        metavar="OUT",
        help="Output JSONL, or - for stdout (default: INPUT's <stem>.evaluated.jsonl; stdout for stdin). "
        "An existing OUT is resumed (same judge settings) unless --overwrite.",
    ),
    judge_model: str | None = typer.Option(
        None, "--judge-model", metavar="MODEL", help="Judge model, e.g. openai/gpt-4o-mini (no default)."
    ),
    api_base: list[str] | None = typer.Option(
        None,
        "--api-base",
        metavar="URL",
        help="Send judge calls to this OpenAI-compatible URL; repeat it for replicas serving the same model.",
    ),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", metavar="NAME", help="Send the key in this variable to the --api-base server."
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", min=1, metavar="N", help="Conversations judged at once (default 8)."
    ),
    no_judge: bool = typer.Option(False, "--no-judge", help="Offline metrics only: call no model."),
    mode: RunModeFlag | None = typer.Option(
        None, "--mode", help="online, or batch: judge calls in rounds through the provider's batch API."
    ),
    min_score: float | None = typer.Option(
        None, "--min-score", min=0.0, max=1.0, metavar="X", help="Drop rows whose final_score is below X (0-1)."
    ),
    report: Path | None = typer.Option(
        None, "--report", metavar="FILE.html", help="Also write a self-contained HTML report with charts."
    ),
    json_summary: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Show nothing but errors."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip and count bad rows instead of stopping."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace OUT instead of resuming it (needed when the judge settings changed)."
    ),
    retry_rejected: bool = typer.Option(
        False, "--retry-rejected", help="Judge again the rows the ledger records as rejected."
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", metavar="FILE", help="A config whose evaluation/respondent/retry sections apply."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Score conversations (LLM judge + offline metrics); re-running the same command resumes."""

    def body() -> None:
        from ..evaluation.command import EvaluateRequest
        from ..evaluation.command import evaluate as run_evaluate

        request = EvaluateRequest(
            input=source,
            output=output,
            judge_model=judge_model,
            api_base=api_base,
            api_key_env=api_key_env,
            concurrency=concurrency,
            no_judge=no_judge,
            min_score=min_score,
            report=report,
            json_summary=json_summary,
            quiet=quiet,
            skip_invalid=skip_invalid,
            config=config,
            overwrite=overwrite,
            retry_rejected=retry_rejected,
            mode=mode.value if mode is not None else None,
        )
        summary = run_evaluate(request, stderr)
        if json_summary:
            typer.echo(orjson.dumps(summary).decode())

    to_stdout = output == "-" or (output is None and source == "-")
    run_command(body, debug=debug, on_interrupt="interrupted" if to_stdout else RESUMABLE)
