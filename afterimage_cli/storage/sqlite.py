"""SQLite storage (stdlib): rows keyed by id, committed per row in WAL mode; resumable like JSONL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

import orjson

from ..errors import OutputConflictError
from .base import BaseStorage, Row

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    fingerprint TEXT,
    row BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE,
    row BLOB NOT NULL
);
"""


class SQLiteStorage(BaseStorage):
    """Rows in an SQLite file; `afterimage export` reads JSONL, so `load_conversations` gets them out."""

    def __init__(self, path: str | Path = "out/conversations.sqlite") -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def open_run(self, fingerprint: str, *, overwrite: bool = False) -> set[str]:
        db = self._connect()
        if overwrite:
            db.execute("DELETE FROM conversations")
            db.commit()
            self.rows_on_open = 0
            return set()
        other = db.execute(
            "SELECT seq FROM conversations WHERE fingerprint IS NOT ? ORDER BY seq LIMIT 1", (fingerprint,)
        ).fetchone()
        if other is not None:
            raise OutputConflictError(
                f"{self.path} holds rows of a different run (the config, prompts, models or seed changed): "
                "pass --overwrite to replace them, or write to another path"
            )
        existing = {r[0] for r in db.execute("SELECT id FROM conversations")}
        self.rows_on_open = len(existing)
        return existing

    def append(self, row: Row) -> None:
        db = self._connect()
        meta = row.get("metadata") or {}
        db.execute(
            "INSERT OR IGNORE INTO conversations (id, fingerprint, row) VALUES (?, ?, ?)",
            (str(row.get("id")), meta.get("run_fingerprint"), orjson.dumps(row)),
        )
        db.commit()

    def close(self) -> None:
        if self._db is not None:
            # synchronous=NORMAL leaves the last commits in the WAL unsynced; a checkpoint syncs the WAL and
            # the database, so rows are on disk when the run says it is done.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None

    def _select(self, table: str, limit: int | None, offset: int | None) -> list[Row]:
        db = self._connect()
        cursor = db.execute(
            f"SELECT row FROM {table} ORDER BY seq LIMIT ? OFFSET ?",
            (-1 if limit is None else limit, offset or 0),
        )
        return [orjson.loads(r[0]) for r in cursor]

    def load_conversations(self, limit: int | None = None, offset: int | None = None) -> list[Row]:
        return self._select("conversations", limit, offset)

    def save_documents(self, documents: Iterable[Row]) -> None:
        db = self._connect()
        db.executemany(
            "INSERT OR REPLACE INTO documents (id, row) VALUES (?, ?)",
            [(str(d.get("id")), orjson.dumps(d)) for d in documents],
        )
        db.commit()

    def load_documents(self, limit: int | None = None, offset: int | None = None) -> list[Row]:
        return self._select("documents", limit, offset)
