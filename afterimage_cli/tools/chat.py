"""The respondent's side of a tool-calling dialog: each user message starts an exchange in which the model may
call tools (several per step), sees every result, and ends the turn with a text answer.

Each call is checked (tools/calls.py): a valid one is answered by the run's result source, an invalid one by an
error result the model can recover from, or (`on_invalid_call: reject`) it rejects the item. An exchange makes
at most `max_calls_per_turn` calls: once they are made, the next request forbids tools (tool_choice none), and
a model that still calls one rejects the item, so no exchange loops forever."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config_tools import ToolsConfig
from ..errors import ItemRejected
from ..providers.base import ChatSession, LLMProvider, LLMResponse
from .calls import CheckedCall, canonical, check_call, error_result
from .definitions import ToolSet
from .sources import EarlierCall, ResultSource


class Toolbox:
    """The run's tools, their result source and the rules for calls; shared by every conversation."""

    def __init__(self, cfg: ToolsConfig, tools: Callable[[], ToolSet], source: ResultSource) -> None:
        self.cfg = cfg
        self._tools = tools  # resolved on first use: an MCP server's tools are listed when the run starts
        self.source = source

    @property
    def tools(self) -> ToolSet:
        return self._tools()


class ToolChat(ChatSession):
    """A ChatSession whose answers may go through tool calls; `last_exchange` holds the row messages of the
    latest one (assistant steps with tool_calls, tool results, and the final answer)."""

    def __init__(self, provider: LLMProvider, system_prompt: str | None, toolbox: Toolbox) -> None:
        super().__init__(provider, system_prompt)
        self.toolbox = toolbox
        self.last_exchange: list[dict[str, Any]] = []
        self.invalid_ids: set[str] = set()
        self.ids: set[str] = set()
        self.earlier: list[EarlierCall] = []
        self._answers: dict[str, str] = {}  # canonical call → result, when the source answers a call once

    async def asend_message(self, message: str, **kwargs: Any) -> LLMResponse:
        """The exchange that answers `message`; on failure the history is as it was before."""
        mark = len(self.history)
        self.history.append({"role": "user", "content": message})
        try:
            return await self._exchange(message, kwargs)
        except BaseException:
            del self.history[mark:]
            raise

    async def _exchange(self, message: str, params: dict[str, Any]) -> LLMResponse:
        cfg = self.toolbox.cfg
        definitions = self.toolbox.tools.openai()
        steps: list[dict[str, Any]] = []
        made, choice = 0, str(cfg.tool_choice)
        while True:
            response = await self.provider.acomplete(self.messages(), tools=definitions, tool_choice=choice, **params)
            calls = response.tool_calls or []
            if not calls:
                self.history.append({"role": "assistant", "content": response.text})
                reasoning = response.reasoning_content
                steps.append({"role": "assistant", "content": response.text, "reasoning_content": reasoning})
                self.last_exchange = steps
                return response
            if made + len(calls) > cfg.max_calls_per_turn:
                raise ItemRejected(
                    f"{self.provider.model_name} asked for more than tools.max_calls_per_turn "
                    f"({cfg.max_calls_per_turn}) tool calls in one turn; raise it if such turns are wanted",
                    cause="tool_call_limit",
                )
            wire = [self._wire_call(call.id, call.name, call.arguments) for call in calls]
            self.history.append({"role": "assistant", "content": response.text or "", "tool_calls": wire})
            steps.append(
                {
                    "role": "assistant",
                    "content": response.text or "",
                    "reasoning_content": response.reasoning_content,
                    "tool_calls": wire,
                }
            )
            for call in wire:
                content = await self._result(call, message)
                tool_message = {
                    "role": "tool",
                    "tool_call_id": call["id"],
                    "name": call["function"]["name"],
                    "content": content,
                }
                self.history.append(tool_message)
                steps.append(dict(tool_message))
            made += len(calls)
            choice = "none" if made >= cfg.max_calls_per_turn else "auto"

    def _wire_call(self, call_id: str, name: str, arguments: str) -> dict[str, Any]:
        """The call in OpenAI's form, with an id unique in the conversation (models reuse ids like call_0)."""
        unique = call_id
        if not unique or unique in self.ids:
            number = len(self.ids)
            while f"call_{number}" in self.ids:
                number += 1
            unique = f"call_{number}"
        self.ids.add(unique)
        return {"id": unique, "type": "function", "function": {"name": name, "arguments": arguments}}

    async def _result(self, call: dict[str, Any], message: str) -> str:
        """The content of the call's tool message."""
        function = call["function"]
        checked = check_call(self.toolbox.tools, function["name"], function["arguments"])
        if not checked.valid:
            return self._invalid(call["id"], checked)
        assert checked.arguments is not None
        source = self.toolbox.source
        key = canonical(checked.name, checked.arguments)
        if source.memoize and key in self._answers:
            return self._answers[key]
        tool = self.toolbox.tools.by_name[checked.name]
        content = await source.result(tool, checked.arguments, message, list(self.earlier))
        if source.memoize:
            self._answers[key] = content
        self.earlier.append(EarlierCall(checked.name, function["arguments"], content))
        return content

    def _invalid(self, call_id: str, checked: CheckedCall) -> str:
        if self.toolbox.cfg.on_invalid_call == "reject":
            raise ItemRejected(
                f"{self.provider.model_name} called {checked.name} with arguments that do not fit: {checked.problem} "
                "(tools.on_invalid_call: reject; error_result lets the model recover instead)",
                cause="invalid_tool_call",
            )
        self.invalid_ids.add(call_id)
        return error_result(checked)


def tool_use(turns: list[dict[str, Any]], chat: ToolChat, source: str, target_tools: list[str]) -> dict[str, Any]:
    """metadata.tool_use of a finished dialog (from its messages: calls of discarded turns do not count)."""
    calls = [call for turn in turns if turn["role"] == "assistant" for call in turn.get("tool_calls") or ()]
    invalid = [call["id"] for call in calls if call["id"] in chat.invalid_ids]
    used = {call["function"]["name"] for call in calls if call["id"] not in chat.invalid_ids}
    return {
        "calls": len(calls),
        "invalid_calls": len(invalid),
        "invalid_call_ids": invalid,
        "tools_used": sorted(used),
        "target_tools": list(target_tools),
        "result_source": source,
    }
