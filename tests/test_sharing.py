"""Many afterimage processes at once on one response cache and one retrieval index: the README's
three-stage pipeline, parallel runs of one config, and a run that sits on a slow call meanwhile."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from afterimage_cli.providers.base import LLMResponse
from afterimage_cli.providers.cache import ResponseCache, open_response_cache
from tests.fakeserver import FakeOpenAIServer

from .helpers import ROOT, cli_subprocess, invoke, make_config, read_rows

RUN_TIMEOUT = 180  # seconds a child run may take on a busy 2-core machine before the test gives up


@pytest.fixture
def slow_server() -> Iterator[FakeOpenAIServer]:
    """A server that answers two requests and then hangs every later one (a model that stopped answering)."""
    server = FakeOpenAIServer(hang_after=2).start()
    try:
        yield server
    finally:
        server.stop()


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    """(exit code, stderr) of a child run."""
    _, err = proc.communicate(timeout=RUN_TIMEOUT)
    return proc.returncode, (err or b"").decode(errors="replace")


def wait_until_hung(server: FakeOpenAIServer, proc: subprocess.Popen[bytes]) -> None:
    """Wait until `proc` sits on a hung request (so everything it did before, it did)."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while server.snapshot()["hung"] < 1:
        if proc.poll() is not None:
            pytest.fail(f"the holding run ended early: {finish(proc)}")
        if time.monotonic() > deadline:
            pytest.fail("the holding run never reached the hung server")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.communicate(timeout=RUN_TIMEOUT)


def quickstart(tmp_path: Path) -> Path:
    """A copy of configs/ (the quickstart and its corpus) to run from, so out/ lands in tmp_path."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    return tmp_path


def run_seeds_at_once(work: Path, seeds: tuple[int, ...], *, rows: int, extra: tuple[str, ...] = ()) -> None:
    """Start one quickstart run per seed (each its own output) together; each must write its rows."""
    runs = {
        seed: cli_subprocess(
            "generate",
            "configs/quickstart.yaml",
            "-n",
            str(rows),
            "--seed",
            str(seed),
            "-o",
            f"out/run{seed}.jsonl",
            *extra,
            cwd=work,
        )  # fmt: skip
        for seed in seeds
    }
    for seed, proc in runs.items():
        code, err = finish(proc)
        assert code == 0, err
        assert len(read_rows(work / "out" / f"run{seed}.jsonl")) == rows


# --- the response cache ----------------------------------------------------------------------------


def test_runs_share_the_cache_while_another_run_waits_on_a_slow_call(
    tmp_path: Path, fake_server: FakeOpenAIServer, slow_server: FakeOpenAIServer
) -> None:
    """A run whose model stopped answering must not lock the cache: two more runs on the same cache
    finish with their rows, and nothing they cached is lost (their re-runs make zero calls)."""
    cache = tmp_path / "shared.sqlite"
    cfg = make_config(tmp_path, cache={"path": str(cache)}, generation={"max_turns": 2, "min_turns": 1})
    holder = cli_subprocess(
        "generate", str(cfg), "-n", "3", "--concurrency", "1", "-o", str(tmp_path / "holder.jsonl"),
        "--model", "fake-model", "--api-base", slow_server.api_base, "-q",
    )  # fmt: skip
    try:
        wait_until_hung(slow_server, holder)
        runs = {
            seed: cli_subprocess(
                "generate",
                str(cfg),
                "-n",
                "12",
                "--seed",
                str(seed),
                "-o",
                str(tmp_path / f"run{seed}.jsonl"),
                "--model",
                "fake-model",
                "--api-base",
                fake_server.api_base,
                "-q",
            )  # fmt: skip
            for seed in (2, 3)
        }
        for seed, proc in runs.items():
            code, err = finish(proc)
            assert code == 0, err
            assert "database is locked" not in err
            assert len(read_rows(tmp_path / f"run{seed}.jsonl")) == 12
    finally:
        stop(holder)
    calls = fake_server.snapshot()["ok"]
    for seed in (2, 3):
        again = invoke(
            "generate", str(cfg), "-n", "12", "--seed", str(seed), "-o", str(tmp_path / f"again{seed}.jsonl"),
            "--model", "fake-model", "--api-base", fake_server.api_base, "-q", "--json",
        )  # fmt: skip
        assert again.exit_code == 0, again.output
        summary = orjson.loads(again.stdout.strip().splitlines()[-1])
        assert summary["rows_written"] == 12 and summary["calls"] == 0 and summary["cache_hits"] > 0
    assert fake_server.snapshot()["ok"] == calls


def test_the_readme_pipeline_with_the_cache_on(tmp_path: Path, fake_server: FakeOpenAIServer) -> None:
    """generate -o - | evaluate - | export -: generate and evaluate share the response cache."""
    work = quickstart(tmp_path)
    url = fake_server.api_base
    logs = {name: (tmp_path / f"{name}.err").open("wb") for name in ("generate", "evaluate", "export")}
    out = tmp_path / "train.jsonl"
    gen = cli_subprocess(
        "generate", "configs/quickstart.yaml", "--model", "fake-model", "--api-base", url, "-o", "-", "-n", "60",
        "-q", cwd=work, stderr=logs["generate"],
    )  # fmt: skip
    judge = cli_subprocess(
        "evaluate", "-", "--judge-model", "fake-model", "--api-base", url, "-q",
        cwd=work, stdin=gen.stdout, stderr=logs["evaluate"],
    )  # fmt: skip
    assert gen.stdout is not None and judge.stdout is not None
    gen.stdout.close()  # the pipe belongs to evaluate now: generate sees it close if evaluate dies
    export = cli_subprocess(
        "export", "-", "--format", "sharegpt", "-o", str(out), cwd=work, stdin=judge.stdout, stderr=logs["export"]
    )
    judge.stdout.close()
    codes = [proc.wait(timeout=RUN_TIMEOUT) for proc in (gen, judge, export)]
    for log in logs.values():
        log.close()
    errors = {name: (tmp_path / f"{name}.err").read_text() for name in logs}
    assert codes == [0, 0, 0], errors
    assert len(read_rows(out)) == 60


class Clock:
    """A hand-moved clock for the cache's flush timer."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def answer(text: str) -> LLMResponse:
    return LLMResponse(text=text, model="m")


def stored(path: Path) -> dict[str, str]:
    """What another process reading the cache file sees: key → answer text."""
    with sqlite3.connect(path) as db:
        return {key: orjson.loads(value)["text"] for key, value in db.execute("SELECT key, value FROM responses")}


def test_puts_wait_in_memory_and_never_hold_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    clock = Clock()
    first = ResponseCache(path, flush_every=3, flush_interval=10.0, clock=clock)
    second = ResponseCache(path, flush_every=3, flush_interval=10.0, busy_timeout=0.05, clock=clock)
    first.put("a", answer("A"))
    assert first.get("a") is not None and first.get("a").cached  # answered from memory before it is written
    assert second.get("a") is None and stored(path) == {}
    second.put("b", answer("B"))
    assert second.flush()  # not blocked by the first cache's unwritten put
    first.put("c", answer("C"))
    first.put("d", answer("D"))  # the third pending put: written now
    assert stored(path) == {"a": "A", "b": "B", "c": "C", "d": "D"}
    second.put("e", answer("E"))
    clock.now = 10.0  # the interval passed: the next call flushes, even a read
    assert second.get("zz") is None and stored(path)["e"] == "E"
    first.put("f", answer("F"))
    first.close()  # close writes the rest
    second.close()
    assert set(stored(path)) == set("abcdef")


def test_a_refused_write_warns_and_is_written_later(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.sqlite"
    clock = Clock()
    cache = ResponseCache(path, flush_every=1, flush_interval=1.0, busy_timeout=0.05, clock=clock)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process that holds the write lock and does not let go
    cache.put("a", answer("A"))  # tries, is refused, goes on
    cache.put("b", answer("B"))  # not tried again yet: the wait doubled after the refusal
    assert "database is locked; answers are kept in memory and written later" in capsys.readouterr().err
    assert cache.get("a") is not None
    other.execute("ROLLBACK")
    clock.now = 2.0
    cache.put("c", answer("C"))
    assert stored(path) == {"a": "A", "b": "B", "c": "C"}
    other.close()
    cache.close()


def test_answers_past_the_memory_bound_go_uncached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("afterimage_cli.providers.cache.MAX_PENDING", 2)
    path = tmp_path / "c.sqlite"
    clock = Clock()
    cache = ResponseCache(path, flush_every=1, flush_interval=1.0, busy_timeout=0.05, clock=clock)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    for i, key in enumerate("abc"):
        clock.now = 10.0 * i  # every put is due for a try, and every try is refused
        cache.put(key, answer(key))
    assert "some answers were not cached (a re-run asks for them again)" in capsys.readouterr().err
    assert cache.get("a") is None  # dropped, not kept without bound
    other.execute("ROLLBACK")
    other.close()
    cache.close()


def test_a_cache_locked_at_open_is_skipped_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.sqlite"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN EXCLUSIVE")  # a rollback-journal database locked by a foreign program
    assert open_response_cache(path, busy_timeout=0.05) is None
    assert "this run goes without it" in capsys.readouterr().err
    other.execute("ROLLBACK")
    other.close()


def test_a_cache_path_that_cannot_hold_a_cache_is_a_config_error(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, cache={"path": str(tmp_path)})  # a directory
    result = invoke("generate", str(cfg), "-n", "1", "--model", "m", "--api-base", "http://127.0.0.1:9/v1", "-q")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: cache.path: {tmp_path} cannot hold the response cache"), result.stderr


# --- the retrieval index ---------------------------------------------------------------------------


def test_runs_of_one_rag_config_share_its_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow_server: FakeOpenAIServer
) -> None:
    """While one run of the quickstart holds its index (waiting on its model), two more runs of the same
    config with other seeds and outputs run at once and write their rows."""
    work = quickstart(tmp_path)
    monkeypatch.chdir(work)
    first = invoke("generate", "configs/quickstart.yaml", "-n", "2", "-o", "out/first.jsonl", "-q")
    assert first.exit_code == 0, first.output  # builds the index and writes the personas
    slow_server.hang_after = 0
    holder = cli_subprocess(
        "generate", "configs/quickstart.yaml", "-o", "out/holder.jsonl", "--model", "fake-model",
        "--api-base", slow_server.api_base, "-q", cwd=work,
    )  # fmt: skip
    try:
        wait_until_hung(slow_server, holder)
        run_seeds_at_once(work, (11, 12), rows=6, extra=("-q",))
    finally:
        stop(holder)


def test_two_runs_start_at_once_on_an_unbuilt_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two fresh runs of one rag config started together both finish; the index is whole afterwards."""
    work = quickstart(tmp_path)
    run_seeds_at_once(work, (21, 22), rows=5)
    monkeypatch.chdir(work)
    again = invoke("generate", "configs/quickstart.yaml", "-n", "1", "-o", "out/again.jsonl")
    assert again.exit_code == 0 and "reusing the index of 23 chunks (loaded in" in again.stderr, again.output
    files = [p.name for p in (work / "out" / "qdrant").iterdir()]
    assert len([f for f in files if f.endswith(".vectors")]) == 1 and not [f for f in files if f.endswith(".tmp")]
