"""The hygiene checks on files already written (ours or anyone's): `evaluate` reports them per check and
`export --drop-unclean` leaves out the rows that fail them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from .evaluate_helpers import conversation_row, published_row, write_rows
from .helpers import invoke, read_rows


def dialog(*texts: str, **metadata: Any) -> dict[str, Any]:
    roles = ["user", "assistant"] * len(texts)
    turns = [{"role": role, "content": text} for role, text in zip(roles, texts, strict=False)]
    return {"conversations": turns, "metadata": dict(metadata)}


QUESTION = "How do I keep a Postgres table small when rows are deleted all day?"
UNCLEAN = [
    dialog(QUESTION, QUESTION),  # echo
    dialog(QUESTION, "<|im_start|>assistant\nRun VACUUM regularly and let autovacuum keep up."),  # leak
    dialog(
        QUESTION,
        "Autovacuum reclaims dead rows; tune its scale factor for busy tables.",
        "Autovacuum reclaims dead rows; tune its scale factor for busy tables.",  # copy
        "Lower autovacuum_vacuum_scale_factor to 0.01 on that table.",
    ),
    dialog(QUESTION, "Partition the table by day and drop old partitions instead of deleting", cut_off_turns=[1]),
]


def rows_file(tmp_path: Path) -> Path:
    clean = [conversation_row(i) for i in range(6)] + [published_row(i) for i in range(6, 9)]
    return write_rows(tmp_path / "rows.jsonl", [*clean, *UNCLEAN])


def test_evaluate_reports_each_check_on_any_file(tmp_path: Path) -> None:
    source = rows_file(tmp_path)
    out = tmp_path / "evaluated.jsonl"
    result = invoke("evaluate", str(source), "--no-judge", "-o", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    hygiene = orjson.loads(result.stdout)["hygiene"]
    assert hygiene == {
        "unclean_rows": 4,
        "turns_by_check": {"copy": 1, "cut": 1, "echo": 1, "leak": 1},
        "rows_by_check": {"copy": 1, "cut": 1, "echo": 1, "leak": 1},
    }
    rows = read_rows(out)
    assert [r["metadata"]["metrics"]["hygiene"] for r in rows[-4:]] == [
        {"echo": [1]},
        {"leak": [1]},
        {"copy": [2]},
        {"cut": [1]},
    ]
    assert all(r["metadata"]["metrics"]["hygiene"] == {} for r in rows[:-4])
    text = invoke("evaluate", str(source), "--no-judge", "-o", str(tmp_path / "again.jsonl"))
    assert "turn hygiene" in text.stderr and "4 rows with unclean turns" in text.stderr
    report = tmp_path / "report.html"
    html = invoke("evaluate", str(source), "--no-judge", "-o", str(tmp_path / "r.jsonl"), "--report", str(report), "-q")
    assert html.exit_code == 0 and "Turn hygiene" in report.read_text()


def test_evaluate_follows_the_configs_hygiene_section(tmp_path: Path) -> None:
    source = rows_file(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"respondent": {"model": "offline"}, "hygiene": {"checks": {"echo": False}}}))
    out = tmp_path / "evaluated.jsonl"
    result = invoke("evaluate", str(source), "--no-judge", "-o", str(out), "--json", "--config", str(config))
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout)["hygiene"]["turns_by_check"] == {"copy": 1, "cut": 1, "leak": 1}
    # Other checks make other metrics: resuming that output with the defaults is refused, not mixed.
    mixed = invoke("evaluate", str(source), "--no-judge", "-o", str(out))
    assert mixed.exit_code == 2 and "--overwrite" in mixed.stderr


def test_export_drop_unclean_leaves_out_rows_that_fail_a_check(tmp_path: Path) -> None:
    source = rows_file(tmp_path)
    out = tmp_path / "train.jsonl"
    result = invoke("export", str(source), "--format", "messages", "-o", str(out), "--drop-unclean")
    assert result.exit_code == 0, result.stderr
    assert len(read_rows(out)) == 9 and "4 filtered" in result.stderr
    everything = invoke("export", str(source), "--format", "messages", "-o", str(tmp_path / "all.jsonl"))
    assert everything.exit_code == 0 and len(read_rows(tmp_path / "all.jsonl")) == 13
