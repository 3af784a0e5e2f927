"""Which rows are written where: score and grade filters, the deterministic train/val split."""

from __future__ import annotations

from pathlib import Path

import pytest

from afterimage_cli.errors import UsageError
from afterimage_cli.export.filters import make_row_filter
from afterimage_cli.export.split import Splitter
from tests.test_export_support import evaluated, invoke_export, read_jsonl, sample_rows, turn, write_jsonl


def first_user_turns(path: Path) -> list[str]:
    """The first human value of each sharegpt record."""
    return [record["conversations"][0]["value"] for record in read_jsonl(path)]


def many_rows(count: int, *, with_ids: bool) -> list[dict]:
    """Distinct single-turn rows, with or without ids."""
    rows = [{"conversations": [turn("user", f"question {i}"), turn("assistant", f"answer {i}")]} for i in range(count)]
    return [{**row, "id": f"id-{i}"} for i, row in enumerate(rows)] if with_ids else rows


# --- filters --------------------------------------------------------------------------------------------


def test_min_score_keeps_rows_at_or_above_it_and_drops_unevaluated_ones() -> None:
    keep = make_row_filter(min_score=0.7)
    assert keep is not None
    assert [keep(row) for row in sample_rows()] == [True, False, False, False, False, True]


def test_min_grade_keeps_that_grade_and_better() -> None:
    keep = make_row_filter(min_grade="good")
    assert keep is not None
    assert [keep(row) for row in sample_rows()] == [True, False, False, False, False, True]
    keep_bad = make_row_filter(min_grade="bad")
    assert keep_bad is not None
    assert [keep_bad(row) for row in sample_rows()] == [True, False, True, False, False, True]


def test_both_minimums_must_hold() -> None:
    keep = make_row_filter(min_score=0.5, min_grade="perfect")
    assert keep is not None
    rows = [{"conversations": [], **evaluated(0.9, "good")}, {"conversations": [], **evaluated(0.4, "perfect")}]
    assert [keep(row) for row in rows] == [False, False]
    assert keep({"conversations": [], **evaluated(0.5, "perfect")})


def test_no_minimum_means_no_filter() -> None:
    assert make_row_filter() is None


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"min_score": 5.0}, "outside 0..1"), ({"min_grade": "goood"}, "did you mean 'good'")]
)
def test_bad_minimums_are_usage_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make_row_filter(**kwargs)


def test_cli_filters_and_counts(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", sample_rows())
    out = tmp_path / "out.jsonl"
    result = invoke_export(str(source), "-f", "sharegpt", "-o", str(out), "--min-score", "0.5", "--min-grade", "good")
    assert result.exit_code == 0, result.output
    assert first_user_turns(out) == ["Explain Python decorators.", "How does HTTP caching work?"]
    assert "6 rows read, 0 skipped (invalid), 4 filtered; written: sharegpt 2" in result.stderr


def test_cli_bad_grade_exits_2(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", sample_rows())
    result = invoke_export(str(source), "-f", "sharegpt", "--min-grade", "excellent")
    assert result.exit_code == 2
    assert "grades from best to worst: perfect, good" in result.stderr


# --- split ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_ids", [True, False])
def test_split_is_deterministic_complete_and_seeded(tmp_path: Path, with_ids: bool) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", many_rows(400, with_ids=with_ids))

    def split(seed: str, name: str) -> tuple[list[str], list[str]]:
        out = tmp_path / name / "data.jsonl"
        result = invoke_export(str(source), "-f", "sharegpt", "-o", str(out), "--split", "0.9", "--seed", seed)
        assert result.exit_code == 0, result.output
        assert "written: sharegpt " in result.stderr and " train / " in result.stderr
        return first_user_turns(out.with_name("data.train.jsonl")), first_user_turns(out.with_name("data.val.jsonl"))

    train, val = split("7", "a")
    assert (train, val) == split("7", "b")
    assert sorted(train + val) == sorted(f"question {i}" for i in range(400))
    assert not set(train) & set(val)
    assert 300 < len(train) < 390  # ~0.9 of 400
    other_train, _ = split("8", "c")
    assert other_train != train


def test_rows_without_ids_split_by_content_so_duplicates_stay_together() -> None:
    splitter = Splitter(0.5, seed=1)
    rows = many_rows(50, with_ids=False)
    duplicate = {**rows[0], "metadata": {"batch": "other"}}
    assert splitter.part_of_row(duplicate) == splitter.part_of_row(rows[0])
    assert {splitter.part_of_row(row) for row in rows} == {"train", "val"}


def test_ids_decide_the_split_not_the_content() -> None:
    splitter = Splitter(0.5, seed=3)
    rows = many_rows(40, with_ids=True)
    renamed = [{**row, "conversations": [turn("user", "same"), turn("assistant", "same")]} for row in rows]
    assert [splitter.part_of_row(r) for r in rows] == [splitter.part_of_row(r) for r in renamed]


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.1])
def test_split_fraction_must_be_between_0_and_1(fraction: float) -> None:
    with pytest.raises(UsageError, match="between 0 and 1"):
        Splitter(fraction)


def test_split_to_stdout_is_a_usage_error(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", sample_rows())
    for extra in ((), ("-o", "-")):
        result = invoke_export(str(source), "-f", "sharegpt", "--split", "0.9", *extra)
        assert result.exit_code == 2
        assert "--split writes two files" in result.stderr


def test_split_of_several_formats_writes_a_pair_per_format(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", many_rows(30, with_ids=True))
    out = tmp_path / "out"
    result = invoke_export(str(source), "-f", "sharegpt", "-f", "chatml", "-o", str(out), "--split", "0.8")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "chatml.train.jsonl",
        "chatml.val.jsonl",
        "sharegpt.train.jsonl",
        "sharegpt.val.jsonl",
    ]
    # The same row is on the same side in every format.
    assert len(read_jsonl(out / "chatml.val.jsonl")) == len(read_jsonl(out / "sharegpt.val.jsonl"))
    for part in ("train", "val"):
        texts = [r["text"] for r in read_jsonl(out / f"chatml.{part}.jsonl")]
        questions = [t.split("\n")[1].removesuffix("<|im_end|>") for t in texts]
        assert questions == first_user_turns(out / f"sharegpt.{part}.jsonl")
