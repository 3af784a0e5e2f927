"""Shared test helpers: configs on disk, running the CLI, reading rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml
from typer.testing import CliRunner

from afterimage_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent


def make_config(tmp_path: Path, **sections: Any) -> Path:
    """Write a small offline config (sections replace or extend the defaults) and return its path."""
    cfg: dict[str, Any] = {
        "respondent": {"model": "offline"},
        "generation": {"num_conversations": 5, "max_turns": 3, "min_turns": 1, "concurrency": 4, "seed": 1},
        "instructions": {"generator": "simple", "options": {"topics": ["python lists", "http caching", "unit tests"]}},
        "personas": ["a student", "an engineer"],
        "modifiers": [{"name": "persona"}],
        "storage": {"type": "jsonl", "path": str(tmp_path / "out.jsonl")},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def invoke(*args: str, input: str | None = None) -> Any:
    """Run the CLI in-process."""
    return CliRunner().invoke(app, list(args), input=input)


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def cli_subprocess(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, **kwargs: Any
) -> subprocess.Popen[bytes]:
    """Start the CLI as a real process (for signals and pipes); stdout and stderr are pipes unless given.

    The child gets Ctrl-C's default handling even when the test run itself was started in the background
    by a non-interactive shell, which makes SIGINT ignored for everything it starts: a SIGINT a test sends
    must act as a user's Ctrl-C does."""
    full_env = {**os.environ, **(env or {})}
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("preexec_fn", _default_sigint)
    return subprocess.Popen([sys.executable, "-m", "afterimage_cli", *args], cwd=cwd, env=full_env, **kwargs)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
