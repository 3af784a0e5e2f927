"""A config naming `module:attr` imports that module, but `validate` and `--dry-run` call nothing it names,
and what it names must be a component of the right kind before anything calls it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .helpers import ROOT, invoke, make_config


def _fill(value: Any, marker: Path) -> Any:
    """The value with every "{marker}" replaced by the marker file's path."""
    if isinstance(value, dict):
        return {k: _fill(v, marker) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, marker) for v in value]
    return value.replace("{marker}", str(marker)) if isinstance(value, str) else value


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "name,options",
    [("subprocess:run", {"args": ["touch", "{marker}"]}), ("os:system", {"command": "touch {marker}"})],
)
@pytest.mark.parametrize("command", [["validate"], ["generate", "--dry-run"], ["generate", "-q"]])
def test_a_callable_named_as_a_modifier_is_refused_before_it_runs(tmp_path, name, options, command) -> None:
    marker = tmp_path / "executed"
    filled = _fill(options, marker)
    cfg = make_config(tmp_path, modifiers=[{"name": name, "options": filled}])
    result = invoke(command[0], str(cfg), *command[1:])
    assert result.exit_code == 2
    line = one_line_error(result)
    assert line.startswith(f"error: modifiers[0].name: '{name}' is a ") and "not a class implementing" in line
    assert not marker.exists()
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(
    "section,field",
    [
        ({"storage": {"type": "os:system", "path": "touch {marker}"}}, "storage.type"),
        (
            {"instructions": {"generator": "subprocess:run", "options": {"args": ["touch", "{marker}"]}}},
            "instructions.generator",
        ),
        ({"respondent": {"model": "touch {marker}", "provider": "os:system"}}, "respondent.provider"),
        ({"retriever": {"type": "os:system"}}, "retriever.type"),
        ({"storage": {"type": "collections:OrderedDict"}}, "storage.type"),
    ],
)
def test_every_kind_checks_what_a_dotted_name_is(tmp_path, section, field) -> None:
    marker = tmp_path / "executed"
    cfg = make_config(tmp_path, **_fill(section, marker))
    result = invoke("validate", str(cfg))
    assert result.exit_code == 2
    assert one_line_error(result).startswith(f"error: {field}: ")
    assert not marker.exists()


def _plugin_config(tmp_path, marker):
    return make_config(
        tmp_path,
        documents={"sources": [str(ROOT / "configs" / "corpus")]},
        instructions={"generator": "tests.plugins:MarkingOpenings", "options": {"marker": str(marker)}},
        modifiers=[{"name": "tests.plugins:MarkingModifier", "options": {"marker": str(marker)}}, {"name": "rag"}],
        retriever={"type": "tests.plugins:marking_retriever", "options": {"marker": str(marker)}},
        generation={"num_conversations": 2, "max_turns": 1},
    )


def test_validate_and_dry_run_never_build_plugins_but_the_run_does(tmp_path) -> None:
    marker = tmp_path / "built"
    cfg = _plugin_config(tmp_path, marker)
    result = invoke("validate", str(cfg))
    assert result.exit_code == 0, result.stderr
    result = invoke("generate", str(cfg), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert not marker.exists()
    result = invoke("generate", str(cfg), "-q")
    assert result.exit_code == 0, result.stderr
    assert sorted(set(marker.read_text().split())) == ["instructions", "modifier", "retriever"]


def test_validate_binds_a_plugins_options_without_building_it(tmp_path) -> None:
    marker = tmp_path / "built"
    cfg = make_config(
        tmp_path, modifiers=[{"name": "tests.plugins:MarkingModifier", "options": {"marker": str(marker), "x": 1}}]
    )
    result = invoke("validate", str(cfg))
    assert result.exit_code == 2
    line = one_line_error(result)
    assert line.startswith("error: modifiers[0].options: ") and "'x'" in line
    assert not marker.exists()
