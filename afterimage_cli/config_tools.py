"""The `tools:` section: the functions the respondent may call, where their results come from, and how a call
the schema refuses is handled (the run itself is in tools/ and generators/tool_use.py)."""

from __future__ import annotations

import re
import shlex
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .config_model import ModelConfig, _Strict

# OpenAI's rule for function names (Anthropic's and Gemini's are the same or looser).
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ResultSource = Literal["simulate", "mock", "python", "mcp"]


def schema_problem(schema: Any) -> str | None:
    """What is wrong with a JSON Schema (None when it is valid), naming where in it."""
    import jsonschema  # a core dependency, imported only by configs that have schemas

    if not isinstance(schema, dict):
        return f"must be a JSON Schema object, got {type(schema).__name__}"
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return f"is not a valid JSON Schema at {where}: {exc.message}"
    return None


class ToolDefinition(_Strict):
    """One function the respondent may call: OpenAI's definition, plus the JSON Schema of what it returns."""

    name: str = Field(description="The function's name: letters, digits, _ and -, at most 64 characters.")
    description: str = Field(default="", description="What it does, as the model reads it.")
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of its arguments (an object).",
    )
    returns: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of its result: what the simulator writes, and mock results fit."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _TOOL_NAME.match(value):
            raise ValueError(f"{value!r} is not a function name (letters, digits, _ and -, 1 to 64 characters)")
        return value

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = schema_problem(value)
        if problem:
            raise ValueError(f"parameters {problem}")
        if value.get("type", "object") != "object":
            raise ValueError(f"parameters must describe an object (type: object), not type {value.get('type')!r}")
        return value

    @field_validator("returns")
    @classmethod
    def _returns(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        problem = None if value is None else schema_problem(value)
        if problem:
            raise ValueError(f"returns {problem}")
        return value

    def openai(self) -> dict[str, Any]:
        """The definition as chat APIs take it (`returns` is afterimage's own: it is not sent)."""
        function = {"name": self.name, "description": self.description, "parameters": self.parameters}
        return {"type": "function", "function": function}


class McpServerConfig(_Strict):
    """An MCP server started as a subprocess and spoken to over stdio; a bare string is its command line."""

    command: str = Field(description="The program to start, e.g. 'python' or 'npx'.")
    args: list[str] = Field(default_factory=list, description="Its arguments.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables it gets besides PATH/HOME.")
    cwd: str | None = Field(default=None, description="Its working directory (default: the current one).")

    @model_validator(mode="before")
    @classmethod
    def _command_line(cls, data: Any) -> Any:
        if isinstance(data, str):
            words = shlex.split(data)
            if not words:
                raise ValueError("the MCP server's command is empty")
            return {"command": words[0], "args": words[1:]}
        return data


class ToolsConfig(_Strict):
    """Tool-calling conversations: the respondent may call these functions and sees their results."""

    definitions: list[ToolDefinition] = Field(default_factory=list, description="The tools, inline.")
    file: str | None = Field(default=None, description="A JSON or YAML file holding the list of definitions.")
    from_mcp: McpServerConfig | None = Field(
        default=None, description="An MCP server (over stdio) whose list_tools gives the definitions."
    )
    results: ResultSource = Field(
        default="simulate",
        description="Where results come from: simulate (a model writes them), mock (fixed, per tool), python "
        "(your function, run in-process), mcp (the MCP server's tools, called for real).",
    )
    simulator: ModelConfig | None = Field(
        default=None, description="results: simulate — the model that writes results (default: the correspondent)."
    )
    mock: dict[str, Any] = Field(
        default_factory=dict, description="results: mock — each tool's result (a string, or JSON data)."
    )
    python: str | None = Field(
        default=None, description="results: python — 'module:function' called as function(name, arguments)."
    )
    on_invalid_call: Literal["error_result", "reject"] = Field(
        default="error_result",
        description="A call whose arguments do not parse or fit the schema: answer it with an error the model "
        "can recover from, or reject the item (another takes its place).",
    )
    max_calls_per_turn: int = Field(
        default=5, ge=1, le=50, description="Tool calls in one respondent turn, at most; more rejects the item."
    )
    tool_choice: Literal["auto", "required"] = Field(
        default="auto",
        description="The first request of each respondent turn: the model decides (auto), or must call a tool.",
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, data: Any) -> Any:
        return {"definitions": data} if isinstance(data, list) else data

    @model_validator(mode="after")
    def _check(self) -> ToolsConfig:
        given = [name for name in ("definitions", "file", "from_mcp") if getattr(self, name)]
        if len(given) != 1:
            which = " and ".join(given) if given else "none"
            raise ValueError(f"set exactly one of tools.definitions, tools.file or tools.from_mcp (got {which})")
        names = [tool.name for tool in self.definitions]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"tools.definitions: the name(s) {', '.join(twice)} are used more than once")
        needs = {"simulator": "simulate", "mock": "mock", "python": "python"}
        for field, source in needs.items():
            if getattr(self, field) and self.results != source:
                raise ValueError(f"tools.{field} is used only by results: {source}, not {self.results}")
        if self.results == "mcp" and self.from_mcp is None:
            raise ValueError("results: mcp calls the MCP server's tools: set tools.from_mcp")
        if self.results == "python" and (not self.python or ":" not in self.python):
            raise ValueError("results: python needs tools.python: 'module:function'")
        if self.results == "mock" and not self.mock:
            raise ValueError("results: mock needs tools.mock: a result for each tool, by name")
        if self.results == "mock" and self.definitions:
            check_mock(self.mock, self.definitions)
        return self


def check_mock(mock: dict[str, Any], tools: list[ToolDefinition]) -> None:
    """Every tool has a mock result, every mock names a tool, and each fits its tool's `returns`."""
    names = [tool.name for tool in tools]
    missing = [name for name in names if name not in mock]
    unknown = [name for name in mock if name not in names]
    if missing:
        raise ValueError(f"tools.mock has no result for {', '.join(missing)}")
    if unknown:
        raise ValueError(f"tools.mock names no tool: {', '.join(unknown)} (tools: {', '.join(names)})")
    import jsonschema

    for tool in tools:
        if tool.returns is None or isinstance(mock[tool.name], str) and tool.returns.get("type") != "string":
            continue
        try:
            jsonschema.validate(mock[tool.name], tool.returns)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
            raise ValueError(
                f"tools.mock.{tool.name} does not fit its tool's returns at {where}: {exc.message}"
            ) from None
