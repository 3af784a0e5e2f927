"""Prompt templates shared by the generators and understood by the offline provider."""

from __future__ import annotations

END_TOKEN = "[END]"
SIMULATOR_MARKER = "simulated user"
INSTRUCTION_MARKER = "Write the first message"
PERSONA_MARKER = "Write personas"
DEGRADE_MARKER = "deliberately worse answer"
CONTEXT_HEADER = "Context:"
TOOL_SIMULATOR_MARKER = "You simulate a tool"
TOOLS_REQUEST_MARKER = "an AI assistant that can call tools"

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

# tools.results simulate: the system prompt of the model that writes a tool's result (structured output fitting
# the tool's `returns`); the request shows the call, the user's request and the conversation's earlier results.
TOOL_SIMULATOR_SYSTEM = (
    TOOL_SIMULATOR_MARKER + " that an AI assistant called while helping a user. Write the result the real tool "
    "would return for these arguments: realistic, specific, and consistent with the earlier results of this "
    "conversation. Reply with JSON that fits the result schema, and nothing else."
)

# preference.strategy degrade: how the rejected answer is made worse, per axis (preference.axes).
DEGRADE_AXES = {
    "unfaithful": "state at least one thing the context above does not support, or that contradicts it",
    "ignores_persona": "ignore who the user is (their role, level and goals) and answer as if to anyone",
    "verbose": "pad the answer with repetition, needless caveats and filler that add nothing useful",
    "wrong": "include one subtle factual or logical error that a careful expert would catch",
}
DEGRADE_INSTRUCTION = (
    f"For this answer only, write a {DEGRADE_MARKER}: {{how}}. Keep it plausible and in your usual style, "
    "and do not say or hint that it is worse."
)


def persona_clause(persona: str | None) -> str:
    """' You are: <persona>.' or ''."""
    return f"\nYou are: {persona.rstrip('.')}." if persona else ""


def with_context(prompt: str, context: str | None) -> str:
    """Append a context block to a prompt."""
    return f"{prompt}\n\n{CONTEXT_HEADER}\n{context}" if context else prompt
