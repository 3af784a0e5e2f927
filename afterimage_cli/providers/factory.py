"""LLMFactory: one place that turns a model string and its settings into a provider."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from ..config import ModelConfig
from ..errors import ConfigError
from ..registry import providers
from .base import LLMProvider
from .keypool import SmartKeyPool
from .openai_dialect import AZURE_API_VERSION
from .pricing import ModelPrice, price_per_token
from .ratelimit import RateLimiter
from .replicas import Replica, ReplicaSet

DIRECT = "openai_compat"


@dataclass(frozen=True)
class Endpoint:
    """A provider prefix: the transport its models take, its own API, and where its key and a URL that
    points it elsewhere come from (the variables litellm and the providers' SDKs read)."""

    transport: str = "litellm"
    base_url: str | None = None  # its own API; None: none to default to (a local server, an Azure resource)
    key_env: str | None = None  # where its key is read from when the config names no variable
    base_env: tuple[str, ...] = ()  # variables that point it at another URL; the first one set wins
    # Hostnames of its own API (".azure.com": any name under it). A key from key_env goes only there, over
    # https: any other URL (a local server, a gateway, a typo) gets a key only when the config names its variable.
    hosts: tuple[str, ...] = ()


# The transport table (TRANSPORTS.md). A prefix's models take the transport listed; a prefix not listed goes
# through litellm with its key in <PREFIX>_API_KEY; `provider: litellm` in a model block forces litellm. The
# OpenAI-protocol hosts take the direct transport (far less CPU per call, same behaviour); their URLs and
# variables are litellm's own (tests/test_transport_table.py checks them against litellm's provider logic).
# Anthropic's and Gemini's models take direct transports of their own protocols, pointed elsewhere by the
# variable their SDK (Anthropic's) or litellm (GEMINI_API_BASE) reads.
ENDPOINTS: dict[str, Endpoint] = {
    "openai": Endpoint(
        DIRECT,
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
        ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
        ("api.openai.com",),
    ),
    "azure": Endpoint(
        DIRECT,
        None,
        "AZURE_API_KEY",
        ("AZURE_API_BASE",),
        (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com"),
    ),
    "groq": Endpoint(DIRECT, "https://api.groq.com/openai/v1", "GROQ_API_KEY", ("GROQ_API_BASE",), ("api.groq.com",)),
    "together_ai": Endpoint(
        DIRECT,
        "https://api.together.ai/v1",
        "TOGETHERAI_API_KEY",
        ("TOGETHER_AI_API_BASE",),
        ("api.together.xyz", "api.together.ai"),
    ),
    "deepseek": Endpoint(
        DIRECT, "https://api.deepseek.com/beta", "DEEPSEEK_API_KEY", ("DEEPSEEK_API_BASE",), ("api.deepseek.com",)
    ),
    "fireworks_ai": Endpoint(
        DIRECT,
        "https://api.fireworks.ai/inference/v1",
        "FIREWORKS_AI_API_KEY",
        ("FIREWORKS_API_BASE",),
        ("api.fireworks.ai",),
    ),
    "openrouter": Endpoint(
        DIRECT, "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", ("OPENROUTER_API_BASE",), ("openrouter.ai",)
    ),
    "mistral": Endpoint(DIRECT, "https://api.mistral.ai/v1", "MISTRAL_API_KEY", (), ("api.mistral.ai",)),
    "xai": Endpoint(DIRECT, "https://api.x.ai/v1", "XAI_API_KEY", ("XAI_API_BASE",), ("api.x.ai",)),
    "cerebras": Endpoint(
        DIRECT, "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", ("CEREBRAS_API_BASE",), ("api.cerebras.ai",)
    ),
    "perplexity": Endpoint(
        DIRECT, "https://api.perplexity.ai", "PERPLEXITY_API_KEY", ("PERPLEXITY_API_BASE",), ("api.perplexity.ai",)
    ),
    # Servers of your own: direct when the config gives their api_base, and sent no key unless it names one.
    "hosted_vllm": Endpoint(DIRECT),
    "lm_studio": Endpoint(DIRECT),
    "llamafile": Endpoint(DIRECT),
    "ollama": Endpoint(),
    "ollama_chat": Endpoint(),
    "anthropic": Endpoint(
        "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY", ("ANTHROPIC_BASE_URL",), ("api.anthropic.com",)
    ),
    # litellm takes a Gemini URL with its API version (it appends /models/…); the direct transport either way.
    "gemini": Endpoint(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        "GEMINI_API_KEY",
        ("GEMINI_API_BASE",),
        ("generativelanguage.googleapis.com",),
    ),
}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model string: which provider implementation, which litellm prefix, which model."""

    provider: str
    prefix: str
    model: str

    @property
    def full(self) -> str:
        return f"{self.prefix}/{self.model}" if self.prefix else self.model


@dataclass(frozen=True)
class Route:
    """Where a model's calls go: the parsed model, the URL (None: litellm finds it) and what set the URL
    (`api_base`, the variable it came from, or `default`: the provider's own API)."""

    spec: ModelSpec
    api_base: str | None = None
    source: str = ""
    others: tuple[str, ...] = ()  # the other endpoints of a set (replicas' URLs, deployments' names)

    def describe(self) -> str:
        """'openai/gpt-4o-mini via openai_compat (https://api.openai.com/v1)', for validate and --dry-run."""
        if self.spec.provider == "offline":
            return f"{self.spec.full} (offline: no network)"
        where = ", ".join((self.api_base or "litellm's default URL", *self.others))
        if self.source not in ("", "default", "api_base"):
            where += f" from {self.source}"
        return f"{self.spec.full} via {self.spec.provider} ({where})"

    @property
    def serves_elsewhere(self) -> bool:
        """Whether the URL is not the provider's own API (a server of yours, a gateway): it gets no key
        unless one is named, and a run asks it which model it serves."""
        return self.api_base is not None and not is_provider_endpoint(self.spec.prefix, self.api_base)


def _bare_prefix(model: str, api_base: str | None) -> str:
    """The provider of a model named without one: 'gpt-4o-mini' → openai, or openai for any api_base."""
    if api_base or model.startswith(("gpt-", "o1", "o3", "o4")):
        return "openai"
    if model.startswith("claude"):
        return "anthropic"
    if model.startswith("gemini"):
        return "gemini"
    raise ConfigError(f"model {model!r} names no provider: write it as 'provider/model', e.g. 'openai/{model}'")


def parse_model(model: str, *, api_base: str | None = None, provider: str | None = None) -> ModelSpec:
    """Parse 'offline', 'openai/gpt-4o-mini', 'gpt-4o-mini' (with api_base → openai/…), 'ollama/llama3', and
    pick its transport from the table (a direct one needs a URL: a local server's comes only from api_base)."""
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
        prefix, name = _bare_prefix(model, api_base), model
    entry = ENDPOINTS.get(prefix, Endpoint())
    has_url = api_base or entry.base_url or entry.base_env
    return ModelSpec(entry.transport if has_url else "litellm", prefix, name)


def _url_from(name: str, value: str) -> str:
    value = value.strip()
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {value!r}")
    return value


def resolve_route(cfg: ModelConfig, environ: Mapping[str, str] | None = None) -> Route:
    """The model's transport and URL: the config's api_base, else the prefix's override variable
    (OPENAI_BASE_URL, …), else the provider's own API; None leaves it to litellm."""
    env = os.environ if environ is None else environ
    if isinstance(cfg.api_base, list) or cfg.deployments:
        members = endpoint_configs(cfg)
        first = resolve_route(members[0].config, env)
        return replace(first, others=tuple(member.name for member in members[1:]))
    spec = parse_model(cfg.model, api_base=cfg.api_base, provider=cfg.provider)
    if spec.provider == "offline":
        return Route(spec)
    if isinstance(cfg.api_base, str):
        return Route(spec, cfg.api_base, "api_base")
    entry = ENDPOINTS.get(spec.prefix, Endpoint())
    for name in entry.base_env:
        if env.get(name, "").strip():
            return Route(spec, _url_from(name, env[name]), name)
    if entry.base_url:
        return Route(spec, entry.base_url, "default")
    if spec.provider == DIRECT and spec.prefix in ENDPOINTS:
        variables = " or ".join(entry.base_env)
        raise ConfigError(
            f"{spec.full} has no URL: set api_base in its model block" + (f" or {variables}" if variables else "")
        )
    return Route(spec)


@dataclass(frozen=True)
class EndpointConfig:
    """One endpoint of a model served by several: a model block of one URL, the name progress and the
    summary show it by, and its own limits."""

    config: ModelConfig
    name: str
    max_concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None


# What an endpoint's own block does not inherit from the model block: the block's limits are the whole set's.
_SET_ONLY = {"deployments": None, "max_concurrency": None, "rpm": None, "tpm": None}


def endpoint_configs(cfg: ModelConfig) -> list[EndpointConfig]:
    """The endpoints of a model block: each replica of a list `api_base`, each of its `deployments`, or the
    block itself."""
    if isinstance(cfg.api_base, list):
        endpoints = []
        for item in cfg.api_base:
            url, limit = (item, None) if isinstance(item, str) else (item.url, item.max_concurrency)
            endpoints.append(EndpointConfig(cfg.model_copy(update={**_SET_ONLY, "api_base": url}), url, limit))
        return endpoints
    if not cfg.deployments:
        return [EndpointConfig(cfg, cfg.api_base or cfg.model)]
    endpoints = []
    for number, deployment in enumerate(cfg.deployments):
        fields = deployment.model_dump(include={"model", "api_base", "api_key_env", "api_version"}, exclude_none=True)
        single = cfg.model_copy(update={**_SET_ONLY, **fields})
        where = f"deployments[{number}]"
        try:
            route = resolve_route(single)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        name = deployment.region or route.api_base or single.model
        name = f"{name} ({single.model})" if deployment.region or single.model != cfg.model else name
        endpoints.append(EndpointConfig(single, name, deployment.max_concurrency, deployment.rpm, deployment.tpm))
    names = [endpoint.name for endpoint in endpoints]
    return [replace(e, name=_told_apart(e, n)) if names.count(e.name) > 1 else e for n, e in enumerate(endpoints)]


def _told_apart(endpoint: EndpointConfig, number: int) -> str:
    """A deployment's name when another has the same URL: with its key variable, else its number."""
    keys = endpoint.config.api_key_env
    key = keys if isinstance(keys, str) else ",".join(keys) if keys else None
    return f"{endpoint.name} ({key})" if key else f"{endpoint.name} #{number}"


def key_env_names(spec: ModelSpec, cfg: ModelConfig) -> list[str]:
    """The key variables for a model: the config's, or the provider's usual one."""
    if cfg.api_key_env:
        return [cfg.api_key_env] if isinstance(cfg.api_key_env, str) else list(cfg.api_key_env)
    entry = ENDPOINTS.get(spec.prefix)
    default = entry.key_env if entry is not None else f"{spec.prefix.upper()}_API_KEY" if spec.prefix else None
    return [default] if default else []


def is_provider_endpoint(prefix: str, api_base: str) -> bool:
    """Whether api_base is the provider's own API, over https (api.openai.com for 'openai', …)."""
    url = urlsplit(api_base)
    host = (url.hostname or "").lower()
    hosts = ENDPOINTS.get(prefix, Endpoint()).hosts
    return url.scheme == "https" and any(host == h or (h.startswith(".") and host.endswith(h)) for h in hosts)


def build_key_pool(route: Route, cfg: ModelConfig, environ: Mapping[str, str]) -> SmartKeyPool | None:
    """Keys from the environment. A URL that is not the provider's own API (an api_base, or one from
    OPENAI_BASE_URL and the like) gets a key only when the config (api_key_env) or --api-key-env names its
    variable; otherwise no key at all is sent."""
    if route.serves_elsewhere and not cfg.api_key_env:
        return None
    names = key_env_names(route.spec, cfg)
    if not names:
        return None
    return SmartKeyPool.from_env(names, dict(environ), route.spec.full)


def azure_api_version(cfg: ModelConfig, params: dict[str, Any], environ: Mapping[str, str]) -> str:
    """Azure's api-version, of online calls and batches alike: the config's, else `params.api_version`
    (litellm's spelling), else the AZURE_API_VERSION variable, else litellm's default."""
    version = cfg.api_version or params.pop("api_version", None) or environ.get("AZURE_API_VERSION", "").strip()
    return str(version or AZURE_API_VERSION)


class LLMFactory:
    """Creates providers from config; `create("openai/gpt-4o-mini")` works for scripts too."""

    @staticmethod
    def from_config(cfg: ModelConfig, environ: Mapping[str, str] | None = None) -> LLMProvider:
        if isinstance(cfg.api_base, list) or cfg.deployments:
            return LLMFactory.replica_set(cfg, environ)
        env = os.environ if environ is None else environ
        route = resolve_route(cfg, env)
        spec = route.spec
        factory = providers.get(spec.provider)
        params = LLMFactory.request_params(cfg)
        kwargs: dict[str, Any] = {"timeout": cfg.timeout, "params": params}
        if spec.provider != "offline":
            kwargs.update(api_base=route.api_base, keys=build_key_pool(route, cfg, env))
            price = model_price(cfg)
            if price is not None:
                kwargs["price"] = price
            if spec.prefix == "azure":
                version = azure_api_version(cfg, params, env)
                if spec.provider == DIRECT:
                    kwargs["api_version"] = version
                else:
                    params["api_version"] = version
        return factory(spec.full, **kwargs)  # type: ignore[no-any-return]

    @staticmethod
    def replica_set(cfg: ModelConfig, environ: Mapping[str, str] | None = None) -> ReplicaSet:
        """One provider over the block's replicas or deployments, each its own transport and limiter."""
        replicas = [
            Replica(
                endpoint.name,
                LLMFactory.from_config(endpoint.config, environ),
                RateLimiter(
                    max_concurrency=endpoint.max_concurrency, rpm=endpoint.rpm, tpm=endpoint.tpm, adaptive=False
                ),
            )
            for endpoint in endpoint_configs(cfg)
        ]
        # Named as one endpoint of it would be ('openai/llama3'), so the cache keys and rows are the same
        # whether one URL or several serve the model.
        name = parse_model(cfg.model, api_base=next(iter(cfg.api_base_urls), None), provider=cfg.provider).full
        return ReplicaSet(name, replicas, completion_allowance=cfg.max_tokens or 256)

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
    """USD per token: the config's override, else litellm's bundled map; None if unknown. An override of the
    online prices replaces the map's (cached tokens then cost the input price); a batch override replaces
    only the batch price."""
    if cfg.input_cost_per_million is not None or cfg.output_cost_per_million is not None:
        price: ModelPrice | None = ModelPrice.of(
            (cfg.input_cost_per_million or 0.0) / 1e6, (cfg.output_cost_per_million or 0.0) / 1e6
        )
    else:
        spec = parse_model(cfg.model, api_base=next(iter(cfg.api_base_urls), None), provider=cfg.provider)
        price = ModelPrice.of(0.0, 0.0) if spec.provider == "offline" else price_per_token(spec.full, spec.model)
    if price is None:
        return None
    batch = {"batch_input": cfg.batch_input_cost_per_million, "batch_output": cfg.batch_output_cost_per_million}
    overrides = {field: value / 1e6 for field, value in batch.items() if value is not None}
    return replace(price, **overrides) if overrides else price


def model_batch_price(cfg: ModelConfig) -> ModelPrice | None:
    """USD per token through the provider's batch API: the config's batch prices, else litellm's batch prices
    for the model, else half the online price (what OpenAI, Anthropic and Gemini charge); None if unpriced."""
    price = model_price(cfg)
    return None if price is None else price.batch()
