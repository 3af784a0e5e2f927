"""A preference run killed with kill -9 mid-way, then run again: exactly N rows, each once, every one a pair."""

from __future__ import annotations

import signal
import time

import orjson

from .helpers import cli_subprocess, make_config, read_rows
from .test_preference import FAST_RETRY, OPENINGS, assert_pair_rows

N = 24


def test_kill_9_then_rerun_resumes_to_exactly_n_pairs(fake_server, tmp_path) -> None:
    fake_server.sample_spread = True
    fake_server.latency = 0.02
    fake_server.hang_after = 120  # some rows, never all of them: the kill always lands mid-run
    out = tmp_path / "out.jsonl"
    cfg = make_config(
        tmp_path,
        retry=FAST_RETRY,
        generation={"kind": "preference", "min_turns": 1, "max_turns": 2, "concurrency": 6},
        instructions={"generator": "simple", "options": {"instructions": OPENINGS}},
        preference={"strategy": "samples", "temperature": 1.0, "at_turn": "every"},
    )
    args = ("generate", str(cfg), "-n", str(N), "--model", "fake-model", "--api-base", fake_server.api_base, "-q")
    proc = cli_subprocess(*args)
    deadline = time.monotonic() + 60
    while (not out.exists() or out.read_bytes().count(b"\n") < 4) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    complete = out.read_bytes().rsplit(b"\n", 1)[0] + b"\n"  # a line torn by the kill is dropped on resume
    written = [orjson.loads(line) for line in complete.splitlines() if line.strip()]
    assert 0 < len(written) < N
    fake_server.release_hung()
    rerun = cli_subprocess(*args)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()
    rows = read_rows(out)
    assert_pair_rows(rows, N)
    assert [r["id"] for r in rows[: len(written)]] == [r["id"] for r in written]  # kept, not written again
