"""One export run: rows stream from the reader through the filter into every format's writers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import chain
from pathlib import Path

from ..errors import InputError
from ..rowshape import row_has_tools
from .dataset_info import dataset_info_entries, write_dataset_info
from .filters import RowFilter
from .formats import Converter, ExportOptions, get_format
from .outputs import WHOLE, OutputPlan
from .reader import RowReader
from .rows import Record, Row
from .split import Splitter
from .writer import RecordWriter, open_writer


@dataclass
class ExportStats:
    """What one export did, for the summary line."""

    read: int = 0
    skipped: int = 0
    filtered: int = 0
    written: dict[str, dict[str, int]] = field(default_factory=dict)
    """format name → part (all / train / val) → records written."""
    skip_examples: list[str] = field(default_factory=list)
    dataset_info: Path | None = None
    unpaired: dict[str, int] = field(default_factory=dict)
    """preference format name → rows it skipped for holding no pair."""


class _Target:
    """One format's converter and the writer of each of its parts."""

    def __init__(self, name: str, converter: Converter, writers: dict[str, RecordWriter]) -> None:
        self.name = name
        self.converter = converter
        self.writers = writers

    def write(self, record: Record | list[Record], part: str) -> None:
        """Write one record (or a preference format's records of one row) to its part."""
        writer = self.writers[part]
        if isinstance(record, list):
            for each in record:
                writer.write(each)
        else:
            writer.write(record)

    @property
    def unpaired(self) -> int | None:
        """Rows a preference format skipped for holding no pair; None for other formats."""
        count = getattr(self.converter, "unpaired", None)
        return count if isinstance(count, int) else None


def run_export(
    reader: RowReader,
    plan: OutputPlan,
    options: ExportOptions,
    *,
    output_format: str = "jsonl",
    keep: RowFilter | None = None,
    splitter: Splitter | None = None,
    limit: int | None = None,
    observe: Callable[[Row], None] | None = None,
) -> ExportStats:
    """Convert every valid, kept row (the first `limit` of them, when given) to each planned format;
    outputs are finished only if all succeeds. `observe` sees every kept row (the dataset card counts them).

    The first row decides whether typed outputs (parquet, the hf folder) and dataset_info.json make room for
    tool fields (`ExportOptions.tools`): a tool run's rows all carry tools."""
    rows = iter(reader)
    first = next(rows, None)
    parquet = output_format == "parquet" or plan.open_part is not None
    options = replace(options, tools=first is not None and row_has_tools(first), tools_as_json=parquet)
    stats = ExportStats()
    success = False
    try:
        targets = _open_targets(plan, options, output_format)
    except BaseException:
        _close(rows)
        raise
    try:
        stream = rows if first is None else chain((first,), rows)
        stats.filtered = _stream(stream, targets, keep, splitter, limit, observe)
        for target in targets:
            for record, key in target.converter.finish():
                target.write(record, splitter.part_of_key(key) if splitter else WHOLE)
        _check_pairs(targets, reader.name)
        success = True
    finally:
        _close(rows)  # a --limit leaves the reader mid-file: closing it settles its counts now
        for target in targets:
            for writer in target.writers.values():
                writer.close(success=success)
    stats.read, stats.skipped, stats.skip_examples = reader.read, reader.skipped, reader.skip_examples
    stats.written = {t.name: {part: w.count for part, w in t.writers.items()} for t in targets}
    stats.unpaired = {t.name: t.unpaired for t in targets if t.unpaired}
    if plan.directory is not None:
        entries = dataset_info_entries(plan, options)
        if entries:
            stats.dataset_info = write_dataset_info(plan.directory, entries)
    return stats


def _close(rows: Iterator[Row]) -> None:
    close = getattr(rows, "close", None)
    if close is not None:
        close()


def _check_pairs(targets: list[_Target], source: str) -> None:
    """A preference format that found rows but not one pair in them is an error, not an empty file."""
    for target in targets:
        written = sum(writer.count for writer in target.writers.values())
        if target.unpaired and not written:
            raise InputError(
                f"{source}: none of its {target.unpaired} rows holds a preference pair (chosen/rejected), so "
                f"--format {target.name} has nothing to write; pairs come from generate runs with "
                "generation.kind: preference, or with quality.auto_improve and quality.keep_pairs: true"
            )


def _stream(
    rows: Iterable[Row],
    targets: list[_Target],
    keep: RowFilter | None,
    splitter: Splitter | None,
    limit: int | None = None,
    observe: Callable[[Row], None] | None = None,
) -> int:
    """The hot loop; returns how many rows the filter dropped. Reading stops after `limit` kept rows."""
    one_record_each = targets[0].unpaired is None if len(targets) == 1 else False
    if one_record_each and keep is None and splitter is None and limit is None and observe is None:
        # The common `export - --format F` case (one record per row), without the per-row bookkeeping below.
        feed, write = targets[0].converter.feed, targets[0].writers[WHOLE].write
        for row in rows:
            record = feed(row)
            if record is not None:
                write(record)  # type: ignore[arg-type]  # a per-row format: one record, never a list
        return 0
    filtered = kept = 0
    part_of: Callable[[Row], str] = splitter.part_of_row if splitter else (lambda row: WHOLE)
    for row in rows:
        if keep is not None and not keep(row):
            filtered += 1
            continue
        if observe is not None:
            observe(row)
        part = part_of(row)
        for target in targets:
            record = target.converter.feed(row)
            if record is not None:
                target.write(record, part)
        kept += 1
        if kept == limit:  # stop reading: the rows after it are not even parsed
            break
    return filtered


def _open_targets(plan: OutputPlan, options: ExportOptions, output_format: str) -> list[_Target]:
    """A converter and open writers for each planned output; closes what it opened if one fails."""
    targets: list[_Target] = []
    try:
        for planned in plan.targets:
            fmt = get_format(planned.format_name)
            writers: dict[str, RecordWriter] = {}
            targets.append(_Target(planned.format_name, fmt.make_converter(options), writers))
            for part, path in planned.paths.items():
                schema = partial(fmt.arrow_schema, options)
                if plan.open_part is not None:
                    writers[part] = plan.open_part(path, schema)
                else:
                    writers[part] = open_writer(path, output_format, schema)
    except BaseException:
        for target in targets:
            for writer in target.writers.values():
                writer.close(success=False)
        raise
    return targets
