"""The benchmark's measuring function on a tiny run, so `make bench` cannot silently rot."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.bench import Run, measure, run_size
from tests.bench_hygiene import bench_hygiene
from tests.bench_native import PROTOCOLS, cpu_target
from tests.bench_replicas import replicas_run
from tests.bench_sharing import _chunks, cache_run, index_start
from tests.fakeserver import FakeOpenAIServer


def test_measure_tiny_litellm_run(fake_server: FakeOpenAIServer, tmp_path: Path) -> None:
    # What the figures come to is the bench's business (they depend on the machine); here only that they
    # are measured: counts match the server's, and each figure is a number.
    run = measure(fake_server.url, "litellm", 8, 0.02, 40, tmp_path, poll=0.02)
    assert run.rows == run.calls == 40
    assert fake_server.snapshot()["ok"] == 40
    figures = (run.calls_per_s, run.efficiency, run.conv_per_s, run.cpu_ms_per_call, run.peak_rss_mb)
    assert all(math.isfinite(f) and f >= 0 for f in figures)
    assert run.calls_per_s > 0 and run.peak_rss_mb > 0


def test_measure_tiny_gemini_run(fake_server: FakeOpenAIServer, tmp_path: Path) -> None:
    run = measure(fake_server.url, "gemini", 8, 0.02, 24, tmp_path, poll=0.02)
    assert run.rows == run.calls == 24 == fake_server.snapshot()["ok"]
    assert set(fake_server.snapshot()["models"]) == {"fake-model"} and run.cpu_ms_per_call > 0


def test_hygiene_bench_measures_cpu_per_turn() -> None:
    assert bench_hygiene(20) > 0 and math.isfinite(bench_hygiene(20))


def test_run_size_is_bounded() -> None:
    assert run_size("litellm", 16, 0.5, 10) == 320
    assert run_size("openai_compat", 256, 0.05, 10) == 12_000
    assert run_size("litellm", 256, 0.5, 0.1) == 12 * 256


def test_sharing_scenarios_on_tiny_runs(fake_server: FakeOpenAIServer, tmp_path: Path) -> None:
    run = cache_run(fake_server.api_base, tmp_path, processes=2, cache=True, n=8, seed=1)
    # Refused cache writes (retried later, never errors) depend on how busy the machine is: not asserted here.
    assert run.calls == 16 == fake_server.snapshot()["ok"] and run.cpu_ms_per_call > 0
    first, later = index_start(tmp_path, _chunks(20))
    assert first > 0 and later > 0


def test_measure_tiny_hosted_run(fake_server: FakeOpenAIServer, tmp_path: Path) -> None:
    # The hosted comparison reaches the server through OPENAI_BASE_URL, asking for the hosted model by name.
    run = measure(fake_server.url, "openai_compat", 8, 0.02, 24, tmp_path, poll=0.02, hosted=True)
    assert run.rows == run.calls == 24 and run.label == "openai/gpt-4o-mini via openai_compat"
    assert fake_server.snapshot()["models"] == {"gpt-4o-mini": 24}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_measure_tiny_native_protocol_run(fake_server: FakeOpenAIServer, tmp_path: Path, protocol: str) -> None:
    model, direct_base, _ = PROTOCOLS[protocol]
    respondent = {"model": model, "provider": protocol, "api_base": direct_base(fake_server.url)}
    run = measure(fake_server.url, protocol, 8, 0.02, 40, tmp_path, poll=0.02, respondent=respondent)
    assert run.rows == run.calls == 40
    stats = fake_server.snapshot()
    # Only the protocol's own routes answer its requests (the OpenAI routes have no such paths).
    assert stats["ok"] == 40 and stats["models"] == {model.split("/")[1]: 40}
    if protocol == "anthropic":
        assert "cache_read_input_tokens" in stats
    litellm = Run(f"litellm-{protocol}", 8, 0.02, 40, 40, 40, 1.0, 1.0, 1.0, 6.0, 1.0, None)
    ((label, measured, passed),) = cpu_target([run, litellm])
    assert label.startswith(f"{protocol}/… direct")
    assert measured.startswith(f"{6.0 / run.cpu_ms_per_call:.1f}×") and passed == (6.0 / run.cpu_ms_per_call >= 5)


def test_view_bench_on_a_tiny_file() -> None:
    from tests.bench_view import bench_view, view_lines, view_targets
    from tests.browser import chromium_path

    if chromium_path() is None:  # not the `browser` fixture: the bench starts Playwright itself
        pytest.skip("no Chromium: install Debian's chromium package (`make test` does it when run as root)")
    report = bench_view(200)
    assert report["rows"] == 200 and report["html_mb"] > 0
    assert report["page"]["grade_filter"]["rows"] > 0 and report["page"]["list_shown_s"] > 0
    assert len(view_lines(report)) == 5 and len(view_targets(report)) == 2


def test_replicas_bench_counts_both_servers(fake_server: FakeOpenAIServer, tmp_path: Path) -> None:
    with FakeOpenAIServer() as other:
        run = replicas_run([fake_server.url, other.url], tmp_path, 40, poll=0.02)
        assert fake_server.snapshot()["ok"] + other.snapshot()["ok"] == 40
        assert fake_server.slots is None and other.slots is None  # put back for the other scenarios
    assert run["calls_per_s"] > 0 and run["cpu_ms_per_call"] > 0 and 0 < run["share"] <= 1
