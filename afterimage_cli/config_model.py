"""The config's base (unknown keys forbidden) and its model block, which every model a run calls shares."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RunMode = Literal["online", "batch"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    """One LLM endpoint: which model, where, with which key, and how to call it."""

    model: str = Field(description="Model string: 'offline', 'openai/gpt-4o-mini', 'ollama/llama3', …")
    provider: str | None = Field(
        default=None, description="Registry name or 'module:Class' of the provider; inferred from model."
    )
    api_base: str | None = Field(
        default=None,
        description="Base URL of the model's API: an OpenAI-compatible server, an Azure resource, a gateway; "
        "overrides OPENAI_BASE_URL and the other URL variables.",
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
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"api_base must be an http:// or https:// URL, got {value!r}")
        return value
