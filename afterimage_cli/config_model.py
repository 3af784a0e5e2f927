"""The config's base (unknown keys forbidden) and its model block, which every model a run calls shares."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RunMode = Literal["online", "batch"]


def _http_url(value: str | None, field: str = "api_base") -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError(f"{field} must be an http:// or https:// URL, got {value!r}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReplicaConfig(_Strict):
    """One server of several that serve the same model (an entry of a list `api_base`)."""

    url: str = Field(description="The replica's base URL (its /v1 URL for an OpenAI-compatible server).")
    max_concurrency: int | None = Field(default=None, ge=1, description="Requests in flight to this replica, at most.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return str(_http_url(value, "url"))


class DeploymentConfig(_Strict):
    """One deployment of a hosted model (a region, an account, a provider): fields left out are the model
    block's."""

    model: str | None = Field(default=None, description="Its model string (default: the model block's).")
    api_base: str | None = Field(default=None, description="Its base URL (default: the block's, or the prefix's).")
    api_key_env: str | list[str] | None = Field(default=None, description="Its key variable(s) (default: the block's).")
    api_version: str | None = Field(default=None, description="azure/ deployments: the api-version.")
    region: str | None = Field(default=None, description="A label naming it in progress and the summary.")
    max_concurrency: int | None = Field(default=None, ge=1, description="Its requests in flight, at most.")
    rpm: float | None = Field(default=None, gt=0, description="Its requests per minute, at most.")
    tpm: float | None = Field(default=None, gt=0, description="Its tokens per minute, at most.")

    @field_validator("api_base")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _http_url(value)


class ModelConfig(_Strict):
    """One LLM endpoint: which model, where, with which key, and how to call it."""

    model: str = Field(description="Model string: 'offline', 'openai/gpt-4o-mini', 'ollama/llama3', …")
    provider: str | None = Field(
        default=None, description="Registry name or 'module:Class' of the provider; inferred from model."
    )
    api_base: str | list[str | ReplicaConfig] | None = Field(
        default=None,
        description="Base URL of the model's API: an OpenAI-compatible server, an Azure resource, a gateway; "
        "overrides OPENAI_BASE_URL and the other URL variables. A list: replicas serving the same model "
        "(URLs, or {url, max_concurrency}); each request goes to the one with the fewest in flight.",
    )
    deployments: list[DeploymentConfig] | None = Field(
        default=None,
        description="Several deployments of this one logical model (model, api_key_env, api_base, region, rpm, "
        "tpm each), routed like replicas.",
    )
    api_version: str | None = Field(
        default=None,
        description="azure/ models: the api-version query parameter (else AZURE_API_VERSION, else litellm's default).",
    )
    api_key_env: str | list[str] | None = Field(
        default=None,
        description="Name(s) of environment variables holding API keys; never the key itself.",
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    timeout: float = Field(default=60.0, gt=0, description="Seconds before one request is abandoned.")
    params: dict[str, Any] = Field(default_factory=dict, description="Extra request parameters.")
    max_concurrency: int | None = Field(default=None, ge=1, description="Requests in flight to this model, at most.")
    rpm: float | None = Field(default=None, gt=0, description="Requests per minute, at most.")
    tpm: float | None = Field(default=None, gt=0, description="Tokens per minute (prompt + completion), at most.")
    input_cost_per_million: float | None = Field(
        default=None, ge=0, description="USD per million prompt tokens; overrides litellm's price map."
    )
    output_cost_per_million: float | None = Field(
        default=None, ge=0, description="USD per million completion tokens; overrides litellm's price map."
    )
    batch_input_cost_per_million: float | None = Field(
        default=None,
        ge=0,
        description="USD per million prompt tokens through a batch API (default: the map's, or half).",
    )
    batch_output_cost_per_million: float | None = Field(
        default=None,
        ge=0,
        description="USD per million completion tokens through a batch API (default: the map's, or half).",
    )
    adaptive_concurrency: bool = Field(
        default=True,
        description="Cut concurrency when 429s rise above their usual rate (undone if the cut only lost "
        "throughput); grow it back while they stay low.",
    )

    @field_validator("api_base")
    @classmethod
    def _urls(cls, value: str | list[str | ReplicaConfig] | None) -> str | list[str | ReplicaConfig] | None:
        if not isinstance(value, list):
            return _http_url(value)
        if not value:
            raise ValueError("api_base is an empty list: give one URL or several")
        urls = [item if isinstance(item, str) else item.url for item in value]
        for url in urls:
            _http_url(url)
        repeated = sorted({url for url in urls if urls.count(url) > 1})
        if repeated:
            raise ValueError(f"api_base lists {repeated[0]} twice: each replica once")
        return value

    @model_validator(mode="after")
    def _one_way_to_several(self) -> ModelConfig:
        if self.deployments is not None:
            if not self.deployments:
                raise ValueError("deployments is an empty list: list at least one, or remove it")
            if isinstance(self.api_base, list):
                raise ValueError("api_base is a list and deployments is set: use one of them")
        return self

    @property
    def api_base_urls(self) -> list[str]:
        """The URLs `api_base` names (none, one, or each replica's)."""
        if self.api_base is None:
            return []
        if isinstance(self.api_base, str):
            return [self.api_base]
        return [item if isinstance(item, str) else item.url for item in self.api_base]
