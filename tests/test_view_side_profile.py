"""`view` counts a large file's profile in a second process: the page must not tell the difference."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from afterimage_cli.errors import InputError
from afterimage_cli.export.reader import RowReader
from afterimage_cli.rowshape import view_row_problem
from afterimage_cli.view import catalog as catalog_module
from afterimage_cli.view import side_profile
from afterimage_cli.view.catalog import build_catalog
from afterimage_cli.view.side_profile import SideProfile, count_rows
from tests.view_helpers import sample_rows, write_jsonl


def _catalog(source: Path, *, aside: bool, skip_invalid: bool = False, max_rows: int = 1000) -> catalog_module.Catalog:
    with open(source, "rb") as stream:
        reader = RowReader(stream, str(source), skip_invalid=skip_invalid, check=view_row_problem)
        return build_catalog(reader, str(source), max_rows, count_aside=aside)


@pytest.fixture
def always_aside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count aside whatever the file's size and the machine's cores (the test box may have one)."""
    monkeypatch.setattr(side_profile, "PARALLEL_FROM_BYTES", 0)
    monkeypatch.setattr(side_profile, "_cores", lambda: 2)


def test_the_profile_counted_aside_equals_the_one_counted_inline(
    tmp_path: Path, always_aside: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", sample_rows(40))
    with open(source, "ab") as out:
        out.write(b'{"conversations": "not a list"}\n')  # skipped by both, counted by neither
    inline = _catalog(source, aside=False, skip_invalid=True, max_rows=25)

    def counted_here(*args: object) -> None:
        raise AssertionError("the profile was counted in this process, not aside")

    monkeypatch.setattr(side_profile, "count_rows", counted_here)  # only here: the spawned process imports its own
    aside = _catalog(source, aside=True, skip_invalid=True, max_rows=25)
    assert aside.profile.rows == 40
    assert aside.profile.summary() == inline.profile.summary()
    assert aside.rows == inline.rows and aside.columns == inline.columns


def test_small_files_stdin_and_one_core_are_counted_inline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", sample_rows(3))
    assert not SideProfile(str(source)).active  # far below PARALLEL_FROM_BYTES
    assert not SideProfile("-", min_bytes=0).active
    monkeypatch.setattr(side_profile, "_cores", lambda: 1)
    assert not SideProfile(str(source), min_bytes=0).active


def test_a_file_that_grew_meanwhile_is_counted_to_the_rows_the_catalog_read(tmp_path: Path) -> None:
    # A run still writing the file: the other process may have counted rows the catalog never read.
    rows = sample_rows(12)
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    side = SideProfile(str(source), min_bytes=0)
    if not side.active:
        pytest.skip("one core: nothing is counted aside")
    profile = side.result(9)
    assert profile.rows == 9
    assert profile.summary() == count_rows(str(write_jsonl(tmp_path / "nine.jsonl", rows[:9]))).summary()


def test_a_counting_process_that_dies_is_replaced_by_counting_here(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", sample_rows(5))
    side = SideProfile(str(source), min_bytes=0)
    if not side.active:
        pytest.skip("one core: nothing is counted aside")
    assert side._process is not None
    side._process.kill()
    profile = side.result(5)
    assert profile.rows == 5 and profile.summary() == count_rows(str(source)).summary()


def test_a_bad_row_stops_the_counting_process_too(
    tmp_path: Path, always_aside: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[subprocess.Popen[bytes]] = []

    class Recorded(subprocess.Popen[bytes]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(side_profile.subprocess, "Popen", Recorded)
    source = write_jsonl(tmp_path / "in.jsonl", sample_rows(3))
    with open(source, "ab") as out:
        out.write(orjson.dumps([1]) + b"\n")
    with pytest.raises(InputError, match=r"in\.jsonl:4"):
        _catalog(source, aside=True)
    assert len(started) == 1 and started[0].returncode is not None  # ended and reaped, not left running
