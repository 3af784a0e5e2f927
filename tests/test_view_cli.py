"""`afterimage view` as a command: where the page goes, what it embeds, sampling, the ledger, bad input."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from afterimage_cli.view.catalog import REF
from tests.helpers import invoke
from tests.view_helpers import evaluated_row, preference_row, sample_rows, tool_row, write_jsonl, write_ledger

DATA = re.compile(rb'<script type="application/json" id="afterimage-(index|rows)">(.*?)</script>', re.S)


def embedded(page: bytes) -> dict[str, Any]:
    """The JSON documents the page carries (what its script reads): the index, and its rows."""
    found = dict(DATA.findall(page))
    assert sorted(found) == [b"index", b"rows"]
    return {**orjson.loads(found[b"index"]), "rows": orjson.loads(found[b"rows"])}


def test_the_page_is_written_beside_the_input_and_embeds_every_row(tmp_path: Path) -> None:
    rows = [*sample_rows(12), preference_row(0), tool_row(0)]
    source = write_jsonl(tmp_path / "run.jsonl", rows)
    result = invoke("view", str(source))
    assert result.exit_code == 0, result.output
    assert f"view: 14 rows, 0 skipped (invalid), 0 rejected items from the ledger; wrote {tmp_path / 'run.html'}" in (
        result.stderr
    )
    page = (tmp_path / "run.html").read_bytes()
    assert page.startswith(b"<!doctype html>")
    data = embedded(page)
    assert data["meta"] | {"version": None} == {
        "source": "run.jsonl",
        "rows": 14,
        "shown": 14,
        "sampled": False,
        "max_rows": 100_000,
        "skipped": 0,
        "ledger": None,
        "version": None,
    }
    assert data["cols"]["id"] == [r["id"] for r in rows]
    strings = data["strings"]
    assert [strings[k] for k in data["cols"]["kind"]][-2:] == ["preference", "tool"]
    assert data["cols"]["turns"][:3] == [1, 2, 3]
    # a repeated persona is stored once and referenced from every row that has it
    assert strings.count("a retired sysadmin") == 1
    first = data["rows"][1]
    assert strings[first["persona"][REF]] == "a retired sysadmin"
    assert first["conversations"] == rows[1]["conversations"]


def test_nothing_in_a_row_can_end_the_script_or_reach_the_network(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "run.jsonl", sample_rows(8))
    assert invoke("view", str(source), "-o", str(tmp_path / "page.html")).exit_code == 0
    page = (tmp_path / "page.html").read_bytes()
    data = embedded(page)
    assert data["rows"][5]["conversations"][0]["content"].startswith("Tell me about the <script>alert(1)</script>")
    for _, data_text in DATA.findall(page):
        assert b"<" not in data_text
    assert b"default-src 'none'" in page  # the page's policy: no request of any kind
    assert not re.search(rb"(src|href)=\"(https?:)?//", page)


def test_stdin_writes_the_page_to_stdout(tmp_path: Path) -> None:
    rows = sample_rows(3)
    result = invoke("view", "-", "-q", input=b"".join(orjson.dumps(r) + b"\n" for r in rows).decode())
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<!doctype html>")
    assert embedded(result.stdout_bytes)["meta"]["source"] == "stdin"
    assert result.stderr == ""


def test_max_rows_samples_uniformly_in_file_order_and_the_overview_counts_all(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "big.jsonl", [evaluated_row(i) for i in range(1000)])
    result = invoke("view", str(source), "--max-rows", "100", "-o", str(tmp_path / "a.html"))
    assert result.exit_code == 0, result.output
    assert "1,000 rows (a uniform sample of 100)" in result.stderr
    page = (tmp_path / "a.html").read_bytes()
    data = embedded(page)
    assert data["meta"]["sampled"] is True and data["meta"]["shown"] == 100
    lines = data["cols"]["line"]
    assert len(lines) == 100 and lines == sorted(lines)
    assert sum(1 for line in lines if line <= 500) in range(30, 71)  # both halves of the file are sampled
    assert data["cols"]["id"] == [f"row-{line - 1:05d}" for line in lines]
    assert b"<b>1,000</b>rows" in page  # the overview counts every row read
    again = invoke("view", str(source), "--max-rows", "100", "-o", str(tmp_path / "b.html"))
    assert again.exit_code == 0
    assert embedded((tmp_path / "b.html").read_bytes())["cols"]["line"] == lines  # the same sample every time


def test_the_ledger_rejections_are_embedded_unless_the_item_was_written_later(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "run.jsonl", sample_rows(4))
    write_ledger(
        source,
        [
            {"item": 9, "id": "lost-9", "cause": "context_limit", "error": "too long"},
            {"item": 2, "id": "row-00002", "cause": "content_filter", "error": "refused, then retried and written"},
        ],
    )
    result = invoke("view", str(source))
    assert "1 rejected items from the ledger" in result.stderr
    data = embedded((tmp_path / "run.html").read_bytes())
    assert data["meta"]["ledger"] == "run.ledger.jsonl"
    assert [(r["id"], r["cause"], r["command"]) for r in data["rejected"]] == [("lost-9", "context_limit", "generate")]


def test_exported_files_are_shown_too(tmp_path: Path) -> None:
    rows = sample_rows(4)
    source = write_jsonl(tmp_path / "run.jsonl", rows)
    for fmt in ("messages", "sharegpt"):
        assert invoke("export", str(source), "-f", fmt, "-o", str(tmp_path / f"{fmt}.jsonl")).exit_code == 0
    messages = embedded(_view(tmp_path / "messages.jsonl"))
    assert messages["cols"]["turns"] == [1, 2, 3, 1]
    sharegpt = embedded(_view(tmp_path / "sharegpt.jsonl"))
    assert sharegpt["cols"]["title"][0] == rows[0]["conversations"][0]["content"]


def _view(path: Path) -> bytes:
    result = invoke("view", str(path), "-o", str(path.with_suffix(".html")))
    assert result.exit_code == 0, result.output
    return path.with_suffix(".html").read_bytes()


def test_open_hands_the_written_page_to_the_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    source = write_jsonl(tmp_path / "run.jsonl", sample_rows(2))
    assert invoke("view", str(source), "--open", "-q").exit_code == 0
    assert opened == [(tmp_path / "run.html").resolve().as_uri()]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-", "--open"], "--open needs a file: give -o FILE.html"),
        (["IN", "-o", "IN"], "is the input file; choose another output"),
        (["IN", "--max-rows", "0"], "Invalid value for '--max-rows'"),
        (["missing.jsonl"], "missing.jsonl: cannot read"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", sample_rows(2))
    args = [str(source) if a == "IN" else a for a in args]
    if args[0] == "missing.jsonl":
        args[0] = str(tmp_path / "missing.jsonl")
    result = invoke("view", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_bad_row_names_its_line_and_skip_invalid_counts_it(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        orjson.dumps(sample_rows(1)[0]) + b"\n" + b'{"conversations": "hello"}\n' + b"not json\n" + b"[1]\n"
    )
    result = invoke("view", str(source))
    assert result.exit_code == 1
    assert f"{source}:2: conversations: expected a list of messages, got a string" in result.stderr
    assert not (tmp_path / "in.html").exists()
    skipped = invoke("view", str(source), "--skip-invalid")
    assert skipped.exit_code == 0, skipped.output
    assert "1 rows, 3 skipped (invalid)" in skipped.stderr
    assert embedded((tmp_path / "in.html").read_bytes())["meta"]["skipped"] == 3
