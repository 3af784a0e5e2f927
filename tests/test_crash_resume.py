"""kill -9 and Ctrl-C at any moment, then the same command again: exactly N rows, no duplicates."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from afterimage_cli.storage.jsonl import FSYNC_INTERVAL_S, JSONLStorage
from afterimage_cli.storage.sqlite import SQLiteStorage

from .evaluate_helpers import conversation_row, write_rows
from .helpers import cli_subprocess, invoke, make_config, read_rows

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


@pytest.mark.parametrize(
    "tail",
    [b"\0" * 4096, b'{"id": "x", "conversations": [{"ro' + b"\0" * 3000, b"\0" * 512 + b"\n" + b"\0" * 512],
    ids=["nul-blocks", "row-start-then-nul", "nul-with-newline"],
)
def test_nul_tail_of_a_power_loss_is_cut_and_the_run_resumes(tmp_path, tail: bytes) -> None:
    """ext4 leaves a file's unwritten tail as NUL bytes: cut it, keep every complete row, finish the run."""
    cfg = make_config(tmp_path)
    assert invoke("generate", str(cfg), "-n", "6", "-q").exit_code == 0
    out = tmp_path / "out.jsonl"
    complete = out.read_bytes()
    out.write_bytes(complete + tail)
    result = invoke("generate", str(cfg), "-n", "8", "-q")
    assert result.exit_code == 0, result.stderr
    assert "NUL bytes" in result.stderr and "every complete row before it is kept" in result.stderr
    assert out.read_bytes().startswith(complete) and b"\0" not in out.read_bytes()
    assert len({r["id"] for r in read_rows(out)}) == len(read_rows(out)) == 8


def test_nul_region_in_the_middle_is_an_error_that_keeps_the_rows(tmp_path) -> None:
    """NUL bytes followed by rows are not a torn tail: the file is untouched and the advice is not --overwrite."""
    cfg = make_config(tmp_path)
    assert invoke("generate", str(cfg), "-n", "6", "-q").exit_code == 0
    out = tmp_path / "out.jsonl"
    lines = out.read_bytes().splitlines(keepends=True)
    damaged = b"".join(lines[:3]) + b"\0" * 4096 + b"".join(lines[3:])
    out.write_bytes(damaged)
    result = invoke("generate", str(cfg), "-n", "8", "-q")
    assert result.exit_code == 1
    message = result.stderr
    assert f"{out}:4: a region of NUL bytes" in message and "--overwrite" not in message
    assert out.read_bytes() == damaged
    # The advice works: move the file aside, keep its complete rows, re-run.
    subprocess.run(["mv", str(out), f"{out}.damaged"], check=True)
    with open(out, "wb") as kept:
        subprocess.run(["grep", "-a", "-v", "-P", r"\x00", f"{out}.damaged"], stdout=kept, check=True)
    assert invoke("generate", str(cfg), "-n", "8", "-q").exit_code == 0
    rows = read_rows(out)
    assert len(rows) == 8 and {orjson.loads(line)["id"] for line in lines} <= {r["id"] for r in rows}


def test_evaluate_resume_cuts_a_nul_tail(tmp_path) -> None:
    source = write_rows(tmp_path / "in.jsonl", [conversation_row(i) for i in range(6)])
    out = tmp_path / "judged.jsonl"
    assert invoke("evaluate", str(source), "-o", str(out), "--no-judge", "-q").exit_code == 0
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:4]) + b"\0" * 2048)
    result = invoke("evaluate", str(source), "-o", str(out), "--no-judge", "-q")
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in read_rows(out)] == [f"row-{i:05d}" for i in range(6)]


def test_jsonl_rows_are_fsynced_at_close(tmp_path, monkeypatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert invoke("generate", str(make_config(tmp_path)), "-n", "4", "-q").exit_code == 0
    assert (tmp_path / "out.jsonl").stat().st_ino in synced


def test_jsonl_rows_are_fsynced_once_a_second_while_written(tmp_path, monkeypatch) -> None:
    now = [100.0]
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    storage = JSONLStorage(tmp_path / "out.jsonl", clock=lambda: now[0])
    storage.open_run("fp")
    for _ in range(3):
        storage.append({"id": "a"})
    assert synced == []
    now[0] += FSYNC_INTERVAL_S
    storage.append({"id": "b"})
    storage.append({"id": "c"})
    assert len(synced) == 1
    storage.close()
    assert len(synced) == 2


def test_sqlite_rows_reach_the_database_file_at_close(tmp_path) -> None:
    """The run checkpoints its WAL at close, even while another connection keeps the file open."""
    db = tmp_path / "rows.sqlite"
    cfg = make_config(tmp_path, storage={"type": "sqlite", "path": str(db)})
    assert invoke("generate", str(cfg), "-n", "3", "-q").exit_code == 0
    reader = sqlite3.connect(db)
    try:
        assert reader.execute("SELECT count(*) FROM conversations").fetchone() == (3,)
        assert invoke("generate", str(cfg), "-n", "6", "-q").exit_code == 0
        wal = Path(f"{db}-wal")
        assert not wal.exists() or wal.stat().st_size == 0
    finally:
        reader.close()
