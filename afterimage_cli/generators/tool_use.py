"""ToolConversationGenerator (a config with `tools:`): a conversation made as ConversationGenerator makes it,
whose respondent may call tools in each turn (tools/chat.py runs the calls).

The row is a conversation row whose `conversations` carry the tool steps in OpenAI's form (an assistant message
with `tool_calls`, one `tool` message per call, then the turn's text answer), plus:

    tools                the definitions offered, as chat APIs take them ({"type": "function", "function": …})
    metadata.tool_use    calls, invalid_calls (and their ids), tools_used, target_tools, result_source
"""

from __future__ import annotations

from typing import Any

from ..providers.base import ChatSession, LLMResponse
from ..storage.base import Row
from ..tools.chat import Toolbox, ToolChat, tool_use
from ..types import GeneratedInstructions, GeneratedResponsePrompt
from .base import ItemPlan
from .conversation import ConversationGenerator


class ToolConversationGenerator(ConversationGenerator):
    """Multi-turn dialogs in which the respondent calls the run's tools (see the module docstring)."""

    def __init__(self, *, toolbox: Toolbox, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.toolbox = toolbox

    async def open_chat(
        self, plan: ItemPlan, generated: GeneratedInstructions, response_prompt: GeneratedResponsePrompt
    ) -> ChatSession:
        return ToolChat(self.respondent, response_prompt.prompt, self.toolbox)

    def answer_messages(self, chat: ChatSession, answer: LLMResponse) -> list[dict[str, Any]]:
        assert isinstance(chat, ToolChat)
        return list(chat.last_exchange)

    def finish_dialog(self, row: Row, chat: ChatSession) -> Row:
        assert isinstance(chat, ToolChat)
        metadata = row["metadata"]
        targets = metadata.pop("target_tools", None) or []
        metadata["tool_use"] = tool_use(row["conversations"], chat, self.toolbox.source.name, targets)
        return {**row, "tools": self.toolbox.tools.openai()}
