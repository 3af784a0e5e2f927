"""The rows a viewer page embeds: read once, sampled uniformly beyond a cap, stored compactly.

Each row becomes two things: its entries in a few columns the page filters and sorts on (id, score,
grade, persona, chunks, turns, model, length, cost, …) and its whole JSON, kept as bytes so 100k rows
cost their size and not Python objects. Long strings many rows repeat (contexts, personas, run
fingerprints) are stored once in a string table and referenced as ``{"$s": index}``; so are the
few values the columns repeat (grades, models, personas, chunk ids).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..dataset_profile import DatasetProfile, row_context_ids, row_kind, row_metadata, row_models, row_persona
from ..engine.ledger import ledger_path, read_ledger
from ..export.reader import STDIN, RowReader
from ..export.rows import row_grade, row_score
from ..rowshape import messages_of, preference_of, text_of

REF = "$s"
"""The key of a reference into the string table: {"$s": 3} is strings[3]."""
_INTERNED_FIELDS = ("persona", "instruction_context", "response_context")
_INTERNED_METADATA = ("persona_name", "run_fingerprint", "evaluation_fingerprint")
TITLE_CHARS = 160
COLUMNS = ("id", "line", "score", "grade", "persona", "chunks", "turns", "model", "chars", "ended", "cost")
COLUMNS += ("tokens", "kind", "title", "dup")
SAMPLE_SEED = 0


class StringTable:
    """Each distinct string once; `ref` answers its index."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.strings: list[str] = []

    def ref(self, value: str) -> int:
        found = self.index.get(value)
        if found is None:
            found = self.index[value] = len(self.strings)
            self.strings.append(value)
        return found

    def maybe(self, value: Any) -> int | None:
        return self.ref(value) if isinstance(value, str) else None


@dataclass
class Catalog:
    """What a page shows: the embedded rows (file order), how many were read, the set-wide profile and
    the ledger's rejected items."""

    source: str
    max_rows: int
    strings: StringTable = field(default_factory=StringTable)
    columns: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in COLUMNS})
    rows: list[bytes] = field(default_factory=list)
    read: int = 0
    skipped: int = 0
    profile: DatasetProfile = field(default_factory=DatasetProfile)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    ledger: str | None = None

    @property
    def shown(self) -> int:
        return len(self.rows)

    @property
    def sampled(self) -> bool:
        return self.read > self.shown


def build_catalog(reader: RowReader, source: str, max_rows: int) -> Catalog:
    """Read every row (the profile counts them all); keep a uniform sample of `max_rows` in file order."""
    catalog = Catalog(source, max_rows)
    rejections = _ledger_rejections(source)
    rng = random.Random(SAMPLE_SEED)
    slots: list[tuple[int, list[Any], bytes]] = []
    number = 0
    for number, row in enumerate(reader, 1):
        catalog.profile.add(row)
        row_id = row.get("id")
        if row_id is not None and rejections:
            rejections.pop(str(row_id), None)  # rejected once, written later (--retry-rejected): not rejected
        if len(slots) < max_rows:
            slots.append(_entry(catalog.strings, row, number))
        else:  # reservoir sampling: every row ends up kept with the same probability
            slot = rng.randrange(number)
            if slot < max_rows:
                slots[slot] = _entry(catalog.strings, row, number)
    slots.sort(key=lambda entry: entry[0])
    for _, values, data in slots:
        for name, value in zip(COLUMNS, values, strict=True):
            catalog.columns[name].append(value)
        catalog.rows.append(data)
    catalog.read, catalog.skipped = number, reader.skipped
    catalog.rejected = sorted(rejections.values(), key=lambda r: (str(r.get("command")), int(r.get("item") or 0)))
    ledger = ledger_path(source) if source != STDIN else None
    catalog.ledger = ledger.name if ledger is not None and ledger.exists() else None
    return catalog


def _entry(strings: StringTable, row: dict[str, Any], number: int) -> tuple[int, list[Any], bytes]:
    """(line, the row's column values in COLUMNS order, its compact JSON)."""
    metadata = row_metadata(row)
    messages = messages_of(row)
    pair = preference_of(row)
    if pair is not None:
        messages = [*messages, *pair[0]]
    usage = metadata.get("usage") if isinstance(metadata.get("usage"), dict) else {}
    metrics = metadata.get("metrics") if isinstance(metadata.get("metrics"), dict) else {}
    persona = row_persona(row)
    chunk_ids = row_context_ids(metadata)
    documents = metadata.get("document_ids")
    if isinstance(documents, list):
        chunk_ids += [str(d) for d in documents]
    first_user = next((text_of(m) for m in messages if m.get("role") == "user"), "")
    row_id = row.get("id")
    cost = usage.get("cost_usd")
    values = [
        f"#{number}" if row_id is None else str(row_id),
        number,
        row_score(row),
        strings.maybe(row_grade(row)),
        None if persona is None else strings.ref(persona),
        [strings.ref(c) for c in chunk_ids],
        sum(1 for m in messages if m.get("role") == "user"),
        strings.maybe(row_models(metadata).get("respondent")),
        sum(len(text_of(m)) for m in messages),
        strings.maybe(metadata.get("ended_by")),
        float(cost) if isinstance(cost, int | float) else None,
        usage.get("total_tokens") if isinstance(usage.get("total_tokens"), int) else None,
        strings.ref(row_kind(row, messages)),
        " ".join(first_user[: TITLE_CHARS * 2].split())[:TITLE_CHARS],
        1 if metrics.get("duplicate") else 0,
    ]
    return number, values, orjson.dumps(_interned(strings, row))


def _interned(strings: StringTable, row: dict[str, Any]) -> dict[str, Any]:
    """The row with its long repeated strings replaced by references into the table."""
    compact = dict(row)
    for key in _INTERNED_FIELDS:
        value = compact.get(key)
        if isinstance(value, str):
            compact[key] = {REF: strings.ref(value)}
    metadata = compact.get("metadata")
    if isinstance(metadata, dict):
        metadata = compact["metadata"] = dict(metadata)
        for key in _INTERNED_METADATA:
            value = metadata.get(key)
            if isinstance(value, str):
                metadata[key] = {REF: strings.ref(value)}
    return compact


def _ledger_rejections(source: str) -> dict[str, dict[str, Any]]:
    """The items the run's ledger (beside INPUT) records as rejected, by id (the last record of an item)."""
    if source == STDIN:
        return {}
    records = read_ledger(ledger_path(Path(source)))
    command = None
    by_item: dict[tuple[str | None, Any], dict[str, Any]] = {}
    for record in records:
        if record["event"] == "start":
            command = record.get("command")
        elif record["event"] == "rejected":
            by_item[(command, record.get("item"))] = {**record, "command": command}
    return {str(r.get("id")): r for r in by_item.values()}
