"""Pydantic models of the YAML config. Every model forbids unknown keys; `load_config` reads a file."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

# The sections defined beside this module stay importable from here, as they always were.
from .config_judging import (  # noqa: F401
    DEFAULT_WEIGHTS,
    CheckName,
    Criterion,
    DegradeAxis,
    EvaluationConfig,
    GradeName,
    GradeThresholds,
    HygieneConfig,
    PreferenceConfig,
    PreferenceStrategy,
    QualityConfig,
)
from .config_model import DeploymentConfig, ModelConfig, ReplicaConfig, RunMode, _Strict  # noqa: F401
from .config_tools import McpServerConfig, ToolDefinition, ToolsConfig  # noqa: F401


class RetryConfig(_Strict):
    """How retryable errors are retried."""

    max_attempts: int = Field(default=6, ge=1, description="Attempts per LLM call, the first included.")
    base_delay: float = Field(default=0.5, ge=0, description="First backoff in seconds; doubles each try.")
    max_delay: float = Field(default=30.0, ge=0, description="Longest single backoff in seconds.")
    rate_limit_patience: float = Field(
        default=600.0, ge=0, description="Seconds one call may spend waiting out 429s before it fails."
    )


class ErrorBudgetConfig(_Strict):
    """When a failing run gives up instead of burning time and money."""

    max_consecutive_failures: int = Field(
        default=10,
        ge=1,
        description="Failed attempts in a row to one server (refused or dropped connections, timeouts, 5xx) "
        "that declare it down: calls pause while one probe at a time checks it. A server that never answered "
        "stops the run instead.",
    )
    max_outage_s: float = Field(
        default=60.0, gt=0, description="Seconds a server may stay down before the run stops (exit 1)."
    )
    window: int = Field(default=50, ge=1, description="Number of recent items the failure rate covers.")
    max_failure_rate: float = Field(default=0.5, gt=0, le=1)
    max_rejected_share: float = Field(
        default=0.05,
        gt=0,
        lt=1,  # at 1, a run whose every item is rejected would take new item numbers forever
        description="Share of finished items that may be rejected (checked once 10 are) before the run stops.",
    )


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


class StopWhenConfig(_Strict):
    """A stopping rule used instead of num_conversations; set exactly one."""

    chunk_coverage: int | None = Field(
        default=None, ge=1, description="Stop once every document chunk has been the context K times."
    )
    all_personas_used: bool = Field(default=False, description="Stop once every persona has had a conversation.")

    @model_validator(mode="after")
    def _one_rule(self) -> StopWhenConfig:
        if (self.chunk_coverage is not None) == self.all_personas_used:
            raise ValueError("set exactly one of chunk_coverage or all_personas_used")
        return self


class GenerationConfig(_Strict):
    """What to generate and how much of it."""

    kind: Literal["conversation", "structured", "preference"] = "conversation"
    num_conversations: int = Field(default=10, ge=1)
    max_turns: int = Field(default=3, ge=1, description="User turns per conversation, at most.")
    min_turns: int = Field(default=1, ge=1, description="User turns per conversation, at least.")
    concurrency: int = Field(default=16, ge=1, description="Conversations in flight at once.")
    seed: int = 0
    system_prompt: str = "You are a helpful, accurate assistant."
    output_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the structured output (kind: structured)."
    )
    stop_when: StopWhenConfig | None = Field(
        default=None, description="A stopping rule instead of num_conversations (a -n flag overrides it)."
    )
    on_truncated: Literal["retry", "keep", "reject"] = Field(
        default="retry",
        description="What the `cut` check does with a turn cut off by max_tokens or mid-sentence: generate it "
        "again (hygiene.max_regenerations times), keep it (marked in metadata.cut_off_turns), or reject the item.",
    )
    mode: RunMode = Field(
        default="online", description="online: calls go out at once; batch: in rounds through batch APIs (half price)."
    )

    @model_validator(mode="after")
    def _check(self) -> GenerationConfig:
        if self.min_turns > self.max_turns:
            raise ValueError(f"min_turns ({self.min_turns}) is larger than max_turns ({self.max_turns})")
        if self.kind == "structured" and not self.output_schema:
            raise ValueError("kind 'structured' needs output_schema")
        if self.output_schema is not None:
            import jsonschema  # only configs with a schema pay for it

            try:
                jsonschema.validators.validator_for(self.output_schema).check_schema(self.output_schema)
            except jsonschema.SchemaError as exc:
                where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
                raise ValueError(f"output_schema is not a valid JSON Schema at {where}: {exc.message}") from None
        return self


DocumentFormat = Literal["auto", "txt", "md", "html", "pdf", "jsonl"]


class DocumentSourceConfig(_Strict):
    """One place documents come from; a bare string in `sources` is its `path`."""

    path: str = Field(description="A file, a directory, or a glob such as 'docs/**/*.md' (relative to the cwd).")
    format: DocumentFormat = Field(default="auto", description="'auto' goes by each file's suffix.")
    pattern: str = Field(default="**/*", description="Which files to take under a directory.")
    text_key: str = Field(default="text", description="JSONL: the field holding a document's text.")
    id_key: str | None = Field(default=None, description="JSONL: the field holding its id (default: content hash).")
    title_key: str | None = Field(default=None, description="JSONL: the field holding its title.")


class DocumentsConfig(_Strict):
    """The documents conversations are grounded in, and how they are cut into chunks."""

    sources: list[DocumentSourceConfig] = Field(min_length=1)
    chunk_size: int = Field(default=1000, ge=50, description="Characters per chunk, at most (about).")
    chunk_overlap: int = Field(default=150, ge=0, description="Characters of whole sentences chunks share.")

    @field_validator("sources", mode="before")
    @classmethod
    def _paths_as_sources(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [{"path": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _check(self) -> DocumentsConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})"
            )
        return self


class EmbeddingConfig(_Strict):
    """How chunks and queries become vectors."""

    type: Literal["sparse", "litellm", "sentence-transformers"] = Field(
        default="sparse", description="'sparse': model-free BM25-style, offline; or a dense embedding model."
    )
    model: str | None = Field(default=None, description="litellm: 'openai/text-embedding-3-small', …; ST: a name.")
    api_base: str | None = Field(default=None, description="litellm: an OpenAI-compatible embedding server.")
    api_key_env: str | None = Field(default=None, description="litellm: the variable holding the API key.")
    batch_size: int = Field(default=64, ge=1, description="Texts per embedding request while indexing.")

    @model_validator(mode="after")
    def _check(self) -> EmbeddingConfig:
        if self.type != "sparse" and not self.model:
            raise ValueError(f"embedding type {self.type!r} needs a model")
        return self


class RetrieverConfig(_Strict):
    """The retriever behind the 'rag' modifier: Qdrant, embedded on disk by default."""

    type: str = Field(default="qdrant", description="Registry name or 'module:factory' of the retriever.")
    path: str = Field(
        default=".afterimage/qdrant", description="Local mode: index folder (reused across runs), or ':memory:'."
    )
    url: str | None = Field(default=None, description="A Qdrant server; when set, `path` is not used.")
    api_key_env: str | None = Field(default=None, description="The variable holding the Qdrant server's API key.")
    collection: str = Field(default="afterimage", description="Collection name prefix (a content hash follows).")
    top_k: int = Field(default=3, ge=1, description="Chunks retrieved per query.")
    score_threshold: float | None = Field(default=None, description="Drop hits scoring below this.")
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    options: dict[str, Any] = Field(default_factory=dict, description="Extra options for a plugin retriever.")


class PersonaGenerationConfig(_Strict):
    """Personas written by the model from the documents, then expanded as a tree."""

    roots: int = Field(default=3, ge=1, description="Personas at depth 0.")
    depth: int = Field(default=1, ge=0, le=5, description="Deepest level: each persona at depth d < depth …")
    branching: int = Field(default=2, ge=1, description="… spawns this many more specific personas at d + 1.")
    excerpts: int = Field(default=4, ge=1, description="Document chunks shown to the model per request.")
    concurrency: int = Field(default=4, ge=1, description="Requests in flight at once.")
    model: ModelConfig | None = Field(default=None, description="The model that writes them (default: correspondent).")

    @property
    def tree_size(self) -> int:
        return self.roots * sum(self.branching**level for level in range(self.depth + 1))

    @model_validator(mode="after")
    def _check(self) -> PersonaGenerationConfig:
        if self.tree_size > 2000:
            raise ValueError(f"the persona tree would hold {self.tree_size} personas (at most 2000)")
        return self


class CacheConfig(_Strict):
    """The response cache: a re-run pays only for requests it has not made before."""

    enabled: bool = True
    path: str | None = Field(
        default=None, description="SQLite file; default $XDG_CACHE_HOME/afterimage/responses.sqlite."
    )


class BatchConfig(_Strict):
    """Batch mode (`generation.mode: batch`, `--mode batch`): how rounds are sized, watched and finished."""

    poll_interval: float = Field(default=30.0, gt=0, description="Seconds between asking how the batches stand.")
    finish_online_below: int = Field(
        default=0, ge=0, description="A round of fewer requests than this goes out online instead (0: never)."
    )
    items_in_flight: int = Field(
        default=50_000, ge=1, description="Conversations advanced together, one call each per round."
    )
    max_requests: int | None = Field(
        default=None, ge=1, description="Requests per batch, at most (default: the provider's limit)."
    )


class ExecutionConfig(_Strict):
    """Where items run: in this process, or on K Ray workers with this process as the single writer."""

    executor: Literal["local", "ray"] = Field(
        default="local", description="local, or ray (pip install 'afterimage[ray]')."
    )
    address: str | None = Field(
        default=None, description="A Ray cluster ('auto', 'ray://host:10001'); default $RAY_ADDRESS, else a local Ray."
    )
    workers: int = Field(
        default=2, ge=1, description="Ray workers (actors) that run items; generation.concurrency is shared."
    )


class BudgetConfig(_Strict):
    """Spending limits: the run stops cleanly (flushed, resumable) when one is reached."""

    max_cost_usd: float | None = Field(default=None, gt=0, description="Stop before spending more than this.")
    max_total_tokens: int | None = Field(
        default=None, gt=0, description="Stop after the run has used this many tokens (prompt + completion)."
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        # `max_tokens` is a per-call completion limit in a model block; as a run budget it read as the same
        # thing, so the budget was renamed, and the old name is refused rather than silently meaning either.
        if isinstance(data, dict) and "max_tokens" in data:
            raise ValueError(
                "budget.max_tokens was renamed budget.max_total_tokens (the run's token budget, prompt + "
                "completion); a per-call completion limit is max_tokens in a model block"
            )
        return data


class Config(_Strict):
    """The whole config file."""

    respondent: ModelConfig
    correspondent: ModelConfig | None = Field(
        default=None, description="The simulated user's model; defaults to the respondent's."
    )
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    instructions: InstructionsConfig = Field(default_factory=InstructionsConfig)
    personas: list[str] = Field(default_factory=list)
    personas_file: str | None = Field(
        default=None,
        description="Personas from a file (txt one per line, JSON, JSONL); with persona_generation, its cache.",
    )
    persona_generation: PersonaGenerationConfig | None = None
    documents: DocumentsConfig | None = None
    retriever: RetrieverConfig | None = None
    modifiers: list[ModifierConfig] = Field(default_factory=list)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    error_budget: ErrorBudgetConfig = Field(default_factory=ErrorBudgetConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    hygiene: HygieneConfig = Field(default_factory=HygieneConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    preference: PreferenceConfig | None = Field(
        default=None, description="generation.kind: preference — how pairs are made and kept (defaults apply)."
    )
    tools: ToolsConfig | None = Field(
        default=None, description="Tool-calling conversations: the functions the respondent may call."
    )

    @property
    def user_model(self) -> ModelConfig:
        return self.correspondent or self.respondent

    @property
    def preference_settings(self) -> PreferenceConfig:
        """The preference settings in force (the defaults when the block is left out)."""
        return self.preference or PreferenceConfig()

    @model_validator(mode="after")
    def _preference_kind(self) -> Config:
        kind = self.generation.kind
        if self.preference is not None and kind != "preference":
            raise ValueError(f"preference: is set but generation.kind is {kind!r}; set generation.kind: preference")
        if kind == "preference" and self.quality.auto_improve:
            raise ValueError(
                "quality.auto_improve does not apply to generation.kind: preference (its pairs are judged pairwise); "
                "for pairs from the quality gate, use kind: conversation with quality.keep_pairs: true"
            )
        if self.tools is not None and kind != "conversation":
            raise ValueError(f"tools: apply to generation.kind: conversation, not {kind!r}")
        if self.tools is not None and self.quality.keep_pairs:
            # Its pairs are the first answers where two attempts part, which in a tool run may be a step that
            # calls tools rather than an answer.
            raise ValueError("quality.keep_pairs does not apply to runs with tools: (use quality.auto_improve alone)")
        return self


# Fields that change how a run goes, not what its rows say. They are left out of the run fingerprint, so
# changing them (more rows, more concurrency, another endpoint or key, a budget) resumes the same run.
# The model an api_base server serves is not a field: the run asks the server and adds it (engine/served.py).
OPERATIONAL_FIELDS: dict[type[BaseModel], frozenset[str]] = {
    Config: frozenset({"storage", "retry", "error_budget", "cache", "budget", "batch", "execution"}),
    GenerationConfig: frozenset({"num_conversations", "concurrency", "stop_when", "mode"}),
    ModelConfig: frozenset(
        {
            # Replicas and deployments serve the same model: which ones, and how many, is how it is reached.
            *("api_base", "deployments", "api_key_env", "timeout", "provider", "max_concurrency", "rpm", "tpm"),
            *("adaptive_concurrency", "input_cost_per_million", "output_cost_per_million", "api_version"),
            *("batch_input_cost_per_million", "batch_output_cost_per_million"),
        }
    ),
    RetrieverConfig: frozenset({"path", "url", "api_key_env", "collection"}),
    EmbeddingConfig: frozenset({"api_base", "api_key_env", "batch_size"}),
    PersonaGenerationConfig: frozenset({"concurrency"}),
    EvaluationConfig: frozenset({"concurrency", "mode"}),
    PreferenceConfig: frozenset({"max_dropped_share"}),
    McpServerConfig: frozenset({"cwd", "env"}),
}
