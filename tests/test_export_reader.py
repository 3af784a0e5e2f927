"""Reading rows: bad lines are named by line number, --skip-invalid skips and counts, old rows load."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from afterimage_cli.errors import InputError
from afterimage_cli.export.reader import RowReader
from afterimage_cli.export.rows import row_problem
from tests.test_export_support import invoke_export, read_jsonl, sample_rows, turn, write_jsonl

GOOD = {"conversations": [turn("user", "q"), turn("assistant", "a")]}


def read_all(lines: list[bytes], *, skip_invalid: bool = False) -> tuple[list[dict], RowReader]:
    """Read raw lines with a RowReader named IN."""
    reader = RowReader(io.BytesIO(b"".join(lines)), "IN", skip_invalid=skip_invalid)
    return list(reader), reader


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([1, 2], "expected a JSON object, got an array"),
        ({}, "conversations: expected a non-empty list of turns"),
        ({"conversations": []}, "conversations: expected a non-empty list of turns"),
        ({"conversations": ["hi"]}, "conversations[0]: expected an object with role and content, got a string"),
        (
            {"conversations": [turn("user", "q"), turn("bot", "a")]},
            "conversations[1].role: expected 'user', 'assistant' or 'tool', got 'bot'",
        ),
        (
            {"conversations": [turn("assistant", "a"), turn("user", "q")]},
            "conversations[0].role: expected 'user' (turns alternate user/assistant, starting with user), "
            "got 'assistant'",
        ),
        (
            {"conversations": [turn("user", "q"), turn("assistant", "a"), turn("user", "q2")]},
            "conversations[2]: the last turn is a user turn with no assistant answer",
        ),
        (
            {"conversations": [{"role": "user", "content": None}, turn("assistant", "a")]},
            "conversations[0].content: expected a string, got null",
        ),
        (
            {"conversations": [turn("user", "q"), {"role": "assistant", "content": "a", "reasoning_content": 3}]},
            "conversations[1].reasoning_content: expected a string or null, got a number",
        ),
        ({**GOOD, "final_score": "high"}, "final_score: expected a number or null, got a string"),
        ({**GOOD, "final_score": True}, "final_score: expected a number or null, got a boolean"),
        ({**GOOD, "evaluation": [1]}, "evaluation: expected an object or null, got an array"),
        (
            {**GOOD, "evaluation": {"overall_grade": "great"}},
            "evaluation.overall_grade: expected one of perfect, good, needs_improvement, bad, not_acceptable, "
            "got 'great'",
        ),
        ({**GOOD, "id": {"a": 1}}, "id: expected a string or integer, got an object"),
    ],
)
def test_row_problems_name_the_field(row: object, message: str) -> None:
    assert row_problem(row) == message


def test_rows_of_the_published_afterimage_are_valid() -> None:
    for row in sample_rows():
        assert row_problem(row) is None
    old = {  # afterimage <= 0.18: `context`, int final_score, evaluation entries with `comment`
        "conversations": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        "context": "doc",
        "evaluation": {"relevance": {"comment": "fine", "score": 4}, "overall_grade": "good"},
        "final_score": 1,
    }
    assert row_problem(old) is None


def test_first_bad_line_stops_with_its_line_number() -> None:
    lines = [orjson.dumps(GOOD) + b"\n", b"\n", b"{not json\n", orjson.dumps(GOOD) + b"\n"]
    with pytest.raises(InputError, match=r"^IN:3: not JSON \(") as caught:
        read_all(lines)
    assert "--skip-invalid" in str(caught.value)


def test_skip_invalid_skips_and_counts_and_blank_lines_are_not_rows() -> None:
    bad_role = orjson.dumps({"conversations": [turn("user", "q"), turn("bot", "a")]})
    lines = [
        orjson.dumps(GOOD) + b"\n",
        b"   \n",
        b"{torn",
        b"\n",
        bad_role + b"\n",
        orjson.dumps(GOOD) + b"\r\n",
        b"\n",
    ]
    rows, reader = read_all(lines, skip_invalid=True)
    assert len(rows) == 2
    assert (reader.read, reader.skipped) == (4, 2)
    torn, bad_role_message = reader.skip_examples
    assert torn.startswith("IN:3: not JSON (")
    assert bad_role_message == "IN:4: conversations[1].role: expected 'user', 'assistant' or 'tool', got 'bot'"


def test_cli_reports_the_bad_line_and_exits_1(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [GOOD, GOOD, "nope", GOOD])
    out = tmp_path / "out.jsonl"
    result = invoke_export(str(source), "-f", "sharegpt", "-o", str(out))
    assert result.exit_code == 1
    assert f"{source}:3: not JSON" in result.stderr
    assert not out.exists() and not list(tmp_path.glob("*.partial")), "a failed export leaves no file behind"


def test_cli_skip_invalid_counts_in_the_summary(tmp_path: Path) -> None:
    bad_turn = {"conversations": [turn("user", "q")]}
    source = write_jsonl(tmp_path / "in.jsonl", [GOOD, "nope", bad_turn, GOOD])
    out = tmp_path / "out.jsonl"
    result = invoke_export(str(source), "-f", "sharegpt", "-o", str(out), "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(out)) == 2
    assert "4 rows read, 2 skipped (invalid), 0 filtered; written: sharegpt 2" in result.stderr
    assert f"skipped {source}:3: conversations[0]: the last turn is a user turn" in result.stderr


def test_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke_export(str(tmp_path / "nope.jsonl"), "-f", "sharegpt")
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_a_reader_can_be_given_its_own_row_check() -> None:
    odd = orjson.dumps({"conversations": [turn("assistant", "a")]}) + b"\n"
    with pytest.raises(InputError, match="IN:1: conversations"):
        read_all([odd])
    reader = RowReader(io.BytesIO(odd + b"[]\n"), "IN", skip_invalid=True, check=lambda row: None if row else "empty")
    assert len(list(reader)) == 1 and reader.skip_examples == ["IN:2: empty"]
