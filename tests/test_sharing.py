"""Many afterimage processes at once on one response cache and one retrieval index: the README's
three-stage pipeline, parallel runs of one config, and a run that sits on a slow call meanwhile."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

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
                "generate", str(cfg), "-n", "12", "--seed", str(seed), "-o", str(tmp_path / f"run{seed}.jsonl"),
                "--model", "fake-model", "--api-base", fake_server.api_base, "-q",
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
        runs = {
            seed: cli_subprocess(
                "generate", "configs/quickstart.yaml", "-n", "6", "--seed", str(seed), "-o", f"out/run{seed}.jsonl",
                "-q", cwd=work,
            )  # fmt: skip
            for seed in (11, 12)
        }
        for seed, proc in runs.items():
            code, err = finish(proc)
            assert code == 0, err
            assert len(read_rows(work / "out" / f"run{seed}.jsonl")) == 6
    finally:
        stop(holder)


def test_two_runs_start_at_once_on_an_unbuilt_index(tmp_path: Path) -> None:
    """Two fresh runs of one rag config started together both finish; the index is whole afterwards."""
    work = quickstart(tmp_path)
    runs = {
        seed: cli_subprocess(
            "generate", "configs/quickstart.yaml", "-n", "5", "--seed", str(seed), "-o", f"out/run{seed}.jsonl",
            cwd=work,
        )  # fmt: skip
        for seed in (21, 22)
    }
    for seed, proc in runs.items():
        code, err = finish(proc)
        assert code == 0, err
        assert len(read_rows(work / "out" / f"run{seed}.jsonl")) == 5
    again = cli_subprocess("generate", "configs/quickstart.yaml", "-n", "1", "-o", "out/again.jsonl", cwd=work)
    code, err = finish(again)
    assert code == 0 and "reusing the index of" in err, err
