"""LLMFactory: one place that turns a model string and its settings into a provider."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..config import ModelConfig
from ..errors import ConfigError
from ..registry import providers
from .base import LLMProvider
from .keypool import SmartKeyPool
from .pricing import ModelPrice, price_per_token

# The variable each provider prefix reads its key from, when the config names none.
DEFAULT_KEY_ENV: dict[str, str | None] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "fireworks_ai": "FIREWORKS_AI_API_KEY",
    "ollama": None,
    "ollama_chat": None,
    "hosted_vllm": None,
    "lm_studio": None,
    "llamafile": None,
}
# Each provider's own API host. A key from the provider's usual variable goes only there (over https):
# any other api_base (a local server, a gateway, a typo) gets a key only when its variable is named.
PROVIDER_HOSTS: dict[str, frozenset[str]] = {
    "openai": frozenset({"api.openai.com"}),
    "anthropic": frozenset({"api.anthropic.com"}),
    "gemini": frozenset({"generativelanguage.googleapis.com"}),
    "mistral": frozenset({"api.mistral.ai"}),
    "groq": frozenset({"api.groq.com"}),
    "deepseek": frozenset({"api.deepseek.com"}),
    "together_ai": frozenset({"api.together.xyz", "api.together.ai"}),
    "openrouter": frozenset({"openrouter.ai"}),
    "fireworks_ai": frozenset({"api.fireworks.ai"}),
}
# Models served by an OpenAI-compatible api_base go through the direct transport (far less CPU per
# call than litellm, same behaviour); `provider: litellm` in the config forces litellm.
DIRECT_TRANSPORT = "openai_compat"
DIRECT_PREFIXES = frozenset({"openai", "hosted_vllm", "lm_studio", "llamafile"})
# Providers with a direct transport of their own protocol, chosen for their prefix with or without api_base.
NATIVE_TRANSPORTS: dict[str, str] = {"anthropic": "anthropic", "gemini": "gemini"}
# The variable each provider's own SDK reads another host from (a gateway; the fake server in tests).
# The config's api_base wins over it; either way the key rules below treat it as the model's api_base.
BASE_URL_ENV: dict[str, str] = {"anthropic": "ANTHROPIC_BASE_URL", "gemini": "GEMINI_API_BASE"}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model string: which provider implementation, which litellm prefix, which model."""

    provider: str
    prefix: str
    model: str

    @property
    def full(self) -> str:
        return f"{self.prefix}/{self.model}" if self.prefix else self.model


def parse_model(model: str, *, api_base: str | None = None, provider: str | None = None) -> ModelSpec:
    """Parse 'offline', 'openai/gpt-4o-mini', 'gpt-4o-mini' (with api_base → openai/…), 'ollama/llama3'."""
    model = model.strip()
    if not model:
        raise ConfigError("model is empty: give a model string such as 'openai/gpt-4o-mini' or 'offline'")
    prefix, sep, name = model.partition("/")
    if provider:
        if sep:
            return ModelSpec(provider, prefix, name)
        return ModelSpec(provider, "openai" if api_base else "", model)

    if model == "offline" or prefix == "offline":
        return ModelSpec("offline", "", model)
    if not sep:
        if api_base:
            return ModelSpec(DIRECT_TRANSPORT, "openai", model)
        if model.startswith(("gpt-", "o1", "o3", "o4")):
            return ModelSpec("litellm", "openai", model)
        if model.startswith("claude"):
            return ModelSpec(NATIVE_TRANSPORTS["anthropic"], "anthropic", model)
        if model.startswith("gemini"):
            return ModelSpec(NATIVE_TRANSPORTS["gemini"], "gemini", model)
        raise ConfigError(f"model {model!r} names no provider: write it as 'provider/model', e.g. 'openai/{model}'")
    if api_base and prefix in DIRECT_PREFIXES:
        return ModelSpec(DIRECT_TRANSPORT, prefix, name)
    if prefix in NATIVE_TRANSPORTS:
        return ModelSpec(NATIVE_TRANSPORTS[prefix], prefix, name)
    return ModelSpec("litellm", prefix, name)


def key_env_names(spec: ModelSpec, cfg: ModelConfig) -> list[str]:
    """The key variables for a model: the config's, or the provider's usual one."""
    if cfg.api_key_env:
        return [cfg.api_key_env] if isinstance(cfg.api_key_env, str) else list(cfg.api_key_env)
    default = DEFAULT_KEY_ENV.get(spec.prefix, f"{spec.prefix.upper()}_API_KEY" if spec.prefix else None)
    return [default] if default else []


def is_provider_endpoint(prefix: str, api_base: str) -> bool:
    """Whether api_base is the provider's own API, over https (api.openai.com for 'openai', …)."""
    url = urlsplit(api_base)
    return url.scheme == "https" and (url.hostname or "").lower() in PROVIDER_HOSTS.get(prefix, frozenset())


def api_base_of(spec: ModelSpec, cfg: ModelConfig, environ: Mapping[str, str]) -> str | None:
    """Where the model is served: the config's api_base, else the provider's base-URL variable, else None
    (the provider's own endpoint)."""
    if cfg.api_base:
        return cfg.api_base
    name = BASE_URL_ENV.get(spec.prefix)
    value = environ.get(name, "").strip() if name else ""
    if not value:
        return None
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {value!r}")
    return value


def build_key_pool(spec: ModelSpec, cfg: ModelConfig, environ: Mapping[str, str]) -> SmartKeyPool | None:
    """Keys from the environment. An api_base (or base-URL variable) that is not the provider's own endpoint
    gets a key only when the config (api_key_env) or --api-key-env names its variable; otherwise no key at
    all is sent."""
    api_base = api_base_of(spec, cfg, environ)
    if api_base and not cfg.api_key_env and not is_provider_endpoint(spec.prefix, api_base):
        return None
    names = key_env_names(spec, cfg)
    if not names:
        return None
    return SmartKeyPool.from_env(names, dict(environ), spec.full)


class LLMFactory:
    """Creates providers from config; `create("openai/gpt-4o-mini")` works for scripts too."""

    @staticmethod
    def from_config(cfg: ModelConfig, environ: Mapping[str, str] | None = None) -> LLMProvider:
        env = os.environ if environ is None else environ
        spec = parse_model(cfg.model, api_base=cfg.api_base, provider=cfg.provider)
        factory = providers.get(spec.provider)
        kwargs: dict[str, Any] = {"timeout": cfg.timeout, "params": LLMFactory.request_params(cfg)}
        if spec.provider != "offline":
            kwargs.update(api_base=api_base_of(spec, cfg, env), keys=build_key_pool(spec, cfg, env))
            price = model_price(cfg)
            if price is not None:
                kwargs["price"] = price

        return factory(spec.full, **kwargs)  # type: ignore[no-any-return]

    @staticmethod
    def request_params(cfg: ModelConfig) -> dict[str, Any]:
        """Sampling parameters sent with every request."""
        params = dict(cfg.params)
        if cfg.temperature is not None:
            params["temperature"] = cfg.temperature
        if cfg.max_tokens is not None:
            params["max_tokens"] = cfg.max_tokens
        return params

    @staticmethod
    def create(model: str, **settings: Any) -> LLMProvider:
        """Build a provider from a model string and ModelConfig fields."""
        return LLMFactory.from_config(ModelConfig(model=model, **settings))


def model_price(cfg: ModelConfig) -> ModelPrice | None:
    """USD per token: the config's override, litellm's bundled map, or None if unknown."""
    if cfg.input_cost_per_million is not None or cfg.output_cost_per_million is not None:
        return ModelPrice.of((cfg.input_cost_per_million or 0.0) / 1e6, (cfg.output_cost_per_million or 0.0) / 1e6)
    spec = parse_model(cfg.model, api_base=cfg.api_base, provider=cfg.provider)
    if spec.provider == "offline":
        return ModelPrice.of(0.0, 0.0)
    return price_per_token(spec.full, spec.model)


def model_batch_price(cfg: ModelConfig) -> ModelPrice | None:
    """USD per token through the provider's batch API: litellm's batch prices for the model, else half the
    online price (what OpenAI, Anthropic and Gemini charge); None if the model is unpriced."""
    price = model_price(cfg)
    return None if price is None else price.batch()
