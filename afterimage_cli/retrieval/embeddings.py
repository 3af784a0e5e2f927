"""Embedders: the offline sparse default, any litellm embedding model, and local sentence-transformers."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..config import EmbeddingConfig, RetryConfig
from ..engine.attempts import CallAttempts
from ..errors import ConfigError, MissingCredentialsError, ProviderError
from .sparse import SparseBM25Embedder, SparseVectorData

if TYPE_CHECKING:
    from ..engine.retry import ErrorBudget

DenseVector = list[float]
Vector = DenseVector | SparseVectorData
# litellm's openai client insists on some key; a local OpenAI-compatible server ignores it.
LOCAL_PLACEHOLDER_KEY = "sk-no-key-required"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors. `identity` names the vector space: indexes are keyed by it."""

    kind: str  # "sparse" or "dense"
    identity: str

    def embed_documents(self, texts: Sequence[str]) -> Sequence[Vector]: ...

    def embed_query(self, text: str) -> Vector: ...

    async def aembed_query(self, text: str) -> Vector: ...


def _litellm() -> Any:
    """litellm, with the SDK's hidden retries off: its embedding path reads `max_retries or
    DEFAULT_MAX_RETRIES`, so max_retries=0 alone still retries twice; every attempt must be ours
    (backed off, budgeted, classified)."""
    from ..providers.litellm_provider import import_litellm

    litellm = import_litellm()
    litellm.DEFAULT_MAX_RETRIES = 0
    return litellm


class LiteLLMEmbedder:
    """Any embedding model litellm knows ('openai/text-embedding-3-small', …) or an OpenAI-compatible server.

    Requests are retried like chat calls (CallAttempts: backoff, 429s waited out, the error budget);
    a rejected key, an unknown model or a refused request fails at once with what to fix."""

    kind = "dense"

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        batch_size: int = 64,
        retry: RetryConfig | None = None,
        budget: ErrorBudget | None = None,
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.batch_size = batch_size
        self.retry = retry or RetryConfig()
        self.budget = budget
        self.identity = f"litellm:{model}@{api_base or 'default'}"

    def _request(self, texts: Sequence[str]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model, "input": list(texts), "max_retries": 0}
        if self.api_base:
            request["api_base"] = self.api_base
        if self.api_key:
            request["api_key"] = self.api_key
        return request

    def _vectors(self, response: Any) -> list[DenseVector]:
        data = sorted(response.data, key=lambda item: _field(item, "index"))
        return [[float(x) for x in _field(item, "embedding")] for item in data]

    def _error(self, exc: Exception) -> ProviderError:
        from ..providers.litellm_provider import map_litellm_error

        error = map_litellm_error(exc, self.model, None, self.api_base)
        return ProviderError(
            f"retriever.embedding: {error}",
            retryable=error.retryable,
            status_code=error.status_code,
            retry_after=error.retry_after,
            kind=error.kind,
            headers=error.headers,
        )

    def _call(self, texts: Sequence[str]) -> Any:
        """One embedding request, attempted until it succeeds or its error says to stop."""
        litellm = _litellm()
        attempts = CallAttempts(self.retry, self.budget)
        while True:
            attempts.before()
            try:
                response = litellm.embedding(**self._request(texts))
            except Exception as exc:  # mapped at the boundary, like the chat provider
                error = self._error(exc)
                delay = attempts.delay_after(error)
                if delay is None:
                    raise error from exc
                time.sleep(delay)  # indexing runs in a worker thread, off the event loop
                continue
            return response

    async def _acall(self, texts: Sequence[str]) -> Any:
        litellm = _litellm()
        attempts = CallAttempts(self.retry, self.budget)
        while True:
            attempts.before()
            try:
                response = await litellm.aembedding(**self._request(texts))
            except Exception as exc:
                error = self._error(exc)
                delay = attempts.delay_after(error)
                if delay is None:
                    raise error from exc
                await asyncio.sleep(delay)
                continue
            return response

    def embed_documents(self, texts: Sequence[str]) -> list[DenseVector]:
        vectors: list[DenseVector] = []
        for start in range(0, len(texts), self.batch_size):
            vectors += self._vectors(self._call(texts[start : start + self.batch_size]))
        return vectors

    def embed_query(self, text: str) -> DenseVector:
        return self.embed_documents([text])[0]

    async def aembed_query(self, text: str) -> DenseVector:
        return self._vectors(await self._acall([text]))[0]


def _field(item: Any, name: str) -> Any:
    """litellm returns embedding items as dicts or objects depending on the provider."""
    return item[name] if isinstance(item, dict) else getattr(item, name)


class SentenceTransformerEmbedder:
    """A local sentence-transformers model (the optional extra); loaded on first use, never at import."""

    kind = "dense"

    def __init__(self, model: str, *, batch_size: int = 64) -> None:
        self.model_name = model
        self.batch_size = batch_size
        self.identity = f"sentence-transformers:{model}"
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise ConfigError(
                    "retriever.embedding.type 'sentence-transformers' needs the optional extra: "
                    "pip install 'afterimage[sentence-transformers]'"
                ) from None
            self._model = SentenceTransformer(self.model_name)
        return self._model

    def embed_documents(self, texts: Sequence[str]) -> list[DenseVector]:
        vectors = self._load().encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True)
        return [[float(x) for x in vector] for vector in vectors]

    def embed_query(self, text: str) -> DenseVector:
        return self.embed_documents([text])[0]

    async def aembed_query(self, text: str) -> DenseVector:
        # Encoding is CPU work in-process: a thread keeps it off the event loop.
        return await asyncio.to_thread(self.embed_query, text)


def build_embedder(
    cfg: EmbeddingConfig,
    environ: dict[str, str] | None = None,
    *,
    retry: RetryConfig | None = None,
    budget: ErrorBudget | None = None,
) -> Embedder:
    """The embedder a config names; a missing key variable is reported by name. `retry` and `budget` are
    the run's, so embedding requests are retried and budgeted like its LLM calls."""
    env = dict(os.environ) if environ is None else environ
    if cfg.type == "sparse":
        return SparseBM25Embedder()
    assert cfg.model is not None  # the config validator requires it for dense types
    if cfg.type == "sentence-transformers":
        return SentenceTransformerEmbedder(cfg.model, batch_size=cfg.batch_size)
    api_key = None
    if cfg.api_key_env:
        api_key = env.get(cfg.api_key_env)
        if not api_key:
            raise MissingCredentialsError(
                f"retriever.embedding.api_key_env: set the environment variable {cfg.api_key_env}"
            )
    elif cfg.api_base:
        api_key = LOCAL_PLACEHOLDER_KEY
    api_base = cfg.api_base or _elsewhere(cfg.model, env)
    if api_base and not cfg.api_base:
        api_key = api_key or LOCAL_PLACEHOLDER_KEY
    return LiteLLMEmbedder(
        cfg.model, api_base=api_base, api_key=api_key, batch_size=cfg.batch_size, retry=retry, budget=budget
    )


def _elsewhere(model: str, environ: dict[str, str]) -> str | None:
    """The URL OPENAI_BASE_URL (or another override variable) points the model at, when it is not the
    provider's own API. litellm would read it itself and send it the provider's usual key; passed on
    explicitly, it gets no key unless `api_key_env` names one, as chat models' URLs do."""
    from ..config import ModelConfig
    from ..providers.factory import resolve_route

    try:
        route = resolve_route(ModelConfig(model=model), environ)
    except ConfigError:  # no provider prefix, or one without a URL: litellm resolves it as before
        return None
    return route.api_base if route.serves_elsewhere else None
