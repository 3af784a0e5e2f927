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
from ..evaluation.resume import FINGERPRINT_KEY
from ..overrides import STORAGE_BY_SUFFIX
from .ledger import ledger_path, read_ledger


def _row_ids(output: Path, fingerprint: str | None, command: str | None) -> tuple[set[str], float, bool]:
    """(ids of the run's rows, their summed cost, whether some row is unpriced). A row belongs to the run
    by the fingerprint its command stamps: generate's run fingerprint, evaluate's evaluation fingerprint."""
    stamp = FINGERPRINT_KEY if command == "evaluate" else "run_fingerprint"
    ids: set[str] = set()
    cost, unpriced = 0.0, False
    for row in _rows(output):
        meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
        if fingerprint is not None and meta.get(stamp) not in (None, fingerprint):
            continue
        ids.add(str(row.get("id")))
        spent = (meta.get("usage") or {}).get("cost_usd") if isinstance(meta.get("usage"), dict) else None
        if spent is None:
            unpriced = True
        else:
            cost += float(spent)
    return ids, cost, unpriced


def _rows(output: Path) -> Any:
    if STORAGE_BY_SUFFIX.get(output.suffix) == "sqlite":
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
    fingerprint, command = last_start.get("fingerprint"), last_start.get("command")
    ids, row_cost, unpriced = _row_ids(out, fingerprint, command) if out.exists() else (set(), 0.0, False)

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
        "command": command,
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
        **_endpoints(records),
        **_batches(records),
    }


def _endpoints(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The last session's calls, errors and latency per endpoint, of models served by several (its latest
    checkpoint or end says)."""
    for record in reversed(records):
        if record["event"] == "start":
            return {}
        usage = record.get("usage")
        if record["event"] in ("checkpoint", "end") and isinstance(usage, dict) and usage.get("endpoints"):
            return {"endpoints": usage["endpoints"]}
    return {}


def _batches(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch mode: the rounds so far and every batch (id, model, round, requests, last known status)."""
    batches: dict[str, dict[str, Any]] = {}
    for record in records:
        event = record["event"]
        if event == "batch_submitted":
            batches[record["id"]] = {
                "id": record["id"],
                "model": record.get("model"),
                "round": record.get("round"),
                "requests": len(record.get("custom_ids") or ()),
                "status": "submitted",
            }
        elif event in ("batch_status", "batch_ended") and record.get("id") in batches:
            batch = batches[record["id"]]
            batch["status"] = record.get("status")
            batch.update({k: record[k] for k in ("completed", "failed", "answered") if k in record})
    if not batches:
        return {}
    ended = {"completed", "expired", "cancelled", "failed", "ended"}
    return {
        "batch": {
            "rounds": max(int(b["round"] or 0) for b in batches.values()),
            "batches": list(batches.values()),
            "requests_submitted": sum(b["requests"] for b in batches.values()),
            "in_flight": sum(b["status"] not in ended for b in batches.values()),
        }
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
    """How the last session stands: `finished`, `incomplete`, `stopped` or `interrupted` (with the reason),
    `running` (its process is alive), `killed`, or `unknown` when no session started."""
    starts = [number for number, record in enumerate(records) if record["event"] == "start"]
    if not starts:
        return {"state": "unknown"}
    session = records[starts[-1] :]
    end = next((r for r in reversed(session) if r["event"] == "end"), None)
    if end is None:
        start = session[0]
        alive = _alive(int(start["pid"]), start.get("host")) if start.get("pid") else False
        return {"state": "running" if alive else "killed"}
    status = str(end.get("status"))
    if status == "finished" and target is not None and rows < target:
        return {"state": "incomplete", "reason": f"{rows} of {target} rows are in the output"}
    return {"state": status, "reason": end.get("reason")}
