"""`afterimage push DIR --repo ORG/NAME`: upload a `--format hf` export folder to the Hugging Face Hub.

The only command that talks to the Hub, and only when run: the token comes from HF_TOKEN (never a flag,
so it stays out of shell history), the Hub from HF_ENDPOINT (default https://huggingface.co). The
repo is created when missing; each push is one commit holding the card and every shard, and removes
the shards of an earlier push that the folder no longer has. huggingface_hub loads only here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import HubError, MissingCredentialsError, UsageError

DEFAULT_ENDPOINT = "https://huggingface.co"
TOKEN_VARIABLE = "HF_TOKEN"
UPLOADED = ["README.md", "data/*.parquet"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


@dataclass(frozen=True)
class PushResult:
    url: str
    """The dataset's page."""
    commit_url: str
    files: int


def check_folder(directory: Path) -> list[Path]:
    """The files a push uploads; `UsageError` unless DIR is what `export --format hf` writes."""
    readme = directory / "README.md"
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such folder; write one with: afterimage export INPUT --format hf -o DIR")
    shards = sorted((directory / "data").glob("*.parquet"))
    if not readme.is_file() or not shards:
        raise UsageError(
            f"{directory}: not a dataset folder (README.md and data/*.parquet); "
            "write one with: afterimage export INPUT --format hf -o DIR"
        )
    text = readme.read_text(encoding="utf-8")
    header = yaml.safe_load(text[4:].split("\n---\n", 1)[0]) if text.startswith("---\n") else None
    if not isinstance(header, dict) or "configs" not in header:
        raise UsageError(f"{readme}: no YAML header with `configs`; re-export the folder with --format hf")
    return [readme, *shards]


def push_folder(directory: Path, repo: str, *, private: bool = False, api: Any = None) -> PushResult:
    """Create the dataset repo if needed and commit the folder to it. `api` replaces huggingface_hub's HfApi."""
    if not _REPO_ID.match(repo):
        raise UsageError(f"--repo {repo!r}: give ORG/NAME (your user name or an organisation, then the dataset)")
    files = check_folder(directory)
    token = os.environ.get(TOKEN_VARIABLE)
    if not token:
        raise MissingCredentialsError(
            f"set {TOKEN_VARIABLE} to a Hugging Face token with write access (huggingface.co/settings/tokens); "
            "push reads it from the environment only"
        )
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
    if api is None:
        # Set before huggingface_hub loads: it would otherwise fetch an "agent harness" list from the Hub and
        # describe this machine in its user agent. afterimage sends no telemetry.
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        from huggingface_hub import HfApi

        api = HfApi(endpoint=endpoint, token=token)
    try:
        # Visibility is chosen when the repo is created; an existing repo keeps its own.
        api.create_repo(repo, repo_type="dataset", private=True if private else None, exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(directory),
            repo_id=repo,
            repo_type="dataset",
            allow_patterns=UPLOADED,
            delete_patterns=["data/*.parquet"],
            commit_message=f"afterimage push: {directory.resolve().name}",
        )
    except Exception as exc:  # huggingface_hub raises its HTTP errors, httpx's, and ValueError for a bad card
        raise HubError(f"push to {endpoint} ({repo}) failed: {_hub_message(exc)}") from exc
    return PushResult(f"{endpoint}/datasets/{repo}", str(getattr(commit, "commit_url", commit)), len(files))


def _hub_message(exc: Exception) -> str:
    """The Hub's answer in one line (its errors carry the status and the server's message)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    text = " ".join(str(exc).split())
    first = text.split(" (Request ID")[0]
    return f"{status}: {first}" if status is not None and not first.startswith(str(status)) else first
