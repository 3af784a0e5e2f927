"""`afterimage export` as a command: stdin/stdout, directories, usage errors, pipes, and what it imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.test_export_support import (
    FORMAT_NAMES,
    PAIR_FORMATS,
    PER_ROW_FORMATS,
    SYSTEM,
    invoke_export,
    preference_rows,
    read_jsonl,
    sample_rows,
    write_jsonl,
)

ROOT = Path(__file__).resolve().parent.parent
AFTERIMAGE = f"{sys.executable} -m afterimage_cli"
ROW = sample_rows()[1]


def jsonl_bytes(rows: list[dict]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def shell(command: str) -> subprocess.CompletedProcess[bytes]:
    """Run a bash pipeline from the repo root; the result's stdout ends with the exit codes of each stage."""
    return subprocess.run(
        ["bash", "-c", command + '; echo "STATUS ${PIPESTATUS[*]}"'],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )


def test_stdin_to_stdout(tmp_path: Path) -> None:
    result = invoke_export("-", "--format", "sharegpt", input=jsonl_bytes([ROW, ROW]))
    assert result.exit_code == 0, result.output
    records = [orjson.loads(line) for line in result.stdout_bytes.splitlines()]
    question, answer = (t["content"] for t in ROW["conversations"])
    assert records == [{"conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}] * 2
    assert result.stderr == "export: 2 rows read, 0 skipped (invalid), 0 filtered; written: sharegpt 2\n"


def test_limit_exports_the_first_n_kept_rows_and_stops_reading(tmp_path: Path) -> None:
    rows = [{**ROW, "id": f"r{i}", "final_score": 0.9 if i % 2 else 0.1} for i in range(10)]
    result = invoke_export("-", "-f", "messages", "--min-score", "0.5", "--limit", "3", input=jsonl_bytes(rows))
    assert result.exit_code == 0, result.output
    assert len(result.stdout_bytes.splitlines()) == 3
    assert result.stderr == "export: 6 rows read, 0 skipped (invalid), 3 filtered; written: messages 3\n"
    result = invoke_export("-", "-f", "sharegpt", "--limit", "2", input=jsonl_bytes(rows))
    assert len(result.stdout_bytes.splitlines()) == 2 and "2 rows read" in result.stderr


def test_explicit_dash_output_and_quiet(tmp_path: Path) -> None:
    result = invoke_export("-", "-f", "chatml", "-o", "-", "-q", input=jsonl_bytes([ROW]))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith('{"text":"<|im_start|>user\\n')
    assert result.stderr == ""


def test_several_formats_write_one_file_each_into_a_directory(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", sample_rows() + preference_rows())
    out = tmp_path / "new" / "dir"
    result = invoke_export(str(source), *[arg for name in FORMAT_NAMES for arg in ("-f", name)], "-o", str(out))
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{name}.jsonl" for name in FORMAT_NAMES] + ["dataset_info.json"])
    assert all(len(read_jsonl(out / f"{name}.jsonl")) == 11 for name in PER_ROW_FORMATS)
    assert all(len(read_jsonl(out / f"{name}.jsonl")) == 5 for name in PAIR_FORMATS if name != "kto")
    assert "dpo 5" in result.stderr and "kto 10" in result.stderr
    assert "dpo: 7 rows without a preference pair skipped" in result.stderr


def test_one_format_into_an_existing_directory(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [ROW])
    out = tmp_path / "out"
    out.mkdir()
    result = invoke_export(str(source), "-f", "messages", "-o", str(out), "--output-format", "parquet")
    assert result.exit_code == 0, result.output
    assert (out / "messages.parquet").read_bytes()[:4] == b"PAR1"


def test_parquet_to_stdout(tmp_path: Path) -> None:
    result = invoke_export("-", "-f", "alpaca", "--output-format", "parquet", input=jsonl_bytes([ROW]))
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes[:4] == b"PAR1" and result.stdout_bytes[-4:] == b"PAR1"


def test_system_prompt_from_a_file(tmp_path: Path) -> None:
    prompt = tmp_path / "system.txt"
    prompt.write_text(f"{SYSTEM}\nLine two.\n")
    result = invoke_export("-", "-f", "messages", "--system-prompt", f"@{prompt}", input=jsonl_bytes([ROW]))
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["messages"][0] == {"role": "system", "content": f"{SYSTEM}\nLine two."}


def test_list_formats_names_every_format() -> None:
    result = invoke_export("--list-formats")
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert listed == [*FORMAT_NAMES, "hf"]  # the row formats, then the Hugging Face folder
    assert "(alias of messages)" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-", "-f", "sharegpt", "-f", "messages"], "several --format values write one file each: give -o DIR"),
        (["-", "-f", "sharegpt", "-f", "messages", "-o", "-"], "give -o DIR"),
        (["-", "-f", "sharegtp"], "unknown --format 'sharegtp' (did you mean 'sharegpt'?)"),
        (["-"], "give at least one --format"),
        ([], "missing INPUT"),
        (["-", "-f", "sharegpt", "--output-format", "csv"], "--output-format 'csv': choose one of jsonl, parquet"),
        (["-", "-f", "sharegpt", "--system-prompt", "@/no/such/file"], "cannot read /no/such/file"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = invoke_export(*args, input=jsonl_bytes([ROW]))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stdout == ""


def test_several_formats_into_an_existing_file_is_a_usage_error(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [ROW])
    taken = tmp_path / "file.jsonl"
    taken.write_text("keep me")
    result = invoke_export(str(source), "-f", "sharegpt", "-f", "alpaca", "-o", str(taken))
    assert result.exit_code == 2
    assert "is a file" in result.stderr and taken.read_text() == "keep me"


def test_output_onto_the_input_is_refused(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [ROW])
    before = source.read_bytes()
    result = invoke_export(str(source), "-f", "sharegpt", "-o", str(tmp_path / "." / "in.jsonl"))
    assert result.exit_code == 2
    assert "is the input file" in result.stderr and source.read_bytes() == before


# --- real processes ---------------------------------------------------------------------------------------


def test_broken_pipe_exits_0_quietly(tmp_path: Path) -> None:
    # 20k rows (~2 MB) cannot fit in a pipe's buffer, so `head -1` really closes the pipe under export.
    source = write_jsonl(tmp_path / "in.jsonl", [ROW] * 20_000)
    done = shell(f"cat {source} | {AFTERIMAGE} export - --format sharegpt | head -1")
    first, status = done.stdout.decode().splitlines()
    assert orjson.loads(first)["conversations"][0] == {"from": "human", "value": ROW["conversations"][0]["content"]}
    assert status.split()[2:] == ["0", "0"], status  # export and head; cat dies of SIGPIPE (141)
    assert done.stderr == b""


def test_printf_pipe_into_head(tmp_path: Path) -> None:
    line = orjson.dumps(ROW).decode().replace("'", "'\\''")
    done = shell(f"printf '%s\\n' '{line}' '{line}' | {AFTERIMAGE} export - --format sharegpt --quiet | head -1")
    first, status = done.stdout.decode().splitlines()
    assert orjson.loads(first)["conversations"][1]["from"] == "gpt"
    assert status == "STATUS 0 0 0"
    assert done.stderr == b""


def test_generate_pipes_into_export(tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    done = shell(
        f"{AFTERIMAGE} generate configs/quickstart.yaml -o - 2>/dev/null"
        f" | {AFTERIMAGE} export - --format sharegpt > {out}"
    )
    assert done.stdout.decode().split() == ["STATUS", "0", "0"], done.stderr.decode()
    records = read_jsonl(out)
    assert len(records) == 20
    assert all(r["conversations"][0]["from"] == "human" and len(r["conversations"]) >= 4 for r in records)
    assert b"20 rows read" in done.stderr


def test_export_does_not_import_llm_or_vector_libraries(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", sample_rows() + preference_rows())
    formats = [arg for name in FORMAT_NAMES for arg in ("-f", name)]
    code = f"""
import sys
from typer.testing import CliRunner
from afterimage_cli.cli import app
result = CliRunner().invoke(app, ["export", {str(source)!r}, *{formats!r}, "-o", {str(tmp_path / "out")!r}])
assert result.exit_code == 0, result.output
heavy = sorted(m for m in ("litellm", "qdrant_client", "openai", "pyarrow", "datasets", "pandas") if m in sys.modules)
print(heavy)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "[]"
