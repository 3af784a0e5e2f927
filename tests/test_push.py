"""`afterimage push DIR --repo ORG/NAME` against a local stand-in for the Hub's HTTP API (tests/fakehub.py),
run as a real process with HF_ENDPOINT pointing at it: the real Hub is never reached."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakehub import FakeHub
from tests.helpers import ROOT, invoke
from tests.view_helpers import sample_rows, write_jsonl


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = FakeHub().start()
    try:
        yield server
    finally:
        server.stop()


def push(hub: FakeHub, *args: str, token: str | None = "same", home: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_ENDPOINT"] = hub.url
    env["HF_HOME"] = str(home or Path(os.environ.get("XDG_CACHE_HOME", "/tmp")) / "hf-home")
    if token is not None:
        env["HF_TOKEN"] = hub.token if token == "same" else token
    command = [sys.executable, "-m", "afterimage_cli", "push", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def export_folder(tmp_path: Path, *extra: str) -> Path:
    source = write_jsonl(tmp_path / "run.jsonl", sample_rows(30))
    folder = tmp_path / "dataset"
    result = invoke("export", str(source), "--format", "hf", "-o", str(folder), "-q", *extra)
    assert result.exit_code == 0, result.output
    return folder


def local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_push_creates_the_repo_and_uploads_the_folder_in_one_commit(hub: FakeHub, tmp_path: Path) -> None:
    folder = export_folder(tmp_path, "--split", "0.8", "--shard-rows", "10")
    done = push(hub, str(folder), "--repo", "acme/support-chats")
    assert done.returncode == 0, done.stderr
    assert f"pushed 5 files from {folder} to {hub.url}/datasets/acme/support-chats" in done.stderr
    assert done.stdout == ""
    repo = hub.repos["acme/support-chats"]
    assert repo.private is False
    assert repo.files == local_files(folder)
    assert len(repo.commits) == 1
    again = push(hub, str(folder), "--repo", "acme/support-chats")  # nothing changed: no empty commit
    assert again.returncode == 0, again.stderr
    assert len(repo.commits) == 1
    assert hub.unknown == []
    assert not any("agent-harnesses" in r for r in hub.requests)  # no telemetry from huggingface_hub either


def test_pushing_again_updates_in_one_commit_and_drops_stale_shards(hub: FakeHub, tmp_path: Path) -> None:
    folder = export_folder(tmp_path, "--shard-rows", "10")
    assert push(hub, str(folder), "--repo", "acme/chats").returncode == 0
    before = set(hub.repos["acme/chats"].files)
    export_folder(tmp_path, "--shard-rows", "100", "--min-grade", "good")
    done = push(hub, str(folder), "--repo", "acme/chats")
    assert done.returncode == 0, done.stderr
    repo = hub.repos["acme/chats"]
    assert repo.files == local_files(folder)  # the three old shards are gone, the new one is there
    second = repo.commits[1]
    assert len(repo.commits) == 2
    assert set(second.deleted) == before - {"README.md", "data/train-00000-of-00001.parquet"}
    assert sorted(second.added) == ["README.md", "data/train-00000-of-00001.parquet"]


def test_private_creates_a_private_repo(hub: FakeHub, tmp_path: Path) -> None:
    folder = export_folder(tmp_path)
    assert push(hub, str(folder), "--repo", "acme/secret", "--private").returncode == 0
    assert hub.repos["acme/secret"].private is True


def test_no_token_no_request(hub: FakeHub, tmp_path: Path) -> None:
    folder = export_folder(tmp_path)
    done = push(hub, str(folder), "--repo", "acme/chats", token=None)
    assert done.returncode == 2
    assert "set HF_TOKEN to a Hugging Face token with write access" in done.stderr
    assert hub.requests == []


def test_a_refused_token_or_commit_is_one_line_and_exit_1(hub: FakeHub, tmp_path: Path) -> None:
    folder = export_folder(tmp_path)
    refused = push(hub, str(folder), "--repo", "acme/chats", token="hf_wrong")
    assert refused.returncode == 1
    assert f"error: push to {hub.url} (acme/chats) failed: 401" in refused.stderr
    assert "Traceback" not in refused.stderr
    hub.fail_commits_with = 403
    failed = push(hub, str(folder), "--repo", "acme/chats")
    assert failed.returncode == 1 and "failed: 403" in failed.stderr
    assert hub.repos["acme/chats"].files == {}


def test_the_hub_validates_the_card(hub: FakeHub, tmp_path: Path) -> None:
    folder = export_folder(tmp_path)
    readme = folder / "README.md"
    readme.write_text(readme.read_text().replace("- n<1K", "- tiny"))
    done = push(hub, str(folder), "--repo", "acme/chats")
    assert done.returncode == 1
    assert "Invalid metadata in README.md" in done.stderr and "'tiny'" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["FOLDER", "--repo", "no-slash"], "--repo 'no-slash': give ORG/NAME"),
        (["EMPTY", "--repo", "acme/x"], "not a dataset folder (README.md and data/*.parquet)"),
        (["MISSING", "--repo", "acme/x"], "no such folder"),
    ],
)
def test_push_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty").mkdir()
    folder = export_folder(tmp_path)
    paths = {"FOLDER": str(folder), "EMPTY": str(tmp_path / "empty"), "MISSING": str(tmp_path / "missing")}
    result = invoke("push", *[paths.get(a, a) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
