"""Dense-embedding requests go through the run's retries, error classification and error budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from afterimage_cli.config import ErrorBudgetConfig, RetryConfig
from afterimage_cli.engine.attempts import CallAttempts
from afterimage_cli.engine.retry import ErrorBudget
from afterimage_cli.errors import ProviderError, RunAborted

from .helpers import ROOT, invoke, make_config, read_rows

CORPUS = str(ROOT / "configs" / "corpus")


def dense_config(tmp_path: Path, server: Any, **retry: Any) -> Path:
    """An offline conversation config whose RAG index uses the fake server's /v1/embeddings."""
    embedding = {"type": "litellm", "model": "openai/test-embed", "api_base": server.api_base, "batch_size": 8}
    return make_config(
        tmp_path,
        documents={"sources": [CORPUS], "chunk_size": 600, "chunk_overlap": 100},
        retriever={"path": ":memory:", "embedding": embedding},
        modifiers=[{"name": "rag"}],
        generation={"num_conversations": 4, "max_turns": 1, "min_turns": 1, "concurrency": 2, "seed": 1},
        retry={"base_delay": 0.001, "max_delay": 0.002, **retry},
        error_budget={"max_consecutive_failures": 1000},
    )


def test_429s_and_500s_while_indexing_and_querying_are_retried(fake_server, tmp_path) -> None:
    fake_server.rate_500 = 0.45
    fake_server.rate_429 = 0.25
    fake_server.seed = 1  # a fixed draw sequence: the same failures every run
    fake_server.retry_after = 0.001
    result = invoke("generate", str(dense_config(tmp_path, fake_server, max_attempts=30)), "-q")
    assert result.exit_code == 0, result.stderr
    assert len(read_rows(tmp_path / "out.jsonl")) == 4
    stats = fake_server.snapshot()
    assert stats["500"] > 0 and stats["429"] > 0 and stats["embeddings"] > 4  # the index and the 4 queries


def test_a_rejected_key_stops_at_once_and_says_it_is_the_embedding_model(fake_server, tmp_path) -> None:
    fake_server.fail_status = 401
    result = invoke("generate", str(dense_config(tmp_path, fake_server)), "-q")
    assert result.exit_code == 1
    # No key was named for this endpoint, so none was sent: the error says which model and what to set.
    assert "retriever.embedding: openai/test-embed:" in result.stderr and "(401)" in result.stderr
    assert "api_key_env" in result.stderr
    assert "Traceback" not in result.stderr
    assert fake_server.snapshot()["requests"] == 1  # not retried, by us or by the SDK


def test_a_failing_server_gets_exactly_max_attempts(fake_server, tmp_path) -> None:
    """Every attempt is ours: the SDK's hidden retries would triple the requests."""
    fake_server.fail_status = 500
    result = invoke("generate", str(dense_config(tmp_path, fake_server, max_attempts=3)), "-q")
    assert result.exit_code == 1 and "retriever.embedding: openai/test-embed: server error (500)" in result.stderr
    assert fake_server.snapshot()["requests"] == 3


def _error(status: int) -> ProviderError:
    kind = "rate_limit" if status == 429 else "server"
    return ProviderError(f"status {status}", retryable=True, status_code=status, kind=kind)


def test_call_attempts_follow_the_retry_policy_and_feed_the_budget() -> None:
    retry = RetryConfig(max_attempts=3, base_delay=0.0, max_delay=0.0, rate_limit_patience=1.0)
    attempts = CallAttempts(retry)
    assert attempts.delay_after(_error(500)) == 0.0
    for _ in range(5):  # 429s use up no attempt
        assert attempts.delay_after(ProviderError("429", retryable=True, retry_after=0.1, kind="rate_limit"))
    assert attempts.delay_after(_error(500)) == 0.0
    assert attempts.delay_after(_error(500)) is None  # the third failed attempt ends the call
    assert CallAttempts(retry).delay_after(ProviderError("401", retryable=False, kind="auth")) is None

    # Failures reach the run's error budget (its stop messages quote the last one), and a run the budget
    # has stopped makes no further embedding call.
    budget = ErrorBudget(ErrorBudgetConfig(max_consecutive_failures=2))
    budgeted = CallAttempts(RetryConfig(max_attempts=5, base_delay=0.0), budget)
    budgeted.delay_after(_error(500))
    assert "500" in budget.last_error
    budget.stop("the server at http://x has not answered for 60 s")
    with pytest.raises(RunAborted, match="has not answered"):
        budgeted.before()


def test_openai_base_url_sends_the_embedding_server_no_key_unless_named(fake_server, tmp_path, monkeypatch) -> None:
    """litellm would send OPENAI_API_KEY to OPENAI_BASE_URL; the URL gets a key only when one is named."""
    from afterimage_cli.config import EmbeddingConfig
    from afterimage_cli.retrieval.embeddings import build_embedder

    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.api_base)
    embedder = build_embedder(EmbeddingConfig(type="litellm", model="openai/test-embed"))
    assert len(embedder.embed_documents(["a text"])[0]) > 0  # type: ignore[union-attr]
    assert "sk-real-openai-key" not in fake_server.snapshot()["by_key"]
    named = EmbeddingConfig(type="litellm", model="openai/test-embed", api_key_env="OPENAI_API_KEY")
    build_embedder(named).embed_documents(["a text"])  # type: ignore[union-attr]
    assert fake_server.snapshot()["by_key"].get("sk-real-openai-key") == 1
