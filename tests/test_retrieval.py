"""Retrieval: the sparse BM25 default, Qdrant in local mode (disk and memory, sync and async), reuse of
the index, dense embeddings through litellm and sentence-transformers, and the offline hit rate."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from afterimage_cli.config import EmbeddingConfig, RetrieverConfig
from afterimage_cli.config_loader import load_config
from afterimage_cli.documents import Chunk
from afterimage_cli.errors import ConfigError, MissingCredentialsError
from afterimage_cli.instructions.contextual import ContextualInstructionGenerator
from afterimage_cli.providers.offline import OfflineProvider
from afterimage_cli.resources import Resources
from afterimage_cli.retrieval.base import aretrieve
from afterimage_cli.retrieval.embeddings import LiteLLMEmbedder, SentenceTransformerEmbedder, build_embedder
from afterimage_cli.retrieval.qdrant import QdrantRetriever
from afterimage_cli.retrieval.sparse import SparseBM25Embedder, SparseVectorData, tokenize
from afterimage_cli.types import NO_RETRIEVAL_CONTEXT

from .helpers import ROOT, invoke, make_config, read_rows

TOPICS = {
    "raft": "Raft elects a leader with randomized election timeouts and replicates a log to followers.",
    "bloom": "A Bloom filter answers set membership with false positives but never false negatives.",
    "tls": "TLS certificates bind a public key to a hostname and are signed by a certificate authority.",
    "btree": "A B-tree index keeps keys sorted so range scans read neighbouring pages.",
}


def make_chunks(texts: dict[str, str] = TOPICS) -> list[Chunk]:
    return [Chunk(id=f"c-{k}", document_id=f"d-{k}", index=0, text=v, source=f"{k}.txt") for k, v in texts.items()]


def test_tokenize_drops_stopwords_and_stems() -> None:
    assert tokenize("What is the cache? Caches, cached, caching!") == ["cach"] * 4
    assert tokenize("max-age of X25519 in TLS 1.3") == ["max-ag", "max", "age", "x25519", "tls", "1.3", "1", "3"]


def test_sparse_vectors_weigh_terms_by_count_and_length() -> None:
    embedder = SparseBM25Embedder()
    short, long = embedder.embed_documents(["raft leader", "raft raft raft leader log log follower follower"])
    assert short.indices == sorted(short.indices) and len(long.indices) == 4
    raft = dict(zip(long.indices, long.values, strict=True))
    counts = dict(zip(short.indices, short.values, strict=True))
    assert max(raft.values()) < embedder.k1 + 1  # saturation: three mentions weigh less than 3×
    assert set(counts) < set(raft)
    assert embedder.embed_query("the leader of raft").values == [1.0, 1.0]
    assert embedder.embed_query("what is it?").empty


def test_local_path_index_is_built_once_and_reused(tmp_path: Path) -> None:
    path = str(tmp_path / "index")
    first = QdrantRetriever(make_chunks(), path=path, top_k=2)
    result = first.get_context_with_metadata("How does a bloom filter handle false positives?")
    assert result.hits[0].id == "c-bloom" and result.hits[0].score > 0
    assert result.text.startswith(TOPICS["bloom"])
    assert first.build_seconds is not None
    first.close()

    again = QdrantRetriever(make_chunks(), path=path, top_k=2)
    assert again.collection_name == first.collection_name
    assert again.get_context("raft leader election").startswith(TOPICS["raft"])
    assert again.build_seconds is None  # reused, not rebuilt
    again.close()

    changed = QdrantRetriever(make_chunks({**TOPICS, "raft": "Raft now says something else."}), path=path)
    assert changed.collection_name != first.collection_name
    changed.close()


@pytest.mark.parametrize("damage", ["truncated", "another corpus", "not vectors"])
def test_a_damaged_vectors_file_is_rebuilt(tmp_path: Path, damage: str) -> None:
    path = str(tmp_path / "index")
    retriever = QdrantRetriever(make_chunks(), path=path)
    retriever.ensure_index()
    retriever.close()
    vectors = retriever.vectors_path
    assert vectors is not None and vectors.parent == tmp_path / "index"
    data = vectors.read_bytes()
    if damage == "truncated":
        vectors.write_bytes(data[:-3])
    elif damage == "another corpus":
        vectors.write_bytes(data.replace(b'"count":4', b'"count":5', 1))
    else:
        vectors.write_bytes(b"\x00" * 64)
    fresh = QdrantRetriever(make_chunks(), path=path)
    assert fresh.get_context("raft leader election").startswith(TOPICS["raft"])
    assert fresh.build_seconds is not None and fresh.load_seconds is None
    assert vectors.read_bytes() == data  # rewritten whole
    fresh.close()


@pytest.mark.parametrize("where", ["disk", ":memory:"])
def test_async_path_in_local_mode(tmp_path: Path, where: str) -> None:
    path = str(tmp_path / "index") if where == "disk" else ":memory:"
    retriever = QdrantRetriever(make_chunks(), path=path, top_k=3)
    if where == "disk":
        retriever.ensure_index()  # built by the sync client, then handed over to the async one

    async def main() -> list[Any]:
        try:
            queries = ["b-tree range scans", "certificate authority hostname", "leader election timeouts"] * 4
            return await asyncio.gather(*(retriever.aget_context_with_metadata(q) for q in queries))
        finally:
            await retriever.aclose()

    results = asyncio.run(main())
    assert [r.hits[0].id for r in results[:3]] == ["c-btree", "c-tls", "c-raft"]
    assert len({tuple(h.id for h in r.hits) for r in results}) == 3
    assert type(retriever._async_client).__name__ == "NoneType"  # closed


def test_async_client_is_the_async_qdrant_client(tmp_path: Path) -> None:
    retriever = QdrantRetriever(make_chunks(), path=":memory:")

    async def main() -> str:
        await retriever.aget_context("bloom")
        name = type(retriever._async_client).__name__
        await retriever.aclose()
        return name

    assert asyncio.run(main()) == "AsyncQdrantClient"


def test_nothing_found_gives_the_canonical_text() -> None:
    retriever = QdrantRetriever(make_chunks(), path=":memory:")
    for query in ("what is it?", "zeppelin"):
        result = retriever.get_context_with_metadata(query)
        assert result.empty and result.text == NO_RETRIEVAL_CONTEXT
    strict = QdrantRetriever(make_chunks(), path=":memory:", score_threshold=100.0)
    assert strict.get_context_with_metadata("bloom filter").empty
    retriever.close()
    strict.close()


def test_many_retrievers_read_one_folder_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "index")
    readers = [QdrantRetriever(make_chunks(), path=path, top_k=1) for _ in range(3)]
    for reader in readers:  # all open at once, each with its own in-memory copy
        assert reader.get_context_with_metadata("bloom filter false positives").hits[0].id == "c-bloom"
    assert readers[0].build_seconds is not None
    assert all(r.build_seconds is None and r.load_seconds is not None for r in readers[1:])
    for reader in readers:
        reader.close()


def test_runs_starting_at_once_on_an_unbuilt_index_embed_it_once(tmp_path: Path) -> None:
    """Whoever comes second waits for the first one's file instead of embedding (or writing) too."""
    calls: list[str] = []
    started = threading.Barrier(2)

    class SlowEmbedder(SparseBM25Embedder):
        def embed_documents(self, texts: Sequence[str]) -> list[SparseVectorData]:
            calls.append(threading.current_thread().name)
            time.sleep(0.3)  # long enough for the other thread to reach the index
            return super().embed_documents(texts)

    def run(results: dict[str, Any]) -> None:
        retriever = QdrantRetriever(make_chunks(), SlowEmbedder(), path=str(tmp_path / "index"), top_k=1)
        started.wait()
        results[threading.current_thread().name] = retriever.get_context_with_metadata("certificate authority")
        retriever.close()

    results: dict[str, Any] = {}
    threads = [threading.Thread(target=run, args=(results,), name=f"run{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert [r.hits for r in results.values()] == [results["run0"].hits] * 2 and results["run0"].hits[0].id == "c-tls"


def test_server_mode_uses_url_and_key_variable() -> None:
    cfg = RetrieverConfig(url="http://127.0.0.1:6333", api_key_env="QDRANT_KEY", collection="docs")
    retriever = QdrantRetriever.from_config(cfg, make_chunks(), environ={"QDRANT_KEY": "secret"})
    assert retriever._client_options() == {"url": "http://127.0.0.1:6333", "api_key": "secret"}
    assert retriever.local_path is None and retriever.collection_name.startswith("docs-")
    with pytest.raises(MissingCredentialsError, match="QDRANT_KEY"):
        QdrantRetriever.from_config(cfg, make_chunks(), environ={})
    with pytest.raises(ConfigError, match="retriever.options"):
        QdrantRetriever.from_config(RetrieverConfig(options={"x": 1}), make_chunks())


def test_plain_retrievers_work_through_aretrieve() -> None:
    class OnlyText:
        def get_context(self, query: str) -> str:
            return f"about {query}"

    class Empty:
        async def aget_context(self, query: str) -> str:
            return ""

    assert asyncio.run(aretrieve(OnlyText(), "x")).text == "about x"
    assert asyncio.run(aretrieve(Empty(), "x")).text == NO_RETRIEVAL_CONTEXT


def test_litellm_embeddings_from_an_openai_compatible_server(fake_server: Any) -> None:
    cfg = EmbeddingConfig(type="litellm", model="openai/test-embed", api_base=fake_server.api_base)
    embedder = build_embedder(cfg, {})
    assert isinstance(embedder, LiteLLMEmbedder) and embedder.api_key  # a placeholder key for a local server
    retriever = QdrantRetriever(make_chunks(), embedder, path=":memory:", top_k=4)
    result = retriever.get_context_with_metadata(TOPICS["tls"])
    assert result.hits[0].id == "c-tls"  # the fake server's vectors are hashes: identical text, identical vector

    async def main() -> str:
        try:
            return (await retriever.aget_context_with_metadata(TOPICS["raft"])).hits[0].id
        finally:
            await retriever.aclose()

    assert asyncio.run(main()) == "c-raft"
    retriever.close()
    with pytest.raises(MissingCredentialsError, match="EMBED_KEY"):
        build_embedder(EmbeddingConfig(type="litellm", model="openai/x", api_key_env="EMBED_KEY"), {})


def test_sentence_transformers_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    embedder = build_embedder(EmbeddingConfig(type="sentence-transformers", model="all-MiniLM-L6-v2"))
    with pytest.raises(ConfigError, match=r"pip install 'afterimage\[sentence-transformers\]'"):
        embedder.embed_query("x")

    class FakeModel:
        def __init__(self, name: str) -> None:
            self.name = name

        def encode(self, texts: list[str], **_: Any) -> list[list[float]]:
            return [[float("raft" in t.lower()), float("bloom" in t.lower()), 0.1] for t in texts]

    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=FakeModel))
    embedder = SentenceTransformerEmbedder("fake-model")
    retriever = QdrantRetriever(make_chunks(), embedder, path=":memory:")
    assert retriever.get_context_with_metadata("bloom").hits[0].id == "c-bloom"

    async def main() -> str:
        try:
            return (await retriever.aget_context_with_metadata("raft")).hits[0].id
        finally:
            await retriever.aclose()

    assert asyncio.run(main()) == "c-raft"


def test_embedding_config_needs_a_model_for_dense_types() -> None:
    with pytest.raises(ValueError, match="needs a model"):
        EmbeddingConfig(type="litellm")


def test_offline_questions_retrieve_their_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the bundled corpus, a question the offline model writes from chunk k finds chunk k in the top 3."""
    monkeypatch.chdir(ROOT)
    cfg = load_config(ROOT / "configs" / "quickstart.yaml")
    cfg = cfg.model_copy(update={"retriever": RetrieverConfig(path=":memory:", top_k=3)})
    resources = Resources(cfg)
    generator = ContextualInstructionGenerator(OfflineProvider(), resources=resources)
    chunks = resources.corpus().chunks
    retriever = resources.retriever()
    started = time.perf_counter()
    retriever.ensure_index()
    build = time.perf_counter() - started

    async def questions() -> list[Any]:
        # Items 0..n-1 of the coverage order use every chunk exactly once; three rounds give three questions each.
        return await asyncio.gather(*(generator.agenerate("", item_index=i) for i in range(3 * len(chunks))))

    found = 0
    generated = asyncio.run(questions())
    for item in generated:
        hits = [h.id for h in retriever.get_context_with_metadata(item.instructions[0]).hits]
        found += item.context_id in hits
    rate = found / len(generated)
    print(
        f"\noffline sparse retrieval: {found}/{len(generated)} questions ({rate:.1%}) find their chunk in the top 3; "
        f"{len(chunks)} chunks indexed in {build * 1000:.0f} ms"
    )
    retriever.close()
    assert rate >= 0.9


def test_embedding_batch_size_splits_index_requests(fake_server: Any) -> None:
    cfg = EmbeddingConfig(type="litellm", model="openai/test-embed", api_base=fake_server.api_base, batch_size=3)
    retriever = QdrantRetriever(make_chunks(), build_embedder(cfg, {}), path=":memory:")
    retriever.ensure_index()
    assert fake_server.snapshot()["embeddings"] == 2  # 4 chunks in batches of 3
    retriever.close()


def plugin_retriever(cfg: RetrieverConfig, chunks: list[Chunk]) -> Any:
    """A retriever factory named by 'module:attr' in retriever.type, with its own options."""

    class FirstChunk:
        def get_context(self, query: str) -> str:
            return f"{cfg.options['prefix']}{chunks[0].text}"

    return FirstChunk()


def test_retriever_type_names_a_plugin_factory(tmp_path: Path) -> None:
    path = make_config(
        tmp_path,
        documents={"sources": [str(ROOT / "configs" / "corpus")]},
        retriever={"type": "tests.test_retrieval:plugin_retriever", "options": {"prefix": ">> "}},
        modifiers=[{"name": "rag"}],
        generation={"num_conversations": 2, "max_turns": 1},
    )
    assert invoke("generate", str(path), "-q").exit_code == 0
    rows = read_rows(tmp_path / "out.jsonl")
    assert all(r["response_context"].startswith(">> ") and r["metadata"]["retrieval"]["hits"] == [] for r in rows)
    path.write_text(path.read_text().replace("tests.test_retrieval:plugin_retriever", "qdrantt"))
    result = invoke("validate", str(path))
    assert result.exit_code == 2 and "unknown retrievers 'qdrantt' (did you mean 'qdrant'?)" in result.output


def test_heavy_libraries_load_only_when_used() -> None:
    import subprocess

    code = (
        "import sys, afterimage_cli.retrieval, afterimage_cli.documents, afterimage_cli.personas, "
        "afterimage_cli.resources, afterimage_cli.modifiers.rag, afterimage_cli.instructions.contextual\n"
        "from afterimage_cli.retrieval import QdrantRetriever, Retriever\n"
        "assert isinstance(QdrantRetriever([]), Retriever)\n"
        "print(sorted(m for m in ('qdrant_client', 'litellm', 'pypdf') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
