"""What `afterimage status OUT` reports, read from the output and its ledger alone (no call, no config)."""

from __future__ import annotations

import os
import socket
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from ..errors import UsageError
from .ledger import ledger_path, read_ledger

SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def _row_ids(output: Path, fingerprint: str | None) -> tuple[set[str], float, bool]:
    """(ids of the run's rows, their summed cost, whether some row is unpriced)."""
    ids: set[str] = set()
    cost, unpriced = 0.0, False
    for row in _rows(output):
        meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
        if fingerprint is not None and meta.get("run_fingerprint") not in (None, fingerprint):
            continue
        ids.add(str(row.get("id")))
        spent = (meta.get("usage") or {}).get("cost_usd") if isinstance(meta.get("usage"), dict) else None
        if spent is None:
            unpriced = True
        else:
            cost += float(spent)
    return ids, cost, unpriced


def _rows(output: Path) -> Any:
    if output.suffix in SQLITE_SUFFIXES:
        db = sqlite3.connect(f"file:{output}?mode=ro", uri=True)
        try:
            for (blob,) in db.execute("SELECT row FROM conversations ORDER BY seq"):
                yield orjson.loads(blob)
        finally:
            db.close()
        return
    with open(output, "rb") as fh:
        for line in fh:
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a torn last line: the next run cuts it
            if isinstance(row, dict):
                yield row


def _alive(pid: int, host: str | None) -> bool:
    """Whether the process that started the last session still runs (only knowable on its own host)."""
    if host not in (None, socket.gethostname()):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_status(output: str | Path) -> dict[str, Any]:
    """Rows done, rejected items by cause, cost so far, and the run's state, from OUT and OUT's ledger."""
    out = Path(output)
    ledger = ledger_path(out)
    records = read_ledger(ledger)
    if not out.exists() and not records:
        raise UsageError(f"{out}: no such output, and no ledger beside it ({ledger})")
    starts = [r for r in records if r["event"] == "start"]
    last_start = starts[-1] if starts else {}
    fingerprint = last_start.get("fingerprint")
    ids, row_cost, unpriced = _row_ids(out, fingerprint) if out.exists() else (set(), 0.0, False)

    rejected: dict[int, dict[str, Any]] = {}
    for record in records:
        if record["event"] == "rejected" and record.get("id") not in ids:
            rejected[int(record["item"])] = record
    causes = Counter(str(r.get("cause")) for r in rejected.values())
    spent, sessions_unpriced = _session_spending(records)
    target = last_start.get("target")
    state = _state(records, len(ids), target)
    return {
        "output": str(out),
        "ledger": str(ledger) if ledger and ledger.exists() else None,
        "command": last_start.get("command"),
        "fingerprint": fingerprint,
        "state": state["state"],
        "reason": state.get("reason"),
        "finished": state["state"] == "finished",
        "target": target,
        "rows": len(ids),
        "rejected": len(rejected),
        "rejected_by_cause": dict(causes.most_common()),
        "sessions": len(starts),
        # What every session spent (failed and rejected calls included); rows alone when no ledger says.
        "cost_usd": None if (sessions_unpriced if starts else unpriced) else round(spent if starts else row_cost, 6),
        "rows_cost_usd": None if unpriced else round(row_cost, 6),
    }


def _session_spending(records: list[dict[str, Any]]) -> tuple[float, bool]:
    """The sum over sessions of each one's last checkpoint or end (a killed session keeps its checkpoint)."""
    total, unpriced = 0.0, False
    latest: dict[str, Any] | None = None
    for record in [*records, {"event": "start"}]:
        if record["event"] == "start":
            if latest is not None:
                cost = latest.get("cost_usd")
                if cost is None and latest.get("calls"):
                    unpriced = True
                total += float(cost or 0.0)
            latest = None
        elif record["event"] in ("checkpoint", "end") and isinstance(record.get("usage"), dict):
            latest = record["usage"]
    return total, unpriced


def _state(records: list[dict[str, Any]], rows: int, target: int | None) -> dict[str, Any]:
    """`finished`, `running`, `stopped` (with the reason), `interrupted` or `killed`, or `not started`."""
    if not records:
        return {"state": "finished" if target is not None and rows >= target else "unknown"}
    last_start = (
        max(i for i, r in enumerate(records) if r["event"] == "start")
        if any(r["event"] == "start" for r in records)
        else None
    )
    if last_start is None:
        return {"state": "unknown"}
    session = records[last_start:]
    end = next((r for r in reversed(session) if r["event"] == "end"), None)
    if end is None:
        start = session[0]
        alive = _alive(int(start.get("pid") or 0), start.get("host")) if start.get("pid") else False
        return {"state": "running" if alive else "killed"}
    status = str(end.get("status"))
    if status == "finished" and target is not None and rows < target:
        return {"state": "incomplete", "reason": f"{rows} of {target} rows are in the output"}
    return {"state": status, "reason": end.get("reason")}
