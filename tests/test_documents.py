"""Documents: every source kind and format, chunking with overlap, stable ids, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from afterimage_cli.config import DocumentsConfig, DocumentSourceConfig
from afterimage_cli.config_loader import parse_config
from afterimage_cli.documents import load_corpus
from afterimage_cli.documents.chunking import chunk_text
from afterimage_cli.documents.readers import html_to_text, markdown_to_text
from afterimage_cli.errors import ConfigError

from .helpers import ROOT
from .pdfmaker import write_pdf

CORPUS = ROOT / "configs" / "corpus"


def corpus_of(*sources: object, size: int = 400, overlap: int = 60) -> list:
    cfg = DocumentsConfig.model_validate({"sources": list(sources), "chunk_size": size, "chunk_overlap": overlap})
    return load_corpus(cfg).documents


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("Plain text about Raft leader election and heartbeats.\n")
    (folder / "b.md").write_text("# Paxos notes\n\nThe **proposer** sends [prepare](http://x) messages.\n\n- accept\n")
    (folder / "sub" / "c.html").write_text(
        "<html><head><title>Gossip</title><style>p{}</style></head><body><h1>Gossip</h1>"
        "<p>Nodes exchange state with random peers.</p><script>var x = 1;</script></body></html>"
    )
    write_pdf(folder / "d.pdf", ["Vector clocks order events across replicas."], title="Clocks")
    (folder / "notes.docx").write_bytes(b"unknown format, skipped when scanning a folder")
    (folder / ".hidden.txt").write_text("hidden files are skipped")
    return folder


def test_directory_reads_every_format(mixed: Path) -> None:
    docs = corpus_of(str(mixed))
    by_suffix = {Path(d.source).suffix: d for d in docs}
    assert set(by_suffix) == {".txt", ".md", ".html", ".pdf"}
    assert by_suffix[".md"].title == "Paxos notes"
    assert "proposer sends prepare messages" in by_suffix[".md"].text and "**" not in by_suffix[".md"].text
    assert by_suffix[".html"].title == "Gossip"
    assert "random peers" in by_suffix[".html"].text and "var x" not in by_suffix[".html"].text
    assert by_suffix[".pdf"].title == "Clocks" and "Vector clocks order events" in by_suffix[".pdf"].text
    assert by_suffix[".txt"].title == "a" and not any("hidden" in d.text for d in docs)


def test_glob_single_file_and_pattern(mixed: Path) -> None:
    assert [Path(d.source).name for d in corpus_of(str(mixed / "**" / "*.html"))] == ["c.html"]
    assert [Path(d.source).name for d in corpus_of(str(mixed / "a.txt"))] == ["a.txt"]
    only_md = corpus_of({"path": str(mixed), "pattern": "*.md"})
    assert [Path(d.source).name for d in only_md] == ["b.md"]
    forced = corpus_of({"path": str(mixed / "notes.docx"), "format": "txt"})
    assert "skipped when scanning" in forced[0].text


def test_jsonl_with_configured_keys(tmp_path: Path) -> None:
    path = tmp_path / "kb.jsonl"
    lines = [{"body": "Bloom filters answer set membership.", "uid": 7, "name": "Bloom", "lang": "en"}, {}]
    path.write_bytes(orjson.dumps(lines[0]) + b"\n\n" + orjson.dumps({"body": "HyperLogLog counts.", "uid": "x"}))
    docs = corpus_of({"path": str(path), "text_key": "body", "id_key": "uid", "title_key": "name"})
    assert [d.id for d in docs] == ["7", "x"]
    assert docs[0].title == "Bloom" and docs[0].metadata == {"lang": "en"} and docs[0].source.endswith(":1")
    default_ids = corpus_of({"path": str(path), "text_key": "body"})
    assert all(d.id.startswith("doc-") for d in default_ids)


def test_bad_jsonl_key_names_field_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "kb.jsonl"
    path.write_text('{"text": "fine"}\n{"content": "wrong key"}\n')
    with pytest.raises(ConfigError, match=r"documents\.sources\[0\]\.text_key: .*kb\.jsonl:2 .*'text'.*content"):
        corpus_of(str(path))
    with pytest.raises(ConfigError, match=r"documents\.sources\[0\]\.id_key: .*kb\.jsonl:1 has no field 'uid'"):
        corpus_of({"path": str(path), "id_key": "uid"})
    path.write_text("not json\n")
    with pytest.raises(ConfigError, match=r"kb\.jsonl:1: not JSON"):
        corpus_of(str(path))


def test_missing_path_unknown_format_and_empty_glob(tmp_path: Path, mixed: Path) -> None:
    with pytest.raises(ConfigError, match=r"documents\.sources\[1\]\.path: .*nowhere does not exist"):
        corpus_of(str(mixed), str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"documents\.sources\[0\]: cannot tell the format of .*notes\.docx"):
        corpus_of(str(mixed / "notes.docx"))
    with pytest.raises(ConfigError, match=r"documents\.sources\[0\]\.path: no files match"):
        corpus_of(str(tmp_path / "*.nothing"))
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    with pytest.raises(ConfigError, match=r"bad\.pdf: cannot read PDF"):
        corpus_of(str(tmp_path / "bad.pdf"))


def test_unknown_format_name_is_rejected_by_the_config() -> None:
    text = "respondent: {model: offline}\ndocuments:\n  sources:\n    - path: docs\n      format: docx\n"
    with pytest.raises(ConfigError, match=r"<config>:5: documents\.sources\[0\]\.format"):
        parse_config(text)
    with pytest.raises(ConfigError, match="chunk_overlap"):
        parse_config("respondent: {model: offline}\ndocuments: {sources: [d], chunk_size: 100, chunk_overlap: 100}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'documents\.source'"):
        parse_config("respondent: {model: offline}\ndocuments: {source: d}\n")


def test_sources_accept_bare_strings() -> None:
    cfg = parse_config("respondent: {model: offline}\ndocuments: {sources: configs/corpus}\n")
    assert cfg.documents is not None
    assert cfg.documents.sources == [DocumentSourceConfig(path="configs/corpus")]
    assert (cfg.documents.chunk_size, cfg.documents.chunk_overlap) == (1000, 150)


def test_chunks_overlap_and_cover_the_text() -> None:
    sentences = [f"Sentence number {i} talks about topic {i * 7} in some detail." for i in range(40)]
    text = " ".join(sentences[:20]) + "\n\n" + " ".join(sentences[20:])
    chunks = chunk_text(text, 300, 80)
    assert len(chunks) > 3 and all(len(c) <= 300 for c in chunks)
    for sentence in sentences:
        assert any(sentence in c for c in chunks)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.split(". ")[0].rstrip(".") in before  # each chunk starts with the previous one's tail
    assert chunk_text(text, 300, 0)[1].split(". ")[0] not in chunk_text(text, 300, 0)[0]
    assert chunk_text("word " * 200, 100, 10) and all(len(c) <= 100 for c in chunk_text("x" * 250, 100, 10))


def test_ids_are_stable_and_follow_content(tmp_path: Path) -> None:
    cfg = DocumentsConfig.model_validate({"sources": [str(CORPUS)], "chunk_size": 500, "chunk_overlap": 80})
    first, second = load_corpus(cfg), load_corpus(cfg)
    assert [c.id for c in first.chunks] == [c.id for c in second.chunks]
    assert len({c.id for c in first.chunks}) == len(first.chunks) and first.fingerprint == second.fingerprint
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in CORPUS.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    moved = load_corpus(
        DocumentsConfig.model_validate({"sources": [str(copy)], "chunk_size": 500, "chunk_overlap": 80})
    )
    assert [c.id for c in moved.chunks] == [c.id for c in first.chunks]  # ids come from content, not paths
    (copy / "unit-testing.txt").write_text((copy / "unit-testing.txt").read_text() + "\nA new closing sentence.")
    changed = load_corpus(
        DocumentsConfig.model_validate({"sources": [str(copy)], "chunk_size": 500, "chunk_overlap": 80})
    )
    assert changed.fingerprint != first.fingerprint
    assert len(set(c.id for c in changed.chunks) ^ set(c.id for c in first.chunks)) >= 2
    rechunked = load_corpus(DocumentsConfig.model_validate({"sources": [str(CORPUS)], "chunk_size": 700}))
    old = {c.id: c.text for c in first.chunks}
    assert {c.id for c in rechunked.chunks} != set(old)
    assert all(old[c.id] == c.text for c in rechunked.chunks if c.id in old)  # a shared id means shared text


def test_repeated_documents_are_kept_once(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("The same words in two files.")
    (tmp_path / "two.txt").write_text("The same words in two files.")
    assert len(corpus_of(str(tmp_path))) == 1


def test_bundled_corpus_mixes_formats_and_topics() -> None:
    docs = corpus_of(str(CORPUS))
    assert 6 <= len(docs) <= 10
    assert {Path(d.source).suffix for d in docs} == {".md", ".txt", ".html"}


def test_markup_helpers() -> None:
    title, text = markdown_to_text("# Title\n\n```python\nx = 1\n```\n* item `code`\n![img](a.png) [link](b)")
    assert title == "Title" and "x = 1" in text and "item code" in text and "img link" in text
    title, text = html_to_text("<h2>Only heading</h2><p>a &amp; b</p><noscript>no</noscript>")
    assert title == "Only heading" and "a & b" in text and "no" not in text.split()
