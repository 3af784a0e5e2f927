from __future__ import annotations

import socket
import subprocess
import sys

import orjson

from .helpers import ROOT, invoke, make_config


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_validate_ok_and_schema(tmp_path) -> None:
    result = invoke("validate", str(make_config(tmp_path)))
    assert result.exit_code == 0 and "ok" in result.stderr
    schema = orjson.loads(invoke("schema").stdout)
    assert "respondent" in schema["properties"] and schema["additionalProperties"] is False


def test_validate_reports_config_error_with_exit_2(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("respondent:\n  model: offline\n  temprature: 1\n")
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert f"{path}:3: unknown key 'respondent.temprature' (did you mean 'temperature'?)" in one_line_error(result)


def test_generate_missing_config_file(tmp_path) -> None:
    result = invoke("generate", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2 and "config file not found" in one_line_error(result)


def test_unknown_provider_lists_known(tmp_path) -> None:
    cfg = make_config(tmp_path, respondent={"model": "x/y", "provider": "litelm"})
    result = invoke("generate", str(cfg), "-q")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "unknown providers 'litelm'" in line and "did you mean 'litellm'" in line and "offline" in line


def test_unknown_storage_and_generator(tmp_path) -> None:
    result = invoke("validate", str(make_config(tmp_path, storage={"type": "parquet"})))
    assert result.exit_code == 2 and "unknown storage 'parquet'" in one_line_error(result)
    result = invoke("validate", str(make_config(tmp_path, instructions={"generator": "simpel"})))
    assert result.exit_code == 2 and "did you mean 'simple'" in one_line_error(result)


def test_missing_key_says_what_to_set(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = invoke("generate", str(make_config(tmp_path)), "--model", "openai/gpt-4o-mini", "-q")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "OPENAI_API_KEY is not set" in line and "respondent" in line
    assert not (tmp_path / "out.jsonl").exists()


def test_custom_key_variable(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MY_TEAM_KEY", raising=False)
    cfg = make_config(tmp_path, respondent={"model": "anthropic/claude-3-5-haiku-latest", "api_key_env": "MY_TEAM_KEY"})
    result = invoke("validate", str(cfg))
    assert result.exit_code == 2 and "MY_TEAM_KEY is not set" in one_line_error(result)


def test_model_without_provider_prefix(tmp_path) -> None:
    result = invoke("validate", str(make_config(tmp_path, respondent={"model": "llama3"})))
    assert result.exit_code == 2 and "'provider/model'" in one_line_error(result)


def test_api_base_needs_a_served_model(tmp_path) -> None:
    result = invoke("generate", str(make_config(tmp_path)), "--api-base", "http://127.0.0.1:9/v1")
    assert result.exit_code == 2 and "--model" in one_line_error(result)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_fast_with_exit_1(tmp_path) -> None:
    port = _free_port()  # nothing listens there: connections are refused
    cfg = make_config(tmp_path, retry={"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.02})
    result = invoke(
        "generate", str(cfg), "-n", "3", "--model", "fake", "--api-base", f"http://127.0.0.1:{port}/v1", "-q"
    )
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "connection" in line.lower() or "failed" in line.lower()


def test_debug_shows_traceback(tmp_path) -> None:
    result = invoke("generate", str(tmp_path / "missing.yaml"), "--debug")
    assert result.exit_code == 2 and "Traceback" in result.stderr


def test_dry_run_calls_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    result = invoke("generate", str(make_config(tmp_path)), "--model", "openai/gpt-4o-mini", "-n", "50", "--dry-run")
    assert result.exit_code == 0
    assert "# resolved config" in result.stdout and "estimate:" in result.stdout and "item 0:" in result.stdout
    assert not (tmp_path / "out.jsonl").exists()
    report = orjson.loads(invoke("generate", str(make_config(tmp_path)), "-n", "50", "--dry-run", "--json").stdout)
    assert report["estimate"]["conversations"] == 50 and report["estimate"]["llm_calls"] > 50


def test_help_and_validate_do_not_import_heavy_libraries(tmp_path) -> None:
    code = (
        "import sys\n"
        "from afterimage_cli.cli import app\n"
        "from typer.testing import CliRunner\n"
        f"r = CliRunner().invoke(app, ['validate', {str(make_config(tmp_path))!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "CliRunner().invoke(app, ['--help'])\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('litellm', 'qdrant_client', 'openai')]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bad_flag_value_names_the_flag(tmp_path) -> None:
    result = invoke("generate", str(make_config(tmp_path)), "--model", "m", "--api-base", "localhost:8000/v1")
    assert result.exit_code == 2
    assert one_line_error(result).startswith("error: --api-base made the config invalid: respondent.api_base:")


def test_error_text_is_printed_as_is_not_as_markup(tmp_path) -> None:
    """A message holding '[old]' keeps it, and one holding '[/]' does not crash the error handler."""
    result = invoke("generate", str(tmp_path / "run[old].yaml"))
    assert result.exit_code == 2
    assert "run[old].yaml: config file not found" in one_line_error(result)
    result = invoke("generate", str(tmp_path / "a[b" / "c[/]d.yaml"))
    assert result.exit_code == 2
    assert "a[b/c[/]d.yaml: config file not found" in one_line_error(result)


def test_validate_prints_a_bracketed_path_as_is(tmp_path) -> None:
    config = tmp_path / "cfg[v2].yaml"
    config.write_text(make_config(tmp_path).read_text())
    result = invoke("validate", str(config))
    assert result.exit_code == 0 and f"{config}: ok" in result.stderr
