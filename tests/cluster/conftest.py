"""A Ray cluster of two nodes on this machine (`ray start --head` and `ray start --address`, each with a temp
dir of its own), started for the session and ended by process group — never `ray stop`, which would end every
Ray of the machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

RAY = str(Path(sys.executable).with_name("ray"))


def _start(*args: str, temp_dir: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    command = [RAY, "start", "--block", "--num-cpus", "1", "--disable-usage-stats", "--temp-dir", temp_dir, *args]
    return subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _nodes(address: str) -> int:
    code = "import ray; ray.init(address=%r, logging_level='ERROR'); print(len([n for n in ray.nodes() if n['Alive']]))"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run([sys.executable, "-c", code % address], capture_output=True, text=True, env=env)
    return int(done.stdout.strip() or 0)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """The head's address, once both nodes are up."""
    head_dir, worker_dir = tempfile.mkdtemp(prefix="aic-h"), tempfile.mkdtemp(prefix="aic-w")
    port = 6390 + os.getpid() % 500
    address = f"127.0.0.1:{port}"
    head = _start(
        "--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--include-dashboard=false", temp_dir=head_dir
    )
    nodes = [head]
    try:
        deadline = time.monotonic() + 120
        while _nodes(address) < 1:
            assert time.monotonic() < deadline and head.poll() is None, "the head node did not start"
            time.sleep(1)
        nodes.append(_start("--address", address, "--node-ip-address", "127.0.0.1", temp_dir=worker_dir))
        while _nodes(address) < 2:
            assert time.monotonic() < deadline and nodes[1].poll() is None, "the second node did not join"
            time.sleep(1)
        yield address
    finally:
        for node in reversed(nodes):
            try:
                os.killpg(node.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(2)
        for node in nodes:
            try:
                os.killpg(node.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
