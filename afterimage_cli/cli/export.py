"""`afterimage export`: JSONL rows → the files trainers read (sharegpt, messages, dpo, kto, … see --list-formats)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..errors import UsageError
from . import app
from .common import run_command, stderr

if TYPE_CHECKING:  # the export package is imported when the command runs, not when the CLI loads
    from ..export import ExportFormat, ExportStats


@app.command("export")
def export_command(
    source: str | None = typer.Argument(None, metavar="INPUT", help="A JSONL file of rows, or - for stdin."),
    format_names: list[str] | None = typer.Option(
        None, "--format", "-f", metavar="FORMAT", help="Target format (repeatable; see --list-formats)."
    ),
    output: str | None = typer.Option(
        None, "--output", "-o", metavar="OUT", help="FILE, DIR (one file per format), or - for stdout (the default)."
    ),
    system_prompt: str | None = typer.Option(
        None,
        "--system-prompt",
        metavar="TEXT|@FILE",
        help="System prompt to add to every row: TEXT or @FILE (rows don't store it).",
    ),
    include_reasoning: bool = typer.Option(
        False, "--include-reasoning", help="Keep reasoning_content in the target's convention."
    ),
    min_score: float | None = typer.Option(
        None, "--min-score", metavar="X", help="Keep rows with final_score >= X (0-1)."
    ),
    min_grade: str | None = typer.Option(
        None,
        "--min-grade",
        metavar="G",
        help="Keep rows graded at least G (perfect, good, needs_improvement, bad, not_acceptable).",
    ),
    drop_unclean: bool = typer.Option(
        False, "--drop-unclean", help="Drop rows with a turn that fails a hygiene check (cut, echo, copy, …)."
    ),
    split: float | None = typer.Option(
        None, "--split", metavar="FRACTION", help="Train fraction, e.g. 0.9: writes <stem>.train and <stem>.val files."
    ),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seed of the deterministic split."),
    limit: int | None = typer.Option(
        None, "--limit", min=1, metavar="N", help="Export the first N rows that pass the filters, at most."
    ),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip and count bad rows instead of stopping."),
    list_formats: bool = typer.Option(False, "--list-formats", help="List the formats and exit."),
    output_format: str | None = typer.Option(
        None, "--output-format", metavar="jsonl|parquet", help="jsonl (the default) or parquet."
    ),
    layout: str | None = typer.Option(
        None, "--layout", metavar="FORMAT", help="--format hf: the row layout inside the folder (default messages)."
    ),
    shard_rows: int = typer.Option(
        100_000, "--shard-rows", min=1, metavar="N", help="--format hf: rows per Parquet shard, at most."
    ),
    license_id: str = typer.Option(
        "unknown", "--license", metavar="ID", help="--format hf: the card's license (a Hub id, e.g. apache-2.0)."
    ),
    languages: list[str] | None = typer.Option(
        None, "--language", metavar="CODE", help="--format hf: the card's language (repeatable; default en)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary line on stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Convert rows to the formats trainers read (stream in, stream out: INPUT and -o may be -)."""

    def body() -> None:
        from .. import export

        if list_formats:
            _print_formats(export.FORMATS)
            return
        if source is None:
            raise UsageError("missing INPUT: a JSONL file, or - for stdin")
        if not format_names:
            raise UsageError("give at least one --format (see --list-formats)")
        names = list(dict.fromkeys(format_names))  # a repeated --format is written once
        options = export.ExportOptions(_read_system_prompt(system_prompt), include_reasoning)
        keep = export.make_row_filter(min_score, min_grade, drop_unclean)
        splitter = export.Splitter(split, seed) if split is not None else None
        if "hf" in names:
            from ..export import hf_dataset

            if len(names) > 1 or output_format == "jsonl":
                raise UsageError("--format hf writes one Parquet dataset folder: give it alone (its rows: --layout)")
            folder = hf_dataset.plan_hf_folder(output, layout or "messages", source=source, shard_rows=shard_rows)
            choices = hf_dataset.export_choices(min_score, min_grade, split, seed, limit, options)
            card = hf_dataset.CardChoices(license_id, tuple(languages or ["en"]), choices)
            with export.open_rows(source, skip_invalid=skip_invalid) as reader:
                stats = hf_dataset.export_hf_folder(
                    reader, folder, options, card, keep=keep, splitter=splitter, limit=limit
                )
            if not quiet:
                _print_summary(stats)
                stderr.print(f"  Hugging Face dataset folder: {folder.directory} (README.md, data/)", markup=False)
            return
        if layout is not None:
            raise UsageError("--layout chooses the rows of a --format hf folder; other formats are their own layout")
        fmt = output_format or "jsonl"
        plan = export.plan_outputs(names, output, split=splitter is not None, output_format=fmt, source=source)
        with export.open_rows(source, skip_invalid=skip_invalid) as reader:
            stats = export.run_export(
                reader, plan, options, output_format=fmt, keep=keep, splitter=splitter, limit=limit
            )
        if not quiet:
            _print_summary(stats)

    run_command(body, debug=debug, on_interrupt="interrupted; no output file was left behind")


def _read_system_prompt(value: str | None) -> str | None:
    """TEXT as given, or the contents of FILE for @FILE (without its final newline)."""
    if value is None or not value.startswith("@"):
        return value
    path = Path(value[1:])
    try:
        return path.read_text(encoding="utf-8").removesuffix("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--system-prompt {value}: cannot read {path}: {exc}") from None


def _print_formats(formats: dict[str, ExportFormat]) -> None:
    """One line per format name on stdout: the name, then what a row looks like."""
    width = max(map(len, formats))
    for name, fmt in formats.items():
        alias = f"(alias of {fmt.name}) " if fmt.name != name else ""
        typer.echo(f"{name:<{width}}  {alias}{fmt.summary}")
    typer.echo(
        f"{'hf':<{width}}  a Hugging Face dataset folder (-o DIR): Parquet shards of --layout rows + README.md card"
    )


def _print_summary(stats: ExportStats) -> None:
    """One line on stderr: rows read, skipped, filtered, and what each format wrote."""
    written = ", ".join(
        f"{name} " + " / ".join(f"{count} {part}" if len(parts) > 1 else str(count) for part, count in parts.items())
        for name, parts in stats.written.items()
    )
    stderr.print(
        f"export: {stats.read} rows read, {stats.skipped} skipped (invalid), {stats.filtered} filtered; "
        f"written: {written}",
        markup=False,
    )
    for example in stats.skip_examples:
        stderr.print(f"  skipped {example}", markup=False)
    for name, count in stats.unpaired.items():
        stderr.print(f"  {name}: {count} rows without a preference pair skipped", markup=False)
    if stats.dataset_info is not None:
        stderr.print(f"  LLaMA-Factory dataset entries: {stats.dataset_info}", markup=False)
