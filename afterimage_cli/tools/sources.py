"""Where a valid call's result comes from (`tools.results`): a model simulating the tool, fixed mock results,
the user's Python function, or the MCP server's tool called for real."""

from __future__ import annotations

import asyncio
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from .. import prompts
from ..config_tools import ToolDefinition, ToolsConfig
from ..errors import ConfigError, RunAborted
from ..providers.base import LLMProvider
from ..providers.logging import warn
from ..registry import load_dotted
from .calls import result_text

if TYPE_CHECKING:
    from .mcp import McpTools


@dataclass(frozen=True)
class EarlierCall:
    """A call made earlier in the same conversation, shown to the simulator so results stay consistent."""

    name: str
    arguments: str
    result: str


class ResultSource(ABC):
    """Answers valid calls; `memoize`: the same call in one conversation is answered once (the simulator's)."""

    name: str
    memoize = False

    @abstractmethod
    async def result(
        self, tool: ToolDefinition, arguments: dict[str, Any], request: str, earlier: Sequence[EarlierCall]
    ) -> str:
        """The tool message's content for one call; `request` is the user's message the turn answers."""


def simulation_schema(tool: ToolDefinition) -> tuple[dict[str, Any], bool]:
    """The schema the simulator writes to, and whether the result is wrapped in {"result": …} (structured
    output needs an object at the root; a tool without `returns` gets a free-text result)."""
    returns = tool.returns
    if returns is not None and returns.get("type") == "object":
        return returns, False
    inner = returns if returns is not None else {"type": "string", "description": "what the tool returned"}
    schema = {"type": "object", "properties": {"result": inner}, "required": ["result"], "additionalProperties": False}
    return schema, True


class SimulatedResults(ResultSource):
    """A model writes each result, fitting the tool's `returns`, from the call and the dialog's earlier results."""

    name = "simulate"
    memoize = True

    def __init__(self, simulator: LLMProvider) -> None:
        self.simulator = simulator

    async def result(
        self, tool: ToolDefinition, arguments: dict[str, Any], request: str, earlier: Sequence[EarlierCall]
    ) -> str:
        schema, wrapped = simulation_schema(tool)
        shown = "\n".join(f"- {c.name}({c.arguments}) returned {c.result}" for c in earlier) or "(none)"
        prompt = (
            f"Tool: {tool.name}\nWhat it does: {tool.description or 'see its name'}\n"
            f"Arguments: {orjson.dumps(arguments).decode()}\n\n"
            f"The user's request: {request}\n\nEarlier calls in this conversation:\n{shown}"
        )
        messages = [{"role": "system", "content": prompts.TOOL_SIMULATOR_SYSTEM}, {"role": "user", "content": prompt}]
        answer = await self.simulator.acomplete_structured(messages, schema)
        value = answer.parsed
        return result_text(value["result"] if wrapped and isinstance(value, dict) else value)


class MockResults(ResultSource):
    """The fixed result the config gives each tool, whatever the arguments."""

    name = "mock"

    def __init__(self, mock: dict[str, Any]) -> None:
        self.mock = mock

    async def result(
        self, tool: ToolDefinition, arguments: dict[str, Any], request: str, earlier: Sequence[EarlierCall]
    ) -> str:
        return result_text(self.mock[tool.name])


class PythonResults(ResultSource):
    """`module:function`, called as function(name, arguments) (sync functions in a worker thread). What it
    raises becomes an error result, as a real tool's failure would: the model sees it and may recover."""

    name = "python"

    def __init__(self, function: Callable[..., Any], path: str) -> None:
        self.function = function
        self.path = path

    async def result(
        self, tool: ToolDefinition, arguments: dict[str, Any], request: str, earlier: Sequence[EarlierCall]
    ) -> str:
        try:
            if inspect.iscoroutinefunction(self.function):
                value = await self.function(tool.name, arguments)
            else:
                value = await asyncio.to_thread(self.function, tool.name, arguments)
        except Exception as exc:
            warn(f"tools.python {self.path} raised {type(exc).__name__} for {tool.name}: {exc} (an error result)")
            return result_text({"error": f"{tool.name} failed: {type(exc).__name__}: {exc}"})
        return result_text(value)


class McpResults(ResultSource):
    """The MCP server's tool, called for real (`server` gives the run's server, started before the first item)."""

    name = "mcp"

    def __init__(self, server: Callable[[], McpTools | None]) -> None:
        self.server = server

    async def result(
        self, tool: ToolDefinition, arguments: dict[str, Any], request: str, earlier: Sequence[EarlierCall]
    ) -> str:
        server = self.server()
        if server is None:
            raise RunAborted("the MCP server of tools.from_mcp is not running (it starts before the first item)")
        return await server.call(tool.name, arguments)


def python_function(path: str) -> Callable[..., Any]:
    """The function `tools.python` names (importing its module runs that module's code)."""
    try:
        function = load_dotted(path)
    except ConfigError as exc:
        raise ConfigError(f"tools.python: {exc}") from None
    if not callable(function):
        raise ConfigError(f"tools.python: {path!r} is a {type(function).__name__}, not a function")
    return function  # type: ignore[no-any-return]


def build_source(
    cfg: ToolsConfig, simulator: LLMProvider | None, server: Callable[[], McpTools | None] | None
) -> ResultSource:
    """The result source `tools.results` names."""
    if cfg.results == "simulate":
        assert simulator is not None, "results: simulate needs the simulator's provider"
        return SimulatedResults(simulator)
    if cfg.results == "mock":
        return MockResults(cfg.mock)
    if cfg.results == "python":
        assert cfg.python is not None  # the config requires it
        return PythonResults(python_function(cfg.python), cfg.python)
    assert server is not None, "results: mcp needs the MCP server"
    return McpResults(server)
