"""Shared fixtures: a fake OpenAI-compatible server, and an environment that cannot reach real providers."""

from __future__ import annotations

import os

# litellm fetches its price map from GitHub at import unless told to use the bundled copy; tests are offline.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# A real key in the developer's shell must never turn a test into a paid call, nor a base URL send it elsewhere.
# (HF_TOKEN too: `afterimage push` must never reach the real Hub from a test.)
for _name in (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_BASE",
    "HF_TOKEN",
):
    os.environ.pop(_name, None)

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from tests.browser import browser  # noqa: E402,F401  (the viewer tests' headless Chromium fixture)
from tests.fakeserver import FakeOpenAIServer  # noqa: E402


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    """A fresh fake server per test, so knobs and counters never leak between tests."""
    server = FakeOpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fake_server_session() -> Iterator[FakeOpenAIServer]:
    """One well-behaved fake server for the whole session; tests must not change its knobs."""
    server = FakeOpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own response cache, so no test is answered from another's requests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
