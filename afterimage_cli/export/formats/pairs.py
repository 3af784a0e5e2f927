"""What the preference formats share: each pair a row holds (the conversation up to the pair's user turn, the
chosen answer, the rejected one), and a converter that writes a format's records for every pair and counts the
rows that hold none (SFT rows, or a quality-gate row whose attempts made no pair)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..rows import Message, Record, Row, row_pairs
from .base import ExportOptions, chat_message, role_content_message, system_message

Render = Callable[[list[Message], Message, Message], list[Record]]
"""(prompt turns ending with the user's, chosen answer, rejected answer) → the format's records of one pair."""


class PairConverter:
    """A `Converter` answering each row with the records of its pairs (a list), or None for a row without one."""

    def __init__(self, render: Render) -> None:
        self.render = render
        self.unpaired = 0

    def feed(self, row: Row) -> list[Record] | None:
        pairs = row_pairs(row)
        if not pairs:
            self.unpaired += 1
            return None
        return [record for prompt, chosen, rejected in pairs for record in self.render(prompt, chosen, rejected)]

    def finish(self) -> Iterator[tuple[Record, str]]:
        """Pairs are written as their rows come: nothing is held back."""
        return iter(())


Shape = Callable[[list[Record], Record, Record], list[Record]]
"""(prompt messages, chosen message, rejected message), already in the chat shape → the format's records."""


def chat_pairs(options: ExportOptions, shape: Shape) -> PairConverter:
    """A converter for the formats that hold a pair as chat messages (dpo, kto, openai-preference): the prompt
    with --system-prompt first, and each answer as one assistant message; `shape` lays them out."""
    reasoning = options.include_reasoning
    head = [] if options.system_prompt is None else [system_message(options.system_prompt, reasoning)]

    def render(prompt: list[Message], chosen: Message, rejected: Message) -> list[Record]:
        messages = [*head, *(chat_message(turn, reasoning) for turn in prompt)]
        return shape(messages, role_content_message(chosen, reasoning), role_content_message(rejected, reasoning))

    return PairConverter(render)
