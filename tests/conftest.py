"""Shared fixtures: a fake OpenAI-compatible server, and an environment that cannot reach real providers."""

from __future__ import annotations

import os

# litellm fetches its price map from GitHub at import unless told to use the bundled copy; tests are offline.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402

from afterimage_cli.providers.factory import ENDPOINTS  # noqa: E402
from tests.browser import browser  # noqa: E402,F401  (the viewer tests' headless Chromium fixture)
from tests.fakeserver import FakeOpenAIServer  # noqa: E402

# A real key in the developer's shell must never turn a test into a paid call, nor a URL variable of the
# transport table (OPENAI_BASE_URL, ANTHROPIC_BASE_URL, …) send a test's calls elsewhere; nor HF_TOKEN let
# `afterimage push` reach the real Hub.
for _name in {"GOOGLE_API_KEY", "AZURE_API_VERSION", "HF_TOKEN"} | {
    name for entry in ENDPOINTS.values() for name in (entry.key_env, *entry.base_env) if name
}:
    os.environ.pop(_name, None)


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


@dataclass
class Endpoint:
    """How a test points a run at the fake server: `--api-base` (a server of yours), or a hosted `openai/`
    model whose URL comes from OPENAI_BASE_URL (the direct transport, as for api.openai.com)."""

    kind: str
    server: FakeOpenAIServer

    def args(self, model: str = "fake-model") -> list[str]:
        """The generate flags that call `model` there."""
        if self.kind == "api_base":
            return ["--model", model, "--api-base", self.server.api_base]
        return ["--model", f"openai/{model}"]


@pytest.fixture(params=["api_base", "openai_base_url"])
def endpoint(
    request: pytest.FixtureRequest, fake_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> Endpoint:
    """A fresh fake server, reached both ways: every behaviour must hold on each."""
    if request.param == "openai_base_url":
        monkeypatch.setenv("OPENAI_BASE_URL", fake_server.api_base)
    return Endpoint(request.param, fake_server)
