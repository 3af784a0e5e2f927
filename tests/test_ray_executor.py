"""--executor ray through the CLI, on a local Ray the run starts: exactly N rows, each id once, with a worker
killed mid-run and the model's rpm held across both workers (as the fake server counted). The driver killed
mid-run and a 2-node cluster are in tests/cluster (`make test-cluster`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.fakeserver import FakeOpenAIServer
from tests.helpers import invoke, make_config
from tests.ray_helpers import RPM, Driver, admitted_per_minute, ids_once, kill_pid, ray_config, wait_for_rows

N = 40


def test_ray_run_is_exact_with_a_worker_killed_and_rpm_shared(tmp_path: Path, fake_server: FakeOpenAIServer) -> None:
    fake_server.latency = 0.02
    config = ray_config(tmp_path, fake_server)
    out = tmp_path / "out.jsonl"
    driver = Driver(str(config), "--executor", "ray", "--workers", "2", "-n", str(N))
    try:
        victim = driver.worker_pids()[0]
        wait_for_rows(out, 10, driver)
        kill_pid(victim)
        assert driver.finish() == 0, "\n".join(driver.lines)
    finally:
        driver.end_session()
    driver.wait_for("ray: worker 1 died; its items go to the others")
    ids_once(out, N)
    answered = fake_server.snapshot()["answered_at"]
    # Two workers each holding the limit would admit twice the rate.
    rate = admitted_per_minute(answered, RPM)
    print(f"admitted {rate:.0f}/min over {len(answered)} requests")
    assert rate <= RPM * 1.05


def test_executor_ray_without_ray_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError, as when it is not installed
    result = invoke("generate", str(make_config(tmp_path)), "--executor", "ray")
    assert result.exit_code == 2
    assert "pip install 'afterimage[ray]'" in result.output
    assert not (tmp_path / "out.jsonl").exists()


def test_execution_section_is_checked(tmp_path: Path) -> None:
    config = make_config(tmp_path, execution={"executor": "spark"})
    result = invoke("generate", str(config))
    assert result.exit_code == 2
    assert "execution.executor" in result.output


def test_batch_mode_on_ray_is_refused(tmp_path: Path) -> None:
    config = make_config(tmp_path, execution={"executor": "ray", "workers": 3})
    result = invoke("generate", str(config), "--mode", "batch")
    assert result.exit_code == 2
    assert "batch mode" in result.output


def test_workers_without_ray_is_refused(tmp_path: Path) -> None:
    result = invoke("generate", str(make_config(tmp_path)), "--workers", "4")
    assert result.exit_code == 2
    assert "--executor ray" in result.output
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(
    ("respondent", "field"),
    [
        (
            {"api_base": ["http://127.0.0.1:1/v1", {"url": "http://127.0.0.1:2/v1", "max_concurrency": 4}]},
            "respondent.api_base[1].max_concurrency",
        ),
        ({"deployments": [{"api_base": "http://127.0.0.1:1/v1", "rpm": 600}]}, "respondent.deployments[0].rpm"),
    ],
)
def test_an_endpoints_own_limit_is_refused_on_ray(tmp_path: Path, respondent: dict, field: str) -> None:
    # Each worker holds its own replica set: an endpoint's limit would be allowed once per worker.
    config = make_config(tmp_path, respondent={"model": "openai/m", **respondent}, execution={"executor": "ray"})
    result = invoke("generate", str(config))
    assert result.exit_code == 2, result.output
    assert field in result.output and "all workers share" in result.output
    assert not (tmp_path / "out.jsonl").exists()
