from __future__ import annotations

import orjson
import pytest

from afterimage_cli.config_loader import load_config, parse_config
from afterimage_cli.errors import ConfigError

from .helpers import invoke, make_config

BASE = "respondent:\n  model: offline\n"


def error_of(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml", env=env or {})
    return str(info.value)


def test_minimal_config_has_defaults() -> None:
    cfg = parse_config(BASE, "c.yaml", env={})
    assert cfg.respondent.model == "offline"
    assert cfg.user_model is cfg.respondent
    assert cfg.generation.max_turns == 3
    assert cfg.storage.type == "jsonl"


def test_unknown_key_names_file_line_and_suggests() -> None:
    msg = error_of(BASE + "generation:\n  max_turn: 3\n")
    assert msg == "c.yaml:4: unknown key 'generation.max_turn' (did you mean 'max_turns'?)"


def test_unknown_top_level_key() -> None:
    assert error_of(BASE + "persnas: []\n") == "c.yaml:3: unknown key 'persnas' (did you mean 'personas'?)"


def test_unknown_key_in_list_item() -> None:
    msg = error_of(BASE + "modifiers:\n  - name: persona\n    optoins: {}\n")
    assert msg == "c.yaml:5: unknown key 'modifiers[0].optoins' (did you mean 'options'?)"


def test_type_error_names_dotted_path_and_line() -> None:
    msg = error_of(BASE + "generation:\n  concurrency: many\n")
    assert msg.startswith("c.yaml:4: generation.concurrency: Input should be a valid integer")


def test_cross_field_rule() -> None:
    assert "min_turns (4) is larger than max_turns (2)" in error_of(BASE + "generation: {min_turns: 4, max_turns: 2}\n")


def test_invalid_yaml_gives_line() -> None:
    assert error_of("respondent:\n  model: [offline\n").startswith("c.yaml:")
    assert "invalid YAML" in error_of("respondent:\n  model: [offline\n")


def test_missing_required_field() -> None:
    assert error_of("generation: {}\n") == "c.yaml: respondent: Field required"


def test_not_a_mapping() -> None:
    assert "must be a mapping" in error_of("- a\n- b\n")


def test_env_interpolation_and_default() -> None:
    cfg = parse_config(
        "respondent:\n  model: ${MODEL}\n  api_base: ${BASE:-http://127.0.0.1:9/v1}\n", "c.yaml", env={"MODEL": "m/x"}
    )
    assert cfg.respondent.model == "m/x"
    assert cfg.respondent.api_base == "http://127.0.0.1:9/v1"


def test_env_interpolation_missing_variable() -> None:
    assert "environment variable NOPE is not set" in error_of("respondent:\n  model: ${NOPE}\n")


def test_doubled_dollar_writes_a_literal_placeholder(tmp_path, monkeypatch) -> None:
    """`$${VAR}` in a prompt is the text `${VAR}` (neither substituted nor required), through the CLI."""
    monkeypatch.setenv("PRODUCT", "Afterimage")
    monkeypatch.delenv("TEMPLATE_SLOT", raising=False)
    config = make_config(
        tmp_path, generation={"system_prompt": "You support ${PRODUCT}. Keep $${TEMPLATE_SLOT} and $${PRODUCT} as-is."}
    )
    result = invoke("generate", str(config), "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    prompt = orjson.loads(result.stdout)["config"]["generation"]["system_prompt"]
    assert prompt == "You support Afterimage. Keep ${TEMPLATE_SLOT} and ${PRODUCT} as-is."


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_structured_needs_schema() -> None:
    assert "needs output_schema" in error_of(BASE + "generation: {kind: structured}\n")


def test_quickstart_loads() -> None:
    cfg = load_config("configs/quickstart.yaml")
    assert cfg.respondent.model == "offline"


def test_invalid_output_schema_is_a_config_error() -> None:
    msg = error_of(BASE + "generation:\n  kind: structured\n  output_schema: {type: objekt}\n")
    assert msg.startswith("c.yaml:4: generation: output_schema is not a valid JSON Schema at type")


def test_api_base_must_be_a_url() -> None:
    msg = error_of("respondent:\n  model: m\n  api_base: localhost:8000/v1\n")
    assert msg == "c.yaml:3: respondent.api_base: api_base must be an http:// or https:// URL, got 'localhost:8000/v1'"
