"""An MCP server started from `tools.from_mcp` and spoken to over stdio: its list_tools gives the run's tool
definitions, and with `results: mcp` its tools answer the calls. The `mcp` package is an optional extra
(`pip install 'afterimage[mcp]'`); both its 1.x and 2.x client APIs are read."""

from __future__ import annotations

import importlib.util
from contextlib import AsyncExitStack
from typing import Any

from ..config_tools import McpServerConfig, ToolDefinition
from ..errors import ConfigError, RunAborted
from .calls import result_text

INSTALL_HINT = "tools.from_mcp needs the mcp package: pip install 'afterimage[mcp]' (or pip install mcp)"


def require_mcp() -> None:
    """ConfigError saying how to install the package when it is missing (checked by validate and --dry-run)."""
    if importlib.util.find_spec("mcp") is None:
        raise ConfigError(INSTALL_HINT)


def _field(obj: Any, *names: str) -> Any:
    """An attribute under its 2.x (snake_case) or 1.x (camelCase) name."""
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def definition_of(tool: Any) -> ToolDefinition:
    """An MCP tool (name, description, inputSchema, outputSchema) as a tool definition."""
    parameters = _field(tool, "input_schema", "inputSchema") or {"type": "object", "properties": {}}
    raw = {
        "name": tool.name,
        "description": tool.description or "",
        "parameters": parameters,
        "returns": _field(tool, "output_schema", "outputSchema"),
    }
    try:
        return ToolDefinition.model_validate(raw)
    except ValueError as exc:
        raise ConfigError(f"tools.from_mcp: the server's tool {tool.name!r} is not usable: {exc}") from None


class McpTools:
    """One MCP client session for the whole run: opened before the first item, closed at the end."""

    def __init__(self, cfg: McpServerConfig) -> None:
        self.cfg = cfg
        self.session: Any = None
        self._stack = AsyncExitStack()

    async def astart(self) -> list[ToolDefinition]:
        """Start the server, initialise the session and list its tools."""
        try:
            from mcp import ClientSession, StdioServerParameters
            from mcp.client.stdio import stdio_client
        except ImportError:
            raise ConfigError(INSTALL_HINT) from None
        params = StdioServerParameters(
            command=self.cfg.command, args=list(self.cfg.args), env=dict(self.cfg.env) or None, cwd=self.cfg.cwd
        )
        command = " ".join([self.cfg.command, *self.cfg.args])
        try:
            read, write = await self._stack.enter_async_context(stdio_client(params))
            self.session = await self._stack.enter_async_context(ClientSession(read, write))
            await self.session.initialize()
            listed = await self.session.list_tools()
        except ConfigError:
            raise
        except Exception as exc:
            await self.aclose()
            raise ConfigError(f"tools.from_mcp: cannot start or list the MCP server `{command}`: {exc}") from None
        tools = [definition_of(tool) for tool in listed.tools]
        if not tools:
            raise ConfigError(f"tools.from_mcp: the MCP server `{command}` lists no tools")
        return tools

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        """The tool's result as a tool message's content; a tool's own error is an error result."""
        if self.session is None:
            raise RunAborted("the MCP server is not running (it is started before the first item)")
        result = await self.session.call_tool(name, arguments)
        texts = [block.text for block in result.content if getattr(block, "type", None) == "text"]
        structured = _field(result, "structured_content", "structuredContent")
        body: Any = "\n".join(texts) if texts or structured is None else structured
        if _field(result, "is_error", "isError"):
            return result_text({"error": body if isinstance(body, str) else result_text(body)})
        return result_text(body)

    async def aclose(self) -> None:
        self.session = None
        await self._stack.aclose()
