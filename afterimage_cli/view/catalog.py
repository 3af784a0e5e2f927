"""The rows a viewer page embeds: read once, sampled uniformly beyond a cap, stored compactly.

Each row becomes two things: its entries in a few columns the page filters and sorts on (id, score,
grade, persona, chunks, turns, model, length, cost, …) and its whole JSON, kept as bytes so 100k rows
cost their size and not Python objects. Long strings many rows repeat (contexts, personas, run
fingerprints) are stored once in a string table and referenced as ``{"$s": index}``; so are the
few values the columns repeat (grades, models, personas, chunk ids).
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..dataset_profile import DatasetProfile, RowFacts
from ..engine.ledger import ledger_path, read_ledger
from ..export.reader import STDIN, RowReader
from ..rowshape import text_of
from .side_profile import SideProfile

REF = "$s"
"""The key of a reference into the string table: {"$s": 3} is strings[3]."""
_INTERNED_FIELDS = ("persona", "instruction_context", "response_context")
_INTERNED_METADATA = ("persona_name", "run_fingerprint", "evaluation_fingerprint")
TITLE_CHARS = 160
COLUMNS: tuple[str, ...] = ("id", "line", "score", "grade", "persona", "chunks", "turns", "model", "chars")
COLUMNS += ("ended", "cost", "tokens", "kind", "title", "dup", "tools")
SAMPLE_SEED = 0


class StringTable:
    """Each distinct string once; `ref` answers its index."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.strings: list[str] = []

    def ref(self, value: str) -> int:
        try:
            return self.index[value]  # the common case: a string seen before (a lookup, nothing else)
        except KeyError:
            found = self.index[value] = len(self.strings)
            self.strings.append(value)
            return found


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


def build_catalog(reader: RowReader, source: str, max_rows: int, *, count_aside: bool = True) -> Catalog:
    """Read every row (the profile counts them all); keep a uniform sample of `max_rows` in file order.

    A large file's profile is counted by a second process meanwhile (`count_aside`; see side_profile)."""
    catalog = Catalog(source, max_rows)
    rejections = _ledger_rejections(source)
    side = SideProfile(source) if count_aside else None
    try:
        with gc_paused():
            slots = _sample(catalog, reader, rejections, max_rows, counting=side is None or not side.active)
        if side is not None and side.active:
            catalog.profile = side.result(catalog.read)
    finally:
        if side is not None:
            side.close()
    slots.sort(key=lambda entry: entry[0])
    if slots:
        _, values, rows = zip(*slots, strict=True)
        catalog.columns = {name: list(column) for name, column in zip(COLUMNS, zip(*values, strict=True), strict=True)}
        catalog.rows = list(rows)
    catalog.skipped = reader.skipped
    catalog.rejected = sorted(rejections.values(), key=lambda r: (str(r.get("command")), int(r.get("item") or 0)))
    ledger = ledger_path(source) if source != STDIN else None
    catalog.ledger = ledger.name if ledger is not None and ledger.exists() else None
    return catalog


def _sample(
    catalog: Catalog, reader: RowReader, rejections: dict[str, dict[str, Any]], max_rows: int, *, counting: bool
) -> list[tuple[int, list[Any], bytes]]:
    """Profile every row (when `counting`); return the entries of a uniform sample of `max_rows` (reservoir
    sampling: every row ends up kept with the same probability, without knowing the count in advance)."""
    rng = random.Random(SAMPLE_SEED)
    slots: list[tuple[int, list[Any], bytes]] = []
    strings, profile = catalog.strings, catalog.profile
    for number, row in enumerate(reader, 1):
        facts = RowFacts.of(row)
        if counting:
            profile.add(row, facts)
        row_id = row.get("id")
        if row_id is not None and rejections:
            rejections.pop(str(row_id), None)  # rejected once, written later (--retry-rejected): not rejected
        catalog.read = number
        if number <= max_rows:
            slots.append(_entry(strings, row, facts, number))
        else:
            slot = rng.randrange(number)
            if slot < max_rows:
                slots[slot] = _entry(strings, row, facts, number)
    return slots


@contextmanager
def gc_paused() -> Iterator[None]:
    """Rows parsed from JSON hold no reference cycles; collecting while 100k of them stream by costs ~15 %."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _entry(strings: StringTable, row: dict[str, Any], facts: RowFacts, number: int) -> tuple[int, list[Any], bytes]:
    """(line, the row's column values in COLUMNS order, its compact JSON)."""
    ref = strings.ref
    metrics = facts.metadata.get("metrics")
    first_user = ""
    for message in facts.messages:
        if message.get("role") == "user":
            first_user = text_of(message)
            break
    row_id = row.get("id")
    cost, tokens = facts.usage.get("cost_usd"), facts.usage.get("total_tokens")
    model, ended = facts.models.get("respondent"), facts.metadata.get("ended_by")
    values = [
        f"#{number}" if row_id is None else str(row_id),
        number,
        facts.score,
        None if facts.grade is None else ref(facts.grade),
        None if facts.persona is None else ref(facts.persona),
        list(map(ref, facts.chunks + facts.documents)),
        facts.user_turns,
        None if model is None else ref(model),
        facts.chars,
        None if ended is None else ref(str(ended)),
        float(cost) if isinstance(cost, int | float) else None,
        tokens if type(tokens) is int else None,
        ref(facts.kind),
        " ".join(first_user[: TITLE_CHARS * 2].split())[:TITLE_CHARS],
        1 if type(metrics) is dict and metrics.get("duplicate") else 0,
        [ref(name) for name in _called_tools(facts.messages)] if facts.kind == "tool" else [],
    ]
    return number, values, script_safe(orjson.dumps(_interned(ref, row)))


def _called_tools(messages: list[dict[str, Any]]) -> list[str]:
    """The names of the tools the row calls, each once, in order of first call (the viewer's tool filter)."""
    names: dict[str, None] = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            function = call.get("function") if type(call) is dict else None
            if type(function) is dict:
                names[str(function.get("name"))] = None
    return list(names)


def script_safe(data: bytes) -> bytes:
    """JSON that can sit inside a script element: `<` occurs only in strings, where `\\u003c` means the same.

    Always a new object of exactly its size: kept as orjson returns it, 100k rows cost three times their
    size in memory (each sits in the larger buffer orjson grew it in)."""
    if b"<" in data:
        return data.replace(b"<", b"\\u003c")
    return bytes(memoryview(data))


def _interned(ref: Callable[[str], int], row: dict[str, Any]) -> dict[str, Any]:
    """The row with its long repeated strings replaced by references into the table, changed in place (the
    profile has read it already, and a copy per row costs ~5 % of the page's time)."""
    for key in _INTERNED_FIELDS:
        value = row.get(key)
        if type(value) is str:
            row[key] = {REF: ref(value)}
    metadata = row.get("metadata")
    if type(metadata) is dict:
        for key in _INTERNED_METADATA:
            value = metadata.get(key)
            if type(value) is str:
                metadata[key] = {REF: ref(value)}
    return row


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
