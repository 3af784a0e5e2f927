"""Where each format's records go: stdout, one file, one file per format in a directory, train/val pairs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .formats import get_format
from .split import TRAIN, VAL
from .writer import OUTPUT_FORMATS, STDOUT, RecordWriter

WHOLE = "all"
"""The part name of an unsplit output."""


@dataclass(frozen=True)
class OutputTarget:
    """One format and the destination of each of its parts ({WHOLE: …} or {TRAIN: …, VAL: …})."""

    format_name: str
    paths: dict[str, str]


WriterFactory = Callable[[str, Callable[[], Any]], RecordWriter]
"""Opens the writer of one part: (destination, the pyarrow schema's builder) → writer."""


@dataclass(frozen=True)
class OutputPlan:
    """Every output of one export; ``directory`` is set when writing files (and dataset_info.json) into a
    directory; ``open_part`` replaces the usual one-file writers (the Hugging Face folder's shards)."""

    targets: list[OutputTarget]
    directory: Path | None = None
    open_part: WriterFactory | None = None


def plan_outputs(
    format_names: list[str], output: str | None, *, split: bool, output_format: str, source: str
) -> OutputPlan:
    """Decide the destinations, or raise `UsageError` for unknown formats and combinations that cannot work.

    No -o (or -o -) writes stdout and allows one format and no split. -o DIR (an existing directory,
    a path ending in '/', or any -o with several formats) writes DIR/<format>.<ext>. Otherwise -o is the
    file. A split turns every file into <stem>.train.<ext> and <stem>.val.<ext>.
    """
    for name in format_names:
        get_format(name)  # an unknown name fails here, before any file is opened
    if output_format not in OUTPUT_FORMATS:
        raise UsageError(f"--output-format {output_format!r}: choose one of {', '.join(OUTPUT_FORMATS)}")
    ext = f".{output_format}"
    if output is None or output == STDOUT:
        if len(format_names) > 1:
            raise UsageError("several --format values write one file each: give -o DIR")
        if split:
            raise UsageError("--split writes two files (<stem>.train / <stem>.val): give -o FILE or -o DIR")
        return OutputPlan([OutputTarget(format_names[0], {WHOLE: STDOUT})])

    out = Path(output)
    into_directory = out.is_dir() or output.endswith(("/", "\\")) or len(format_names) > 1
    if into_directory and out.exists() and not out.is_dir():
        raise UsageError(f"-o {output}: is a file; several --format values need a directory")
    files = {name: out / f"{name}{ext}" for name in format_names} if into_directory else {format_names[0]: out}
    targets = [OutputTarget(name, _parts(path, ext, split)) for name, path in files.items()]
    refuse_overwriting_input(targets, source)
    return OutputPlan(targets, out if into_directory else None)


def _parts(path: Path, ext: str, split: bool) -> dict[str, str]:
    """The destination of each part of one output file."""
    if not split:
        return {WHOLE: str(path)}
    suffix = path.suffix or ext
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return {part: str(path.with_name(f"{stem}.{part}{suffix}")) for part in (TRAIN, VAL)}


def refuse_overwriting_input(targets: list[OutputTarget], source: str) -> None:
    """An output path equal to the input would truncate it before it is read."""
    if source == STDOUT:
        return
    source_path = Path(source).resolve()
    for target in targets:
        for path in target.paths.values():
            if Path(path).resolve() == source_path:
                raise UsageError(f"-o {path} is the input file; choose another output")
