"""Real llama.cpp servers for tests/real (only `make test-real` collects this folder; see norecursedirs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.real.support import LlamaServer


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One server for the session: 4096 context tokens in each of 2 slots, so two calls decode at once."""
    server = LlamaServer.start(tmp_path_factory.mktemp("llama") / "server.log", ctx=4096, parallel=2)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def llama_512(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A server with a 512-token context in one slot: a few turns of dialog overflow it."""
    server = LlamaServer.start(tmp_path_factory.mktemp("llama512") / "server.log", ctx=512, parallel=1)
    try:
        yield server
    finally:
        server.stop()
