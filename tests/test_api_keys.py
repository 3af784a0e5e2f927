"""Which key goes where: a key in the provider's usual variable goes only to the provider's own endpoint;
an --api-base server gets a key only when its variable is named (api_key_env or --api-key-env)."""

from __future__ import annotations

import pytest

from afterimage_cli.config import ModelConfig
from afterimage_cli.errors import MissingCredentialsError
from afterimage_cli.providers import factory

from .evaluate_helpers import judge_responder
from .helpers import invoke, make_config

FAST_RETRY = {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.02}
REAL_KEY = "sk-real-openai-key"


def generate(server, cfg, *extra: str):
    return invoke("generate", str(cfg), "-n", "3", "--model", "fake-model", "--api-base", server.api_base, "-q", *extra)


@pytest.mark.parametrize("provider", [None, "litellm"])
def test_an_api_base_gets_no_key_unless_one_is_named(fake_server, tmp_path, monkeypatch, provider) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    respondent = {"model": "offline", **({"provider": provider} if provider else {})}
    cfg = make_config(tmp_path, retry=FAST_RETRY, respondent=respondent)
    result = generate(fake_server, cfg)
    assert result.exit_code == 0, result.stderr
    keys = set(fake_server.stats["by_key"])
    assert REAL_KEY not in keys
    # The direct transport sends no Authorization header at all; litellm cannot, so it gets a non-secret string.
    assert keys == ({""} if provider is None else {"no-key"})


def test_api_key_env_flag_sends_the_named_key(fake_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    monkeypatch.setenv("MY_SERVER_KEY", "sk-for-my-server")
    cfg = make_config(tmp_path, retry=FAST_RETRY)
    result = generate(fake_server, cfg, "--api-key-env", "MY_SERVER_KEY")
    assert result.exit_code == 0, result.stderr
    assert set(fake_server.stats["by_key"]) == {"sk-for-my-server"}


def test_a_key_named_in_the_config_is_sent(fake_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    cfg = make_config(tmp_path, retry=FAST_RETRY, respondent={"model": "offline", "api_key_env": "OPENAI_API_KEY"})
    assert generate(fake_server, cfg).exit_code == 0
    assert set(fake_server.stats["by_key"]) == {REAL_KEY}  # named on purpose: the user's choice


def test_api_key_env_flag_errors(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    cfg = make_config(tmp_path)
    result = invoke("generate", str(cfg), "--model", "m", "--api-key-env", "K")
    assert result.exit_code == 2 and "--api-key-env" in result.stderr and "--api-base" in result.stderr
    result = invoke(
        "generate", str(cfg), "--model", "m", "--api-base", "http://127.0.0.1:9/v1", "--api-key-env", "NOT_SET_KEY"
    )
    assert result.exit_code == 2 and "NOT_SET_KEY is not set" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_evaluate_sends_a_key_to_its_api_base_only_when_named(fake_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    monkeypatch.setenv("JUDGE_KEY", "sk-judge")
    fake_server.responder = judge_responder()
    assert invoke("generate", str(make_config(tmp_path)), "-n", "2", "-q").exit_code == 0
    source = str(tmp_path / "out.jsonl")
    judge = ("--judge-model", "fake-model", "--api-base", fake_server.api_base, "-q")
    assert invoke("evaluate", source, "-o", str(tmp_path / "a.jsonl"), *judge).exit_code == 0
    assert set(fake_server.stats["by_key"]) == {""}
    fake_server.reset_stats()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh-cache"))  # ask the server again
    result = invoke("evaluate", source, "-o", str(tmp_path / "b.jsonl"), *judge, "--api-key-env", "JUDGE_KEY")
    assert result.exit_code == 0, result.stderr
    assert set(fake_server.stats["by_key"]) == {"sk-judge"}


def _pool(model: str, api_base: str | None, environ: dict[str, str] | None = None, **fields):
    cfg = ModelConfig(model=model, api_base=api_base, **fields)
    env = {"OPENAI_API_KEY": REAL_KEY, **(environ or {})}
    return factory.build_key_pool(factory.resolve_route(cfg, env), cfg, env)


def test_the_providers_own_endpoint_keeps_its_usual_key() -> None:
    is_provider_endpoint = factory.is_provider_endpoint
    assert is_provider_endpoint("openai", "https://API.openai.com/v1")
    assert not is_provider_endpoint("openai", "http://api.openai.com/v1")  # plain http is not trusted with it
    assert not is_provider_endpoint("openai", "https://api.openai.com.example.net/v1")
    assert not is_provider_endpoint("anthropic", "https://api.openai.com/v1")
    pool = _pool("openai/gpt-4o-mini", "https://api.openai.com/v1")
    assert pool is not None and [k.value for k in pool.keys] == [REAL_KEY]
    assert _pool("openai/gpt-4o-mini", "http://api.openai.com/v1") is None
    assert _pool("gpt-4o-mini", "http://127.0.0.1:8000/v1") is None
    with pytest.raises(MissingCredentialsError, match="OTHER_KEY is not set"):
        _pool("gpt-4o-mini", "http://127.0.0.1:8000/v1", api_key_env="OTHER_KEY")
    # Azure's resources are hosts under its own domains.
    assert is_provider_endpoint("azure", "https://my-resource.openai.azure.com")
    assert not is_provider_endpoint("azure", "https://openai.azure.com.evil.example")


def test_a_url_from_openai_base_url_is_trusted_with_the_key_only_when_it_is_openais() -> None:
    """OPENAI_BASE_URL (the SDK's convention) points openai/ models elsewhere, under the api_base rule: a key
    from OPENAI_API_KEY still goes only to api.openai.com over https, unless the config names the variable."""
    assert _pool("openai/gpt-4o-mini", None, {"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}) is None
    assert _pool("openai/gpt-4o-mini", None, {"OPENAI_API_BASE": "https://gateway.example/v1"}) is None
    own = _pool("openai/gpt-4o-mini", None, {"OPENAI_BASE_URL": "https://api.openai.com/v1"})
    assert own is not None and [k.value for k in own.keys] == [REAL_KEY]
    named = _pool(
        "openai/gpt-4o-mini", None, {"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}, api_key_env="OPENAI_API_KEY"
    )
    assert named is not None and [k.value for k in named.keys] == [REAL_KEY]
    default = _pool("openai/gpt-4o-mini", None)
    assert default is not None and [k.value for k in default.keys] == [REAL_KEY]


def test_openai_base_url_gets_no_key_unless_one_is_named(fake_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.api_base)
    for provider in (None, "litellm"):  # litellm honours OPENAI_BASE_URL itself: it is given the same URL
        respondent = {"model": "openai/fake-model", **({"provider": provider} if provider else {})}
        cfg = make_config(tmp_path, retry=FAST_RETRY, respondent=respondent)
        result = invoke("generate", str(cfg), "-n", "2", "-q", "--overwrite")
        assert result.exit_code == 0, result.stderr
        assert REAL_KEY not in fake_server.stats["by_key"] and fake_server.stats["ok"] > 0
    fake_server.reset_stats()
    named = {"model": "openai/fake-model", "api_key_env": "OPENAI_API_KEY"}
    cfg = make_config(tmp_path, retry=FAST_RETRY, respondent=named)
    assert invoke("generate", str(cfg), "-n", "2", "-q", "--overwrite", "--no-cache").exit_code == 0
    assert set(fake_server.stats["by_key"]) == {REAL_KEY}  # named on purpose: the user's choice


def test_a_server_that_wants_a_key_says_how_to_send_one(fake_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    fake_server.reject_keys = {""}  # like vLLM started with --api-key: a request without a key is refused
    result = generate(fake_server, make_config(tmp_path, retry=FAST_RETRY))
    assert result.exit_code == 1
    assert "none was sent" in result.stderr and "--api-key-env NAME" in result.stderr
    assert set(fake_server.stats["by_key"]) == {""}
