"""kill -9 and Ctrl-C at any moment, then the same command again: exactly N rows, no duplicates."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from afterimage_cli.storage.sqlite import SQLiteStorage

from .helpers import cli_subprocess, make_config, read_rows

N = 60


def _rows_in(path: Path, storage: str) -> int:
    if not path.exists():
        return 0
    if storage == "sqlite":
        return len(SQLiteStorage(path).load_conversations())
    return path.read_bytes().count(b"\n")


def _start(srv, cfg: Path):
    return cli_subprocess("generate", str(cfg), "-n", str(N), "--model", "fake", "--api-base", srv.api_base, "--quiet")


def _wait_for_rows(path: Path, storage: str, at_least: int, proc) -> None:
    deadline = time.monotonic() + 30
    while _rows_in(path, storage) < at_least:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)


def _check_complete(path: Path, storage: str) -> None:
    if storage == "sqlite":
        rows = SQLiteStorage(path).load_conversations()
    else:
        assert path.read_bytes().endswith(b"\n")
        rows = read_rows(path)
    assert len(rows) == N
    assert len({r["id"] for r in rows}) == N


@pytest.mark.parametrize("storage", ["jsonl", "sqlite"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_resumes_to_exactly_n(fake_server, tmp_path, storage, sig) -> None:
    fake_server.latency = 0.03
    fake_server.hang_after = 100  # some rows, never all N: the signal always lands mid-run
    out = tmp_path / ("out.jsonl" if storage == "jsonl" else "out.sqlite")
    cfg = make_config(
        tmp_path,
        storage={"type": storage, "path": str(out)},
        generation={"concurrency": 6, "min_turns": 1, "max_turns": 2},
    )
    proc = _start(fake_server, cfg)
    _wait_for_rows(out, storage, 8, proc)
    proc.send_signal(sig)
    code = proc.wait(timeout=30)
    if sig in (signal.SIGINT, signal.SIGTERM):
        assert code == (130 if sig == signal.SIGINT else 143), proc.stderr.read().decode()
    else:
        assert code == -signal.SIGKILL
    written = _rows_in(out, storage)
    assert 0 < written < N
    fake_server.release_hung()
    rerun = _start(fake_server, cfg)
    _, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err.decode()
    _check_complete(out, storage)


def test_torn_last_line_is_dropped(fake_server, tmp_path) -> None:
    cfg = make_config(tmp_path)
    out = tmp_path / "out.jsonl"
    first = _start(fake_server, cfg)
    first.communicate(timeout=60)
    lines = out.read_bytes().splitlines(keepends=True)
    # Simulate a kill in the middle of a write: the last row loses its tail.
    out.write_bytes(b"".join(lines[:10]) + lines[10][:25])
    rerun = _start(fake_server, cfg)
    _, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err.decode()
    assert b"torn last line" in err
    _check_complete(out, "jsonl")
