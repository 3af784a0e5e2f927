"""What the Ray executor's tests share: a config on the fake server, the CLI as a process of its own session
(so a test can end every process a killed driver leaves), waiting for its lines, and rates the server saw."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from tests.fakeserver import FakeOpenAIServer
from tests.helpers import cli_subprocess, make_config, read_rows

RPM = 600  # 10 requests/s: a run of ~100 calls lasts ~10 s, long enough to kill something mid-run


def ray_config(tmp_path: Path, server: FakeOpenAIServer, **sections: Any) -> Path:
    """A conversation run against the fake server, its respondent limited to RPM requests/min."""
    respondent = {"model": "fake-model", "api_base": server.api_base, "api_key_env": "FAKE_KEY", "rpm": RPM}
    return make_config(
        tmp_path,
        respondent=respondent,
        generation={"num_conversations": 5, "max_turns": 2, "min_turns": 1, "concurrency": 16, "seed": 3},
        **sections,
    )


class Driver:
    """`afterimage generate … --executor ray` as a process; its stderr read as it comes."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        full_env = {"FAKE_KEY": "k", **(env or {})}
        self.process = cli_subprocess("generate", *args, env=full_env, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip())

    def wait_for(self, text: str, timeout: float = 180.0) -> str:
        """The first stderr line holding `text` (a deadline only for a hung run, never an assertion of speed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} on stderr:\n" + "\n".join(self.lines))

    def worker_pids(self) -> list[int]:
        line = self.wait_for("ray: ")
        return [int(p) for p in line.split("pids ")[1].rstrip(")").split(", ")]

    def finish(self, timeout: float = 300.0) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        """kill -9 of the driver, then of every process of its session it leaves (a local Ray's agents)."""
        self.process.kill()
        self.process.wait()
        self.end_session()

    def end_session(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for_rows(path: Path, count: int, driver: Driver, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_bytes().splitlines()) >= count:
            return
        if driver.process.poll() is not None:
            raise AssertionError("the run ended early:\n" + "\n".join(driver.lines))
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} rows in {path}")


def ids_once(path: Path, count: int) -> list[str]:
    """The row ids, asserting there are exactly `count`, each once."""
    ids = [row["id"] for row in read_rows(path)]
    assert len(ids) == count, f"{len(ids)} rows, not {count}"
    assert len(set(ids)) == count, "a row id is written twice"
    return ids


def admitted_per_minute(answered_at: list[float], rpm: float) -> float:
    """Answered requests per minute as the server counted them, after the limiter's initial burst (a bucket of
    rpm/60 requests, full when the run starts): from the first answer that had to wait for a refill to the last."""
    times = sorted(answered_at)
    burst = int(max(1.0, rpm / 60))
    return (len(times) - 1 - burst) / (times[-1] - times[burst]) * 60


def kill_pid(pid: int) -> None:
    """kill -9 of one process this test's run started (a worker)."""
    os.kill(pid, signal.SIGKILL)
