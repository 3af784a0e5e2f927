"""An evaluate run killed or interrupted mid-way resumes to every row, each judged once."""

from __future__ import annotations

import signal
import time

import pytest

from .evaluate_helpers import conversation_row, judge_config, judge_responder, published_row, write_rows
from .helpers import cli_subprocess, read_rows

N = 40


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_evaluate_resumes(fake_server, tmp_path, sig) -> None:
    fake_server.responder = judge_responder()
    fake_server.latency = 0.03
    fake_server.hang_after = N // 2  # the run cannot finish before the signal, however the machine schedules us
    rows = [conversation_row(i) if i % 2 else published_row(i) for i in range(N)]
    source = write_rows(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    args = ("evaluate", str(source), "-o", str(out), "-c", str(judge_config(tmp_path, fake_server)), "-q")
    proc = cli_subprocess(*args, "--concurrency", "4")
    deadline = time.monotonic() + 30
    while not out.exists() or out.read_bytes().count(b"\n") < 8:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait(timeout=20)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and b"re-run the same command" in proc.stderr.read()
    first_run = len(read_rows(out)) if out.read_bytes().endswith(b"\n") else None
    fake_server.release_hung()
    while fake_server.snapshot()["in_flight"]:  # the killed client's requests still finish on the server
        time.sleep(0.01)
    fake_server.reset_stats()
    again = cli_subprocess(*args)
    assert again.wait(timeout=60) == 0, again.stderr.read().decode()
    written = read_rows(out)
    assert len(written) == N
    assert sorted(r["conversations"][0]["content"] for r in written) == sorted(
        r["conversations"][0]["content"] for r in rows
    )
    if first_run is not None:
        assert fake_server.stats["ok"] == N - first_run  # only the missing rows were judged again
