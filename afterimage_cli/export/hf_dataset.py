"""`export --format hf -o DIR`: a Hugging Face dataset folder that `datasets.load_dataset(DIR)` and the Hub read.

    DIR/README.md                              the dataset card (YAML header + how the data was made)
    DIR/data/train-00000-of-00002.parquet      rows in the chosen layout (--layout), --shard-rows per shard
    DIR/data/test-00000-of-00001.parquet       with --split: the held-out part

Shards are written as ``*.shard.partial`` files and get their final ``-of-N`` names only when the
export succeeds; the shards of an earlier export into DIR are replaced then, never before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dataset_profile import DatasetProfile
from ..errors import UsageError
from .dataset_card import DATA, CardFacts, render_card
from .filters import RowFilter
from .formats import ExportOptions, get_format
from .outputs import WHOLE, OutputPlan, OutputTarget, refuse_overwriting_input
from .pipeline import ExportStats, run_export
from .reader import RowReader
from .rows import Record
from .split import TRAIN, VAL, Splitter
from .writer import STDOUT, Destination, ParquetWriter

HF = "hf"
DEFAULT_SHARD_ROWS = 100_000
SPLIT_NAMES = {WHOLE: "train", TRAIN: "train", VAL: "test"}
"""The Hub's split names for export's parts: an unsplit export is all train; the held-out part is test."""


class ShardedParquetWriter:
    """One split's records in Parquet shards of at most `shard_rows` rows (at least one shard, maybe empty)."""

    def __init__(self, folder: Path, split: str, schema: Any, shard_rows: int) -> None:
        self.folder = folder
        self.split = split
        self.schema = schema
        self.shard_rows = shard_rows
        self.count = 0
        self.shards: list[Path] = []
        """Finished shards, under their temporary names until `close`."""
        self._writer: ParquetWriter | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, record: Record) -> None:
        if self._writer is None or self._writer.count >= self.shard_rows:
            self._next_shard()
        assert self._writer is not None
        self._writer.write(record)
        self.count += 1

    def _next_shard(self) -> None:
        self._finish_shard()
        path = self.folder / f"{self.split}-{len(self.shards):05d}.shard"
        self._writer = ParquetWriter(Destination(str(path)), self.schema)
        self.shards.append(path)

    def _finish_shard(self) -> None:
        if self._writer is not None:
            self._writer.close(success=True)
            self._writer = None

    def close(self, *, success: bool) -> None:
        """Name the shards `<split>-00000-of-0000N.parquet` (replacing an earlier export's), or remove them."""
        if not success:
            if self._writer is not None:
                self._writer.close(success=False)
            for shard in self.shards:
                shard.unlink(missing_ok=True)
            return
        if not self.shards:
            self._next_shard()  # an empty split still gets a file: the card's data_files must match one
        self._finish_shard()
        for stale in self.folder.glob(f"{self.split}-*-of-*.parquet"):
            stale.unlink()
        total = len(self.shards)
        self.shards = [
            shard.rename(self.folder / f"{self.split}-{index:05d}-of-{total:05d}.parquet")
            for index, shard in enumerate(self.shards)
        ]


@dataclass(frozen=True)
class HfFolder:
    """Where an hf export goes and how its rows are laid out."""

    directory: Path
    layout: str
    shard_rows: int = DEFAULT_SHARD_ROWS

    @property
    def data(self) -> Path:
        return self.directory / DATA

    def open_part(self, destination: str, schema: Callable[[], Any]) -> ShardedParquetWriter:
        """The writer of one part (its destination is the split's name)."""
        return ShardedParquetWriter(self.data, destination, schema(), self.shard_rows)

    def plan(self, *, split: bool) -> OutputPlan:
        """One target, the layout, with a part per split; written through `open_part`."""
        parts = {TRAIN: SPLIT_NAMES[TRAIN], VAL: SPLIT_NAMES[VAL]} if split else {WHOLE: SPLIT_NAMES[WHOLE]}
        return OutputPlan([OutputTarget(self.layout, parts)], open_part=self.open_part)


def plan_hf_folder(output: str | None, layout: str, *, source: str, shard_rows: int = DEFAULT_SHARD_ROWS) -> HfFolder:
    """Check the flags of an hf export; raise `UsageError` for what cannot work."""
    if output is None or output == STDOUT:
        raise UsageError("--format hf writes a dataset folder: give -o DIR")
    if layout == HF:
        raise UsageError("--layout is the row layout inside the folder, e.g. messages, sharegpt or dpo")
    get_format(layout)  # an unknown layout fails here, naming the known ones
    if shard_rows < 1:
        raise UsageError(f"--shard-rows {shard_rows}: give at least 1")
    directory = Path(output)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"-o {output}: is a file; --format hf writes a folder")
    readme = directory / "README.md"
    refuse_overwriting_input([OutputTarget(layout, {WHOLE: str(readme)})], source)
    return HfFolder(directory, layout, shard_rows)


@dataclass(frozen=True)
class CardChoices:
    """What the card says besides the rows' own facts: the license, the languages, the export's choices."""

    license: str = "unknown"
    languages: tuple[str, ...] = ("en",)
    choices: tuple[str, ...] = ()


def export_hf_folder(
    reader: RowReader,
    folder: HfFolder,
    options: ExportOptions,
    card: CardChoices,
    *,
    keep: RowFilter | None = None,
    splitter: Splitter | None = None,
    limit: int | None = None,
) -> ExportStats:
    """Write the shards, then the card (README.md) from the rows that went into them."""
    profile = DatasetProfile()
    stats = run_export(
        reader,
        folder.plan(split=splitter is not None),
        options,
        keep=keep,
        splitter=splitter,
        limit=limit,
        observe=profile.add,
    )
    # One layout, so one target: its parts are named as the Hub names splits (val is test).
    stats.written = {name: {SPLIT_NAMES[part]: n for part, n in parts.items()} for name, parts in stats.written.items()}
    records = stats.written[folder.layout]
    facts = CardFacts(
        name=folder.directory.resolve().name,
        source="stdin" if reader.name == "<stdin>" else Path(reader.name).name,
        layout=folder.layout,
        license=card.license,
        languages=list(card.languages),
        records=records,
        rows_read=stats.read,
        rows_filtered=stats.filtered,
        choices=list(card.choices),
    )
    (folder.directory / "README.md").write_text(render_card(facts, profile.summary()), encoding="utf-8")
    return stats


def export_choices(
    min_score: float | None,
    min_grade: str | None,
    split: float | None,
    seed: int,
    limit: int | None,
    options: ExportOptions,
) -> tuple[str, ...]:
    """The export flags that shaped the data, in words for the card (the system prompt's text is in the rows)."""
    said = []
    if min_score is not None:
        said.append(f"kept rows with `final_score` ≥ {min_score}")
    if min_grade is not None:
        said.append(f"kept rows graded `{min_grade}` or better")
    if limit is not None:
        said.append(f"the first {limit:,} rows that passed the filters")
    if split is not None:
        said.append(f"split {split:.0%} train / {1 - split:.0%} test by a hash of each row's id (seed {seed})")
    if options.system_prompt is not None:
        said.append("a system prompt was added to every row")
    if options.include_reasoning:
        said.append("assistant reasoning kept (`--include-reasoning`)")
    return tuple(said)
