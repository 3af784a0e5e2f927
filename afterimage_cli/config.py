"""Pydantic models of the YAML config. Every model forbids unknown keys; `load_config` reads a file."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    """One LLM endpoint: which model, where, with which key, and how to call it."""

    model: str = Field(description="Model string: 'offline', 'openai/gpt-4o-mini', 'ollama/llama3', …")
    provider: str | None = Field(
        default=None, description="Registry name or 'module:Class' of the provider; inferred from model."
    )
    api_base: str | None = Field(default=None, description="Base URL of an OpenAI-compatible server.")
    api_key_env: str | list[str] | None = Field(
        default=None,
        description="Name(s) of environment variables holding API keys; never the key itself.",
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    timeout: float = Field(default=60.0, gt=0, description="Seconds before one request is abandoned.")
    params: dict[str, Any] = Field(default_factory=dict, description="Extra request parameters.")


class RetryConfig(_Strict):
    """How retryable errors are retried."""

    max_attempts: int = Field(default=6, ge=1, description="Attempts per LLM call, the first included.")
    base_delay: float = Field(default=0.5, ge=0, description="First backoff in seconds; doubles each try.")
    max_delay: float = Field(default=30.0, ge=0, description="Longest single backoff in seconds.")


class ErrorBudgetConfig(_Strict):
    """When a failing run gives up instead of burning time and money."""

    max_consecutive_failures: int = Field(default=10, ge=1)
    window: int = Field(default=50, ge=1, description="Number of recent items the failure rate covers.")
    max_failure_rate: float = Field(default=0.5, gt=0, le=1)


class InstructionsConfig(_Strict):
    """Which instruction generator writes the opening user messages, and its options."""

    generator: str = "simple"
    options: dict[str, Any] = Field(default_factory=dict)


class ModifierConfig(_Strict):
    """One respondent prompt modifier; modifiers run in the listed order."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class StorageConfig(_Strict):
    """Where rows go: a backend by registry name and its path."""

    type: str = "jsonl"
    path: str = "out/conversations.jsonl"


class GenerationConfig(_Strict):
    """What to generate and how much of it."""

    kind: Literal["conversation", "structured"] = "conversation"
    num_conversations: int = Field(default=10, ge=1)
    max_turns: int = Field(default=3, ge=1, description="User turns per conversation, at most.")
    min_turns: int = Field(default=1, ge=1, description="User turns per conversation, at least.")
    concurrency: int = Field(default=16, ge=1, description="Conversations in flight at once.")
    seed: int = 0
    system_prompt: str = "You are a helpful, accurate assistant."
    output_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the structured output (kind: structured)."
    )

    @model_validator(mode="after")
    def _check(self) -> GenerationConfig:
        if self.min_turns > self.max_turns:
            raise ValueError(f"min_turns ({self.min_turns}) is larger than max_turns ({self.max_turns})")
        if self.kind == "structured" and not self.output_schema:
            raise ValueError("kind 'structured' needs output_schema")
        return self


class Config(_Strict):
    """The whole config file."""

    respondent: ModelConfig
    correspondent: ModelConfig | None = Field(
        default=None, description="The simulated user's model; defaults to the respondent's."
    )
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    instructions: InstructionsConfig = Field(default_factory=InstructionsConfig)
    personas: list[str] = Field(default_factory=list)
    modifiers: list[ModifierConfig] = Field(default_factory=list)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    error_budget: ErrorBudgetConfig = Field(default_factory=ErrorBudgetConfig)

    @property
    def user_model(self) -> ModelConfig:
        return self.correspondent or self.respondent
