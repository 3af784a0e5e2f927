"""Several endpoints for one model, through the CLI against two fake servers: one dies mid-run and the run
ends with exactly N rows; all die and the run stops naming them; a dead one that comes back is used again;
per-replica max_concurrency; replicas added or removed resume the run and keep the cache; deployments with
their own rpm; the per-endpoint summary and `status`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fakeserver import FakeOpenAIServer

from .helpers import invoke, make_config, read_rows

FAST_RETRY = {"max_attempts": 6, "base_delay": 0.01, "max_delay": 0.05}
VERBATIM = {"generator": "simple", "options": {"instructions": ["How do I sort a list?", "What is a cache?"]}}


@pytest.fixture
def servers() -> Iterator[list[FakeOpenAIServer]]:
    pair = [FakeOpenAIServer(latency=0.01).start(), FakeOpenAIServer(latency=0.01).start()]
    try:
        yield pair
    finally:
        for server in pair:
            server.stop()


def config(tmp_path: Path, respondent: dict[str, Any] | None = None, **sections: Any) -> Path:
    sections.setdefault("generation", {"min_turns": 1, "max_turns": 1, "concurrency": 8})
    return make_config(
        tmp_path,
        respondent=respondent or {"model": "offline"},
        retry=FAST_RETRY,
        instructions=VERBATIM,
        **sections,
    )


def replicas_args(*servers: FakeOpenAIServer) -> list[str]:
    return ["--model", "fake", *(arg for s in servers for arg in ("--api-base", s.api_base))]


def when(condition: Callable[[], bool], then: Callable[[], None]) -> threading.Thread:
    """Do `then` (in a thread) as soon as `condition` holds: a server dies mid-run without a clock."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.002)
        then()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def generate(cfg: Path, *args: str) -> tuple[Any, dict[str, Any] | None]:
    result = invoke("generate", str(cfg), *args, "-q", "--json")
    return result, orjson.loads(result.stdout) if result.exit_code == 0 else None


def test_one_endpoint_dies_mid_run_and_the_run_ends_with_exactly_n_rows(servers, tmp_path) -> None:
    a, b = servers
    before: dict[str, int] = {}

    def kill_a() -> None:
        before["b"] = b.snapshot()["ok"]
        a.stop()

    watcher = when(lambda: a.stats["ok"] >= 20, kill_a)
    result, summary = generate(config(tmp_path), "-n", "150", *replicas_args(a, b))
    watcher.join()
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 150 and len({r["id"] for r in rows}) == 150
    assert a.stats["ok"] >= 20 and before["b"] > 0  # both served requests before a died
    assert summary is not None
    states = {e["endpoint"]: e for e in summary["endpoints"]["openai/fake"]}
    assert states[a.api_base]["state"] == "out" and states[a.api_base]["errors"] > 0
    assert states[b.api_base]["calls"] > states[a.api_base]["calls"] and summary["outages"] == 0


def test_every_endpoint_dead_stops_the_run_by_the_outage_rules_naming_them(servers, tmp_path) -> None:
    a, b = servers
    watcher = when(lambda: a.stats["ok"] + b.stats["ok"] >= 20, lambda: (a.stop(), b.stop()))
    cfg = config(tmp_path, error_budget={"max_outage_s": 1, "max_consecutive_failures": 3})
    result, _ = generate(cfg, "-n", "150", *replicas_args(a, b))
    watcher.join()
    assert result.exit_code == 1
    message = result.stderr
    assert "has not answered for 1 s" in message and a.api_base in message and b.api_base in message
    assert "Traceback" not in message
    assert 0 < len(read_rows(tmp_path / "out.jsonl")) < 150


def test_a_dead_endpoint_that_comes_back_is_used_again(servers, tmp_path) -> None:
    a, b = servers
    port = a.port
    back: list[FakeOpenAIServer] = []
    watcher = when(lambda: a.stats["ok"] >= 10, a.stop)

    def restart() -> None:
        watcher.join()
        back.append(FakeOpenAIServer(port=port, latency=0.01).start())

    when(lambda: b.stats["ok"] >= 60, restart)
    try:
        result, summary = generate(config(tmp_path), "-n", "400", *replicas_args(a, b))
        assert result.exit_code == 0, result.stderr
        assert back and back[0].stats["ok"] > 0  # probed, answered, and back in the rotation
        assert summary is not None
        a_stats = next(e for e in summary["endpoints"]["openai/fake"] if e["endpoint"] == a.api_base)
        assert a_stats["state"] == "up" and a_stats["times_out"] >= 1
        assert len(read_rows(tmp_path / "out.jsonl")) == 400
    finally:
        for server in back:
            server.stop()


def test_each_replica_keeps_its_own_max_concurrency(servers, tmp_path) -> None:
    a, b = servers
    a.latency = b.latency = 0.03
    respondent = {"model": "fake", "api_base": [{"url": a.api_base, "max_concurrency": 2}, b.api_base]}
    cfg = config(tmp_path, respondent, generation={"min_turns": 1, "max_turns": 1, "concurrency": 12})
    result, summary = generate(cfg, "-n", "60")
    assert result.exit_code == 0, result.stderr
    assert a.stats["max_in_flight"] == 2  # its own limit, while b took more at once
    assert b.stats["max_in_flight"] > 2
    assert summary is not None and summary["calls"] == a.stats["ok"] + b.stats["ok"]


def test_adding_or_removing_a_replica_resumes_the_run_and_keeps_the_cache(servers, tmp_path) -> None:
    a, b = servers
    cfg = config(tmp_path)
    first, _ = generate(cfg, "-n", "10", "--model", "fake", "--api-base", a.api_base)
    assert first.exit_code == 0, first.stderr
    answered_by_a = a.stats["ok"]
    result, summary = generate(cfg, "-n", "20", *replicas_args(a, b))
    assert result.exit_code == 0, result.stderr
    assert summary is not None and summary["rows_resumed"] == 10 and summary["rows_written"] == 10
    assert a.stats["ok"] > answered_by_a and b.stats["ok"] > 0  # the new rows came from both replicas
    # The whole run again, from b alone, into a fresh output: every call is answered from the cache.
    answered_by_b = b.stats["ok"]
    again, summary = generate(cfg, "-n", "20", "-o", str(tmp_path / "again.jsonl"), *replicas_args(b))
    assert again.exit_code == 0, again.stderr
    assert summary is not None and summary["calls"] == 0 and summary["cache_hits"] > 0
    assert b.stats["ok"] == answered_by_b


def test_replicas_serving_different_models_are_refused_naming_them(servers, tmp_path) -> None:
    a, b = servers
    a.model_name, b.model_name = "llama-3-8b", "qwen-7b"
    result, _ = generate(config(tmp_path), "-n", "5", *replicas_args(a, b))
    assert result.exit_code == 2
    assert "serve different models" in result.stderr and "llama-3-8b" in result.stderr and "qwen-7b" in result.stderr


def test_deployments_keep_their_own_rpm(servers, tmp_path, monkeypatch) -> None:
    a, b = servers
    monkeypatch.setenv("KEY_A", "key-a")
    monkeypatch.setenv("KEY_B", "key-b")
    respondent = {
        "model": "openai/fake",
        "deployments": [
            {"api_base": a.api_base, "api_key_env": "KEY_A", "region": "slow", "rpm": 60},
            {"api_base": b.api_base, "api_key_env": "KEY_B", "region": "fast", "rpm": 60_000},
        ],
    }
    result, summary = generate(config(tmp_path, respondent), "-n", "60")
    assert result.exit_code == 0, result.stderr
    assert summary is not None
    # rpm 60 admits one at once, then one a second: whatever this run's length, the rest went to the other.
    assert a.stats["ok"] <= 1 + summary["elapsed_s"] + 1
    assert (
        b.stats["ok"] == summary["calls"] - a.stats["ok"] > a.stats["ok"]
        and a.stats["by_key"].keys() <= {"key-a"}
        and b.stats["by_key"].keys() <= {"key-b"}
    )
    names = [e["endpoint"] for e in summary["endpoints"]["openai/fake"]]
    assert names == ["slow (openai/fake)", "fast (openai/fake)"]


def test_the_summary_and_status_show_each_endpoint(servers, tmp_path) -> None:
    a, b = servers
    result, summary = generate(config(tmp_path), "-n", "20", *replicas_args(a, b))
    assert result.exit_code == 0, result.stderr
    assert summary is not None
    entries = summary["endpoints"]["openai/fake"]
    assert [e["endpoint"] for e in entries] == [a.api_base, b.api_base]
    for entry, server in zip(entries, (a, b), strict=True):
        assert entry["calls"] == server.stats["ok"] > 0 and entry["errors"] == 0 and entry["state"] == "up"
        assert 0 < entry["p50_ms"] <= entry["p95_ms"]
    status = invoke("status", str(tmp_path / "out.jsonl"))
    assert status.exit_code == 0, status.stderr
    assert f"openai/fake @ {a.api_base}" in status.stdout and "p95" in status.stdout
    as_json = orjson.loads(invoke("status", str(tmp_path / "out.jsonl"), "--json").stdout)
    assert [e["endpoint"] for e in as_json["endpoints"]["openai/fake"]] == [a.api_base, b.api_base]


def test_progress_lines_show_each_endpoint(servers, tmp_path) -> None:
    a, b = servers
    result = invoke("generate", str(config(tmp_path)), "-n", "10", *replicas_args(a, b))
    assert result.exit_code == 0, result.stderr
    assert f"openai/fake @ {a.api_base}:" in result.stderr and "p50" in result.stderr


def test_batch_mode_refuses_several_endpoints(servers, tmp_path) -> None:
    a, b = servers
    result, _ = generate(config(tmp_path), "-n", "5", "--mode", "batch", *replicas_args(a, b))
    assert result.exit_code == 2
    assert "respondent: batch mode sends each batch to one endpoint" in result.stderr


def test_evaluate_spreads_the_judge_over_its_replicas_and_knows_the_model_they_serve(servers, tmp_path) -> None:
    from .evaluate_helpers import conversation_row, judge_config, judge_responder, write_rows

    a, b = servers
    a.responder = b.responder = judge_responder()
    a.model_name = b.model_name = "judge-7b"
    source = write_rows(tmp_path / "in.jsonl", [conversation_row(i) for i in range(8)])
    cfg = judge_config(tmp_path, judge={"model": "fake-model", "api_base": [a.api_base, b.api_base]})
    result = invoke("evaluate", str(source), "-o", str(tmp_path / "judged.jsonl"), "--config", str(cfg), "-q")
    assert result.exit_code == 0, result.stderr
    assert a.stats["ok"] > 0 and b.stats["ok"] > 0 and len(read_rows(tmp_path / "judged.jsonl")) == 8
    b.model_name = "other-13b"  # a replica that serves another model is refused, naming both
    again = invoke("evaluate", str(source), "-o", str(tmp_path / "again.jsonl"), "--config", str(cfg), "-q")
    assert again.exit_code == 2 and "judge-7b" in again.stderr and "other-13b" in again.stderr


def test_evaluate_takes_a_repeated_api_base(servers, tmp_path) -> None:
    from .evaluate_helpers import conversation_row, judge_responder, write_rows

    a, b = servers
    a.responder = b.responder = judge_responder()
    source = write_rows(tmp_path / "in.jsonl", [conversation_row(i) for i in range(6)])
    args = ["evaluate", str(source), "-o", str(tmp_path / "judged.jsonl"), "--judge-model", "fake-model", "-q"]
    result = invoke(*args, "--api-base", a.api_base, "--api-base", b.api_base)
    assert result.exit_code == 0, result.stderr
    assert a.stats["ok"] > 0 and b.stats["ok"] > 0
    twice = invoke(*args, "--api-base", a.api_base, "--api-base", a.api_base)
    assert twice.exit_code == 2 and f"--api-base: api_base lists {a.api_base} twice" in twice.stderr
