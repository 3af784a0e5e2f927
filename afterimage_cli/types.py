"""Data models shared by every component: the row schema (seeds/jsonl-schema.txt) and callback payloads."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["user", "assistant", "tool"]
Grade = Literal["perfect", "good", "needs_improvement", "bad", "not_acceptable"]
GRADES: tuple[Grade, ...] = ("perfect", "good", "needs_improvement", "bad", "not_acceptable")
NO_RETRIEVAL_CONTEXT = "No relevant context was found."


class ToolFunctionCall(BaseModel):
    """What a tool call asks for: the tool's name and its arguments as the model wrote them."""

    name: str
    arguments: str = Field(description="A JSON string, exactly as the model wrote it (evaluate checks it parses).")


class MessageToolCall(BaseModel):
    """One call of an assistant message, in OpenAI's shape."""

    id: str
    type: Literal["function"] = "function"
    function: ToolFunctionCall


class Message(BaseModel):
    """One turn of a conversation; tool-calling rows add assistant `tool_calls` and `tool` messages."""

    role: Role
    content: str | None = Field(description='The text; null (or "") only on an assistant message with tool_calls.')
    reasoning_content: str | None = None
    tool_calls: list[MessageToolCall] | None = Field(
        default=None, description="assistant only: the calls made; one `tool` message per call follows."
    )
    tool_call_id: str | None = Field(default=None, description="tool only: the id of the call this result answers.")
    name: str | None = Field(default=None, description="tool only: the tool's name.")


class CriterionScore(BaseModel):
    """A judge's score for one criterion; `applicable=False` keeps it out of final_score."""

    model_config = ConfigDict(extra="allow")

    score: float | None = Field(default=None, ge=0.0, le=1.0)
    feedback: str = ""
    applicable: bool = True


class Evaluation(BaseModel):
    """The judge's verdict on one conversation."""

    model_config = ConfigDict(extra="allow")

    coherence: CriterionScore | None = None
    factuality: CriterionScore | None = None
    grounding: CriterionScore | None = None
    helpfulness: CriterionScore | None = None
    relevance: CriterionScore | None = None
    overall_grade: Grade | None = None


class PreferencePair(BaseModel):
    """A pair at an earlier turn of an `at_turn: every` preference row."""

    turn: int = Field(ge=1, description="The user turn (1-based) both answers answer.")
    chosen: Message
    rejected: Message
    preference: dict[str, Any] = Field(default_factory=dict, description="As metadata.preference, for this pair.")


class ConversationRow(BaseModel):
    """One JSONL row. Fields the published afterimage may omit have defaults, so its rows load too.

    Preference rows (`generation.kind: preference`, `quality.keep_pairs`) add `chosen` and `rejected`: two
    assistant answers to the same history, `conversations` up to the user turn `metadata.preference.turn`.
    Tool-calling rows add `tools` and `metadata.tool_use` ({calls, invalid_calls, tools_used, target_tools,
    result_source}); a row without tools has neither."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    conversations: list[Message]
    metadata: dict[str, Any] = Field(default_factory=dict)
    instruction_context: str | None = None
    response_context: str | None = None
    persona: str | None = None
    evaluation: Evaluation | None = None
    final_score: float | None = None
    chosen: Message | None = None
    rejected: Message | None = None
    earlier_pairs: list[PreferencePair] | None = None
    tools: list[dict[str, Any]] | None = Field(
        default=None,
        description='The tools offered, as OpenAI definitions {"type": "function", "function": {name, description, '
        "parameters}}.",
    )


class GeneratedInstructions(BaseModel):
    """What an instruction generator returns: one or more opening user messages and their context."""

    instructions: list[str]
    context: str | None = None
    context_id: str | None = None
    context_ids: list[str] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class GeneratedResponsePrompt(BaseModel):
    """The respondent's system prompt after the modifiers ran, plus what they want recorded."""

    prompt: str
    context: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Persona(BaseModel):
    """A simulated user's description and its depth in the persona tree (0 = given or root)."""

    description: str
    depth: int = 0


class RetrievalHit(BaseModel):
    """One retrieved chunk."""

    id: str
    score: float
    text: str = ""


class RetrievalResult(BaseModel):
    """A retriever's answer: the context text to inject and the hits it came from."""

    text: str
    hits: list[RetrievalHit] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.hits
