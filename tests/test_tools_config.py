"""The `tools:` section: strict validation with errors naming the field (or the file and entry), definitions from a
file, the result sources' requirements, and the run fingerprint."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml

from afterimage_cli.config_loader import parse_config
from afterimage_cli.engine.fingerprint import grounded_fingerprint, run_fingerprint
from afterimage_cli.errors import ConfigError
from afterimage_cli.resources import Resources

from .helpers import invoke
from .tools_helpers import FIVE_TOOLS

BASE = {"respondent": {"model": "offline"}}
WEATHER = FIVE_TOOLS[0]


def parse(tools: object, **more: object) -> object:
    return parse_config(yaml.safe_dump({**BASE, "tools": tools, **more}), "c.yaml", env={})


def error_of(tools: object, **more: object) -> str:
    with pytest.raises(ConfigError) as info:
        parse(tools, **more)
    return str(info.value)


def test_a_bare_list_is_the_definitions_and_defaults_apply() -> None:
    cfg = parse([WEATHER])
    assert cfg.tools is not None and [t.name for t in cfg.tools.definitions] == ["get_weather"]
    assert (cfg.tools.results, cfg.tools.on_invalid_call, cfg.tools.max_calls_per_turn) == (
        "simulate",
        "error_result",
        5,
    )
    assert cfg.tools.definitions[0].openai() == {
        "type": "function",
        "function": {"name": "get_weather", "description": WEATHER["description"], "parameters": WEATHER["parameters"]},
    }


@pytest.mark.parametrize(
    "tools,message",
    [
        ({"results": "simulate"}, "set exactly one of tools.definitions, tools.file or tools.from_mcp (got none)"),
        (
            {"definitions": [WEATHER], "file": "t.json"},
            "set exactly one of tools.definitions, tools.file or tools.from_mcp (got definitions and file)",
        ),
        ([WEATHER, WEATHER], "the name(s) get_weather are used more than once"),
        ([{"name": "get weather"}], "tools.definitions[0].name: 'get weather' is not a function name"),
        (
            [{"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "strung"}}}}],
            "tools.definitions[0].parameters: parameters is not a valid JSON Schema at properties/x/type",
        ),
        ([{"name": "f", "parameters": {"type": "string"}}], "parameters must describe an object (type: object)"),
        ([{"name": "f", "returns": {"type": 5}}], "tools.definitions[0].returns: returns is not a valid JSON Schema"),
        ([{"name": "f", "paramters": {}}], "unknown key 'tools.definitions[0].paramters' (did you mean 'parameters'?)"),
        ({"definitions": [WEATHER], "results": "mock"}, "results: mock needs tools.mock"),
        (
            {"definitions": [WEATHER], "results": "mock", "mock": {"other": 1}},
            "tools.mock has no result for get_weather",
        ),
        (
            {"definitions": [WEATHER], "results": "mock", "mock": {"get_weather": {"sky": "grey"}}},
            "tools.mock.get_weather does not fit its tool's returns at (root): 'temperature' is a required property",
        ),
        ({"definitions": [WEATHER], "mock": {"get_weather": "x"}}, "tools.mock is used only by results: mock"),
        (
            {"definitions": [WEATHER], "results": "mock", "mock": {"get_weather": "x"}, "simulator": {"model": "m"}},
            "tools.simulator is used only by results: simulate, not mock",
        ),
        ({"definitions": [WEATHER], "results": "mcp"}, "results: mcp calls the MCP server's tools: set tools.from_mcp"),
        (
            {"definitions": [WEATHER], "results": "python", "python": "mod.func"},
            "needs tools.python: 'module:function'",
        ),
        ({"definitions": [WEATHER], "on_invalid_call": "ignore"}, "tools.on_invalid_call: Input should be"),
        ({"definitions": [WEATHER], "max_calls_per_turn": 0}, "tools.max_calls_per_turn: Input should be greater"),
    ],
)
def test_bad_tools_sections_name_the_field(tools: object, message: str) -> None:
    assert message in error_of(tools)


def test_tools_apply_to_conversations_only() -> None:
    msg = error_of([WEATHER], generation={"kind": "preference"})
    assert "tools: apply to generation.kind: conversation, not 'preference'" in msg


def test_quality_pairs_are_refused_with_tools() -> None:
    msg = error_of([WEATHER], quality={"auto_improve": True, "keep_pairs": True})
    assert "quality.keep_pairs does not apply to runs with tools" in msg


def test_from_mcp_takes_a_command_line() -> None:
    cfg = parse({"from_mcp": "python -m my_server --port 0", "results": "mcp"})
    assert cfg.tools is not None and cfg.tools.from_mcp is not None
    assert (cfg.tools.from_mcp.command, cfg.tools.from_mcp.args) == ("python", ["-m", "my_server", "--port", "0"])


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_tools_file_in_both_shapes(tmp_path, suffix: str) -> None:
    openai_style = {"type": "function", "function": {k: v for k, v in FIVE_TOOLS[1].items()}}
    entries = [WEATHER, openai_style]
    path = tmp_path / f"tools{suffix}"
    path.write_text(json.dumps(entries) if suffix == ".json" else yaml.safe_dump({"tools": entries}))
    cfg = parse({"file": str(path)})
    tools = Resources(cfg).tool_set()
    assert tools.names == ["get_weather", "search_flights"]
    assert tools.by_name["get_weather"].returns == WEATHER["returns"]


@pytest.mark.parametrize(
    "content,message",
    [
        ("[]", "expected a non-empty list of tool definitions"),
        ("[1", "not valid JSON"),
        (
            json.dumps([WEATHER, {"name": "f", "parameters": {"type": "object", "required": "x"}}]),
            "entry 1 ('f'): parameters: Value error, parameters is not a valid JSON Schema at required",
        ),
        (json.dumps([{"name": "f", "argz": {}}]), "entry 0 ('f'): argz: unknown key"),
        (json.dumps(["get_weather"]), "entry 0: expected a tool definition"),
        (json.dumps([WEATHER, WEATHER]), "the tool name(s) get_weather are defined more than once"),
    ],
)
def test_tools_file_errors_name_the_file_and_entry(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "tools.json"
    path.write_text(content)
    cfg = parse({"file": str(path)})
    with pytest.raises(ConfigError) as info:
        Resources(cfg).tool_set()
    assert str(info.value).startswith(f"tools.file: {path}")
    assert message.replace("Value error, ", "") in str(info.value)


def test_validate_reports_a_missing_tools_file_and_mock_gaps(tmp_path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**BASE, "tools": {"file": str(tmp_path / "nope.json")}}))
    result = invoke("validate", str(config))
    assert result.exit_code == 2 and f"tools.file: {tmp_path / 'nope.json'} does not exist" in result.output
    (tmp_path / "t.json").write_text(json.dumps(FIVE_TOOLS[:2]))
    mock = {
        "file": str(tmp_path / "t.json"),
        "results": "mock",
        "mock": {"get_weather": {"temperature": 1, "sky": "x"}},
    }
    config.write_text(yaml.safe_dump({**BASE, "tools": mock}))
    result = invoke("validate", str(config))
    assert result.exit_code == 2 and "tools.mock has no result for search_flights" in result.output


def test_validate_imports_the_python_function(tmp_path, monkeypatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump({**BASE, "tools": {"definitions": [WEATHER], "results": "python", "python": "nomod_x:f"}})
    )
    result = invoke("validate", str(config))
    assert result.exit_code == 2 and "tools.python: cannot import module 'nomod_x'" in result.output


def test_mcp_without_the_package_says_how_to_install(tmp_path, monkeypatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**BASE, "tools": {"from_mcp": "python server.py", "results": "mcp"}}))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mcp" else real(name, *a))
    result = invoke("validate", str(config))
    assert result.exit_code == 2
    assert "tools.from_mcp needs the mcp package: pip install 'afterimage[mcp]'" in result.output


def test_the_tools_generator_needs_tools_and_known_options(tmp_path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**BASE, "instructions": {"generator": "tools"}}))
    assert "the 'tools' instruction generator needs a `tools:` section" in invoke("validate", str(config)).output
    bad = {"generator": "tools", "options": {"tools_per_request": [1, 0]}}
    config.write_text(yaml.safe_dump({**BASE, "tools": [WEATHER], "instructions": bad}))
    assert "tools_per_request must be a whole number >= 1" in invoke("validate", str(config)).output
    bad = {"generator": "tools", "options": {"prompt": "Ask about {tools}."}}
    config.write_text(yaml.safe_dump({**BASE, "tools": [WEATHER], "instructions": bad}))
    assert "instructions.options.prompt must contain {targets}, {persona}" in invoke("validate", str(config)).output


def test_fingerprint_follows_the_tools_and_their_file(tmp_path) -> None:
    plain = parse_config(yaml.safe_dump(BASE), "c.yaml", env={})
    one, other = parse([WEATHER]), parse([FIVE_TOOLS[1]])
    assert len({run_fingerprint(plain), run_fingerprint(one), run_fingerprint(other)}) == 3
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([WEATHER]))
    cfg = parse({"file": str(path)})
    before = grounded_fingerprint(cfg, Resources(cfg), [])
    path.write_text(json.dumps([{**WEATHER, "description": "Weather now"}]))
    assert grounded_fingerprint(cfg, Resources(cfg), []) != before
