"""Running a real llama.cpp server and the afterimage CLI against it, for the tests in tests/real."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[2]
# A run on a busy 2-core machine can be slow; this only keeps a hung run from hanging the suite.
CLI_TIMEOUT_S = 1200
# Why a dialog ended (metadata.ended_by).
ENDED_BY = {"end_token", "max_turns", "context_limit", "hygiene"}


@dataclass
class LlamaServer:
    """A llama.cpp server started by `tests.real.llamaserver` in its own process."""

    url: str  # the OpenAI-compatible base URL, ending in /v1
    model: str  # the alias it serves
    ctx: int  # context tokens per slot
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, log: Path, *, ctx: int, parallel: int) -> LlamaServer:
        args = ["--port", "0", "--ctx", str(ctx), "--parallel", str(parallel)]
        with log.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.real.llamaserver", *args],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        assert process.stdout is not None
        # The launcher prints READY once /health answers, or exits (its own wait is bounded).
        line = process.stdout.readline().decode().split()
        if not line or line[0] != "READY":
            process.kill()
            process.wait()
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"llama.cpp server did not start (exit {process.returncode}):\n{tail}")
        return cls(url=line[1], model=line[2].removeprefix("model="), ctx=ctx, process=process, log=log)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def get(self, path: str) -> Any:
        """GET a JSON endpoint; `path` is relative to the server root (`/health`, `/v1/models`)."""
        with urllib.request.urlopen(self.url.removesuffix("/v1") + path, timeout=10) as response:
            return orjson.loads(response.read())

    def model_block(self, **settings: Any) -> dict[str, Any]:
        """A config model block for this server. repeat_penalty keeps a 135M model from looping until
        max_tokens (measured: 2 of 5 persona calls ran to 512 tokens without it, 0 of 5 with 1.3)."""
        return {
            "model": self.model,
            "api_base": self.url,
            "timeout": 600,
            "params": {"repeat_penalty": 1.3},
            **settings,
        }


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def afterimage(*args: str | int | Path, cwd: Path) -> Run:
    """Run the CLI as a real process in `cwd` (relative paths in configs resolve there), with a response
    cache of that folder's own (module-scoped runs start before the per-test cache fixture)."""
    done = subprocess.run(
        [sys.executable, "-m", "afterimage_cli", *map(str, args)],
        cwd=cwd,
        env={**os.environ, "XDG_CACHE_HOME": str(cwd / ".cache")},
        capture_output=True,
        timeout=CLI_TIMEOUT_S,
    )
    return Run(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def describe(run: Run) -> str:
    """What a failed assertion should show: the exit code and the end of stderr."""
    return f"exit {run.returncode}\n--- stderr (tail) ---\n{run.stderr[-3000:]}"


def dialog_config(tmp_path: Path, llama: LlamaServer, openings: list[str], respondent: Any = None, **gen: Any) -> Path:
    """Dialogs that open with one of `openings` (used as written, no model call), on `llama`'s model
    for both sides; `gen` overrides the generation section, `respondent` the model block."""
    generation = {"num_conversations": 3, "max_turns": 1, "min_turns": 1, "concurrency": 1, "seed": 7, **gen}
    return write_yaml(
        tmp_path / "dialog.yaml",
        {
            "respondent": llama.model_block(**(respondent or {})),
            "generation": generation,
            "instructions": {"generator": "simple", "options": {"instructions": openings}},
            "storage": {"type": "jsonl", "path": "rows.jsonl"},
        },
    )


def ledger(tmp_path: Path, output: str = "rows.jsonl") -> list[dict[str, Any]]:
    """The run ledger beside an output (`rows.jsonl` → `rows.ledger.jsonl`); [] when there is none."""
    path = tmp_path / (Path(output).stem + ".ledger.jsonl")
    return read_jsonl(path) if path.exists() else []


def rejections(tmp_path: Path, output: str = "rows.jsonl") -> list[dict[str, Any]]:
    return [record for record in ledger(tmp_path, output) if record.get("event") == "rejected"]
