"""The transport table (providers/factory.py ENDPOINTS): which transport each provider prefix takes, and its
URLs and variables checked against litellm's own provider logic, so a model reaches the same host with
the same key whichever transport takes it."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from afterimage_cli.config import ModelConfig
from afterimage_cli.errors import ConfigError
from afterimage_cli.providers import factory
from afterimage_cli.providers.factory import AZURE_API_VERSION, DIRECT, ENDPOINTS, LLMFactory, resolve_route
from afterimage_cli.providers.litellm_provider import LiteLLMProvider, import_litellm
from afterimage_cli.providers.openai_compat import OpenAICompatProvider

from .helpers import invoke, make_config

DIRECT_PREFIXES = [p for p, e in ENDPOINTS.items() if e.transport == DIRECT and e.base_url]
OVERRIDES = [(p, name) for p, e in ENDPOINTS.items() if e.transport == DIRECT for name in e.base_env]


def route(model: str, environ: dict[str, str] | None = None, **fields) -> factory.Route:
    return resolve_route(ModelConfig(model=model, **fields), environ or {})


@pytest.mark.parametrize(
    "model,transport,url",
    [
        ("openai/gpt-4o-mini", "openai_compat", "https://api.openai.com/v1"),
        ("gpt-4o-mini", "openai_compat", "https://api.openai.com/v1"),
        ("groq/llama-3.1-8b-instant", "openai_compat", "https://api.groq.com/openai/v1"),
        ("openrouter/openai/gpt-4o-mini", "openai_compat", "https://openrouter.ai/api/v1"),
        ("anthropic/claude-3-5-haiku-latest", "anthropic", "https://api.anthropic.com"),
        ("claude-3-5-haiku-latest", "anthropic", "https://api.anthropic.com"),
        ("gemini/gemini-2.5-flash", "gemini", "https://generativelanguage.googleapis.com/v1beta"),
        ("gemini-2.5-flash", "gemini", "https://generativelanguage.googleapis.com/v1beta"),
        ("bedrock/anthropic.claude-v2", "litellm", None),
        ("hosted_vllm/llama3", "litellm", None),  # a server of yours: direct once its api_base is given
        ("offline", "offline", None),
    ],
)
def test_each_prefix_takes_its_transport(model, transport, url) -> None:
    resolved = route(model)
    assert (resolved.spec.provider, resolved.api_base) == (transport, url)


def test_provider_litellm_forces_litellm_to_the_same_url(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    forced = LLMFactory.from_config(ModelConfig(model="openai/gpt-4o-mini", provider="litellm"))
    direct = LLMFactory.from_config(ModelConfig(model="openai/gpt-4o-mini"))
    assert isinstance(forced, LiteLLMProvider) and isinstance(direct, OpenAICompatProvider)
    assert forced.api_base == direct.api_base == "https://api.openai.com/v1"
    local = route("hosted_vllm/llama3", api_base="http://127.0.0.1:8000/v1")
    assert local.spec.provider == "openai_compat"
    # Gemini's default names the API version, as litellm wants a gemini api_base (it appends /models/…).
    monkeypatch.setenv("GEMINI_API_KEY", "gk-test")
    gemini = LLMFactory.from_config(ModelConfig(model="gemini/gemini-2.5-flash"))
    forced = LLMFactory.from_config(ModelConfig(model="gemini/gemini-2.5-flash", provider="litellm"))
    assert forced.api_base == gemini.api_base  # type: ignore[attr-defined]
    assert gemini.url == f"{forced.api_base}/models/gemini-2.5-flash:generateContent"  # type: ignore[attr-defined]


def test_url_variables_point_a_prefix_elsewhere_and_the_config_wins() -> None:
    assert route("openai/gpt-4o-mini", {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}).api_base == "http://127.0.0.1:9/v1"
    both = {"OPENAI_BASE_URL": "http://a:1/v1", "OPENAI_API_BASE": "http://b:2/v1"}
    assert route("openai/gpt-4o-mini", both).source == "OPENAI_BASE_URL"
    configured = route("openai/gpt-4o-mini", both, api_base="http://c:3/v1")
    assert (configured.api_base, configured.source) == ("http://c:3/v1", "api_base")
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL must be an http:// or https:// URL"):
        route("openai/gpt-4o-mini", {"OPENAI_BASE_URL": "localhost:8000"})


def test_azure_needs_a_resource_url_and_says_where_to_set_it() -> None:
    with pytest.raises(ConfigError, match="azure/my-deployment has no URL: set api_base .* or AZURE_API_BASE"):
        route("azure/my-deployment")
    resolved = route("azure/my-deployment", {"AZURE_API_BASE": "https://r.openai.azure.com"})
    assert (resolved.spec.provider, resolved.api_base, resolved.source) == (
        "openai_compat",
        "https://r.openai.azure.com",
        "AZURE_API_BASE",
    )


def test_azure_calls_its_deployment_with_its_api_version_and_api_key_header(monkeypatch) -> None:
    monkeypatch.setenv("AZURE_API_KEY", "az-key")
    monkeypatch.setenv("AZURE_API_BASE", "https://r.openai.azure.com")
    provider = LLMFactory.from_config(ModelConfig(model="azure/my-deployment"))
    assert isinstance(provider, OpenAICompatProvider)
    assert provider.url == (
        f"https://r.openai.azure.com/openai/deployments/my-deployment/chat/completions?api-version={AZURE_API_VERSION}"
    )
    assert provider.keys is not None
    assert provider.request_headers(provider.keys.keys[0]) == {"api-key": "az-key"}
    monkeypatch.setenv("AZURE_API_VERSION", "2024-10-21")
    assert LLMFactory.from_config(ModelConfig(model="azure/d")).url.endswith("?api-version=2024-10-21")  # type: ignore[attr-defined]
    configured = ModelConfig(model="azure/d", api_version="2025-04-01-preview")
    assert LLMFactory.from_config(configured).url.endswith("?api-version=2025-04-01-preview")  # type: ignore[attr-defined]
    # litellm's spelling, params.api_version, is read too (and not sent in the body).
    spelled = ModelConfig(model="azure/d", params={"api_version": "2024-06-01"})
    built = LLMFactory.from_config(spelled)
    assert built.url.endswith("?api-version=2024-06-01") and "api_version" not in built.params  # type: ignore[attr-defined]


def test_defaults_match_litellms(monkeypatch) -> None:
    litellm = import_litellm()
    assert litellm.AZURE_DEFAULT_API_VERSION == AZURE_API_VERSION
    source = inspect.getsource(litellm.main)  # openai and openrouter are resolved in litellm.main
    for prefix in DIRECT_PREFIXES:
        entry = ENDPOINTS[prefix]
        assert entry.key_env is not None
        monkeypatch.setenv(entry.key_env, f"sk-{prefix}")
        _, _, key, found = litellm.get_llm_provider(f"{prefix}/some-model")
        assert found == entry.base_url or (found is None and f'"{entry.base_url}"' in source), prefix
        # The key variable, unless litellm reads it later (those have a URL variable: the live test covers them).
        assert key == f"sk-{prefix}" or (key is None and entry.base_env), prefix


@pytest.mark.parametrize("prefix,variable", OVERRIDES)
def test_litellm_reads_the_same_url_and_key_variables(fake_server, monkeypatch, prefix, variable) -> None:
    """With only the variables set, litellm itself sends the key from key_env to the URL from the override
    variable: the table names the variables litellm reads."""
    for name in {n for e in ENDPOINTS.values() for n in e.base_env} | {"AZURE_API_VERSION"}:
        monkeypatch.delenv(name, raising=False)
    entry = ENDPOINTS[prefix]
    assert entry.key_env is not None
    monkeypatch.setenv(entry.key_env, "sk-from-the-table")
    monkeypatch.setenv(variable, fake_server.url if prefix == "azure" else fake_server.api_base)
    if prefix == "azure":
        monkeypatch.setenv("AZURE_API_VERSION", "2099-01-01")
    litellm = import_litellm()

    async def ask() -> None:
        await litellm.acompletion(
            model=f"{prefix}/some-model", messages=[{"role": "user", "content": "hi"}], max_retries=0, timeout=10
        )
        await litellm.close_litellm_async_clients()

    asyncio.run(ask())
    litellm.in_memory_llm_clients_cache.flush_cache()
    assert fake_server.stats["by_key"] == {"sk-from-the-table": 1}
    if prefix == "azure":
        assert fake_server.stats["last_request"]["path"].endswith("api-version=2099-01-01")


def test_validate_and_dry_run_say_which_transport_each_model_takes(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("GROQ_API_BASE", "http://127.0.0.1:9/openai/v1")
    cfg = make_config(
        tmp_path,
        respondent={"model": "openai/gpt-4o-mini"},
        correspondent={"model": "groq/llama-3.1-8b-instant", "provider": "litellm"},
        evaluation={"judge": {"model": "offline"}},
    )
    result = invoke("validate", str(cfg))
    assert result.exit_code == 0, result.stderr
    assert "respondent: openai/gpt-4o-mini via openai_compat (https://api.openai.com/v1)" in result.stderr
    assert "correspondent: groq/llama-3.1-8b-instant via litellm (http://127.0.0.1:9/openai/v1 from GROQ_API_BASE)" in (
        result.stderr
    )
    assert "evaluation.judge: offline (offline: no network)" in result.stderr
    dry = invoke("generate", str(cfg), "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "#   respondent: openai/gpt-4o-mini via openai_compat (https://api.openai.com/v1)" in dry.stdout
