"""Prompt templates shared by the generators and understood by the offline provider."""

from __future__ import annotations

END_TOKEN = "[END]"
SIMULATOR_MARKER = "simulated user"
INSTRUCTION_MARKER = "Write the first message"
PERSONA_MARKER = "Write personas"
CONTEXT_HEADER = "Context:"

USER_SIMULATOR_SYSTEM = (
    "You are a simulated user talking to an AI assistant.{persona}\n"
    "Stay in character and write only your next message to the assistant, with no preamble. "
    "Build on the assistant's last answer: ask a follow-up, a clarification or a related question. "
    f"When you have nothing more to ask, reply with exactly {END_TOKEN}."
)

INSTRUCTION_PROMPT = (
    "Write the first message that a user would send to an AI assistant about: {topic}.{persona}\n"
    "Make it a specific, natural question. Reply with the message only."
)


def persona_clause(persona: str | None) -> str:
    """' You are: <persona>.' or ''."""
    return f"\nYou are: {persona.rstrip('.')}." if persona else ""


def with_context(prompt: str, context: str | None) -> str:
    """Append a context block to a prompt."""
    return f"{prompt}\n\n{CONTEXT_HEADER}\n{context}" if context else prompt
