"""ToolSet: the tools of a run, from the config, a file (JSON or YAML) or an MCP server's list_tools.

A file holds a list of definitions (or `{"tools": [...]}`); an entry is afterimage's own shape
`{name, description, parameters, returns}` or OpenAI's `{"type": "function", "function": {...}}`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from ..config_tools import ToolDefinition, ToolsConfig, check_mock
from ..errors import ConfigError


class ToolSet:
    """The run's tools by name, and the definitions the respondent is offered."""

    def __init__(self, tools: Sequence[ToolDefinition]) -> None:
        if not tools:
            raise ConfigError("tools: no tools are defined")
        self.tools = list(tools)
        self.by_name = {tool.name: tool for tool in self.tools}
        self.names = [tool.name for tool in self.tools]

    def openai(self) -> list[dict[str, Any]]:
        """The definitions in the chat APIs' shape, as the rows' top-level `tools` holds them."""
        return [tool.openai() for tool in self.tools]

    def fingerprint(self) -> str:
        """A hash of the definitions, so editing a tools file (or an MCP server's tools) is a new run."""
        data = [tool.model_dump(mode="json") for tool in self.tools]
        return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def describe(self, names: Sequence[str] | None = None) -> str:
        """One line per tool (`name(arg, …): description`), for prompts."""
        lines = []
        for tool in self.tools if names is None else [self.by_name[n] for n in names]:
            args = ", ".join(tool.parameters.get("properties", {}))
            lines.append(f"- {tool.name}({args}): {tool.description or 'no description'}")
        return "\n".join(lines)


def _entry(raw: Any, where: str) -> ToolDefinition:
    """One definition from a file entry (afterimage's shape or OpenAI's)."""
    if isinstance(raw, dict) and raw.get("type") == "function" and isinstance(raw.get("function"), dict):
        raw = {**raw["function"], **({"returns": raw["returns"]} if "returns" in raw else {})}
        raw.pop("strict", None)  # OpenAI's strict-mode flag: afterimage validates arguments itself
    name = raw.get("name") if isinstance(raw, dict) else None
    label = f"{where} ({name!r})" if isinstance(name, str) else where
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: expected a tool definition (an object with name, description, parameters)")
    try:
        return ToolDefinition.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(entry)"
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key (a definition has name, description, parameters, returns)"
        raise ConfigError(f"{label}: {field}: {message}") from None


def load_tools_file(path: str | Path, field: str = "tools.file") -> list[ToolDefinition]:
    """The definitions a JSON or YAML file holds; ConfigError naming the file and the entry otherwise."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{field}: {p} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {p}: {exc.strerror}") from None
    try:
        data = orjson.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if p.suffix.lower() == ".json" else "YAML"
        raise ConfigError(f"{field}: {p}: not valid {kind}: {exc}") from None
    entries = data.get("tools") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{field}: {p}: expected a non-empty list of tool definitions, or {{'tools': [...]}}")
    tools = [_entry(raw, f"{field}: {p}: entry {number}") for number, raw in enumerate(entries)]
    names = [tool.name for tool in tools]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"{field}: {p}: the tool name(s) {', '.join(twice)} are defined more than once")
    return tools


def checked_tools(cfg: ToolsConfig, tools: Sequence[ToolDefinition], source: str) -> ToolSet:
    """The tool set, once the results it needs (mock results for each) are known to be there."""
    if cfg.results == "mock":
        try:
            check_mock(cfg.mock, list(tools))
        except ValueError as exc:
            raise ConfigError(f"{exc} (the tools come from {source})") from None
    return ToolSet(tools)


def configured_tools(cfg: ToolsConfig) -> ToolSet | None:
    """The tools known without starting anything (inline, or from the file); None for an MCP server's."""
    if cfg.definitions:
        return ToolSet(cfg.definitions)
    if cfg.file:
        return checked_tools(cfg, load_tools_file(cfg.file), f"tools.file {cfg.file}")
    return None
