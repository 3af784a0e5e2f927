"""The benchmark's measuring function on a tiny run, so `make bench` cannot silently rot."""

from __future__ import annotations

from pathlib import Path

from tests.bench import measure, run_size
from tests.bench_sharing import _chunks, cache_run, index_start
from tests.fakeserver import FakeOpenAIServer


def test_measure_tiny_litellm_run(fake_server: FakeOpenAIServer, tmp_path: Path) -> None:
    run = measure(fake_server.url, "litellm", 8, 0.02, 40, tmp_path, poll=0.02)
    assert run.rows == run.calls == 40
    assert 0 < run.calls_per_s <= run.ideal * 1.2
    assert 0 < run.efficiency <= 1.2
    assert 0 < run.cpu_ms_per_call < 1000
    assert 20 < run.peak_rss_mb < 2000
    assert fake_server.snapshot()["ok"] == 40


def test_run_size_is_bounded() -> None:
    assert run_size("litellm", 16, 0.5, 10) == 320
    assert run_size("openai_compat", 256, 0.05, 10) == 12_000
    assert run_size("litellm", 256, 0.5, 0.1) == 12 * 256


def test_sharing_scenarios_on_tiny_runs(fake_server: FakeOpenAIServer, tmp_path: Path) -> None:
    run = cache_run(fake_server.api_base, tmp_path, processes=2, cache=True, n=8, seed=1)
    assert run.calls == 16 == fake_server.snapshot()["ok"] and run.refused == 0 and run.cpu_ms_per_call > 0
    first, later = index_start(tmp_path, _chunks(20))
    assert first > 0 and later > 0
