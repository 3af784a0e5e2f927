"""`make test-cluster`: --executor ray on a 2-node cluster simulated on this machine, and the driver killed
mid-run on a local Ray. Each test starts Ray, which takes ~10 s here: too slow for `make test`."""

from __future__ import annotations

from pathlib import Path

from tests.fakeserver import FakeOpenAIServer
from tests.ray_helpers import RPM, Driver, admitted_per_minute, ids_once, kill_pid, ray_config, wait_for_rows

N = 40


def test_two_nodes_with_a_worker_killed(tmp_path: Path, fake_server: FakeOpenAIServer, ray_cluster: str) -> None:
    """One worker per node (Ray spreads them); one is killed mid-run: exactly N rows, the rpm the whole run's."""
    fake_server.latency = 0.02
    config = ray_config(tmp_path, fake_server)
    out = tmp_path / "out.jsonl"
    driver = Driver(str(config), "--executor", "ray", "--workers", "2", "-n", str(N), env={"RAY_ADDRESS": ray_cluster})
    try:
        victim = driver.worker_pids()[1]
        wait_for_rows(out, 10, driver)
        kill_pid(victim)
        assert driver.finish() == 0, "\n".join(driver.lines)
    finally:
        driver.end_session()
    driver.wait_for("ray: worker 2 died; its items go to the others")
    ids_once(out, N)
    assert admitted_per_minute(fake_server.snapshot()["answered_at"], RPM) <= RPM * 1.05


def test_driver_killed_then_rerun_is_exact(tmp_path: Path, fake_server: FakeOpenAIServer) -> None:
    """kill -9 of the driver mid-run; the same command again resumes to exactly N, as a local run does."""
    fake_server.latency = 0.02
    config = ray_config(tmp_path, fake_server)
    out = tmp_path / "out.jsonl"
    args = (str(config), "--executor", "ray", "--workers", "2", "-n", str(N))
    first = Driver(*args)
    try:
        wait_for_rows(out, 8, first)
    finally:
        first.kill()
    written = len(out.read_bytes().splitlines())
    assert written < N
    second = Driver(*args)
    try:
        assert second.finish() == 0, "\n".join(second.lines)
    finally:
        second.end_session()
    assert f"{N - written} new" in second.wait_for("done:") or f"{written} resumed" in second.wait_for("done:")
    ids_once(out, N)
