"""The LLM judge: one structured-output call per conversation, scored per criterion (0–1 + feedback)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, create_model

from ..config import EvaluationConfig
from ..providers.base import LLMProvider, Messages
from ..rowshape import row_has_tools
from ..types import Grade
from .grading import (
    CRITERIA,
    NOT_APPLICABLE_FEEDBACK,
    TOOL_CRITERION,
    applicable_criteria,
    final_score,
    grade_for,
    row_context,
)

CRITERION_GUIDE = {
    "coherence": "the conversation flows logically; each answer follows from what came before, no contradictions",
    "factuality": "statements are correct; no invented facts, numbers, citations or APIs",
    "grounding": "answers rest on the given context and do not claim what the context does not support",
    "helpfulness": "answers solve the user's actual problem with useful, complete, actionable detail",
    "relevance": "every answer addresses the user's question directly, without digressions or filler",
    "tool_use": "the right tool is called when one is needed (and none when not), with correct arguments taken "
    "from the conversation; answers use what the tools returned, invent no results, and recover from tool errors",
}

JUDGE_SYSTEM = (
    "You are a strict, fair judge of synthetic training conversations between a user and an AI assistant. "
    "Judge only the assistant's turns. For each criterion write one or two sentences of feedback, then a "
    "score from 0 to 1: 1.0 flawless, 0.75 minor issues, 0.5 clear problems, 0.25 major problems, "
    "0.0 unusable. Do not reward length for its own sake."
)


class CriterionVerdict(BaseModel):
    """The judge's answer for one criterion; feedback comes first so the score follows the reasoning."""

    model_config = ConfigDict(extra="forbid")

    feedback: str = Field(description="Why the score; name the concrete problem if any.")
    score: float = Field(ge=0.0, le=1.0, description="0 (unusable) to 1 (flawless).")


@lru_cache(maxsize=8)
def verdict_schema(criteria: tuple[str, ...]) -> type[BaseModel]:
    """A response model asking for exactly these criteria (no field for what does not apply)."""
    fields: dict[str, Any] = {name: (CriterionVerdict, Field(description=CRITERION_GUIDE[name])) for name in criteria}
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "ConversationVerdict", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model


def asked(criteria: tuple[str, ...]) -> str:
    """The criteria as a list the judge reads."""
    return "\n".join(f"- {name}: {CRITERION_GUIDE[name]}" for name in criteria)


def transcript(row: dict[str, Any]) -> str:
    """The conversation as labelled turns; tool calls as `name(arguments)` lines and results labelled by tool."""
    lines = []
    names: dict[str, str] = {}
    for turn in row["conversations"]:
        role = turn.get("role")
        if role == "tool":
            call_id = turn.get("tool_call_id")
            name = turn.get("name") or names.get(str(call_id), "tool")
            lines.append(f"Tool result of {name} [{call_id}]: {turn.get('content') or ''}")
            continue
        speaker = "User" if role == "user" else "Assistant"
        text = turn.get("content") or ""
        calls = turn.get("tool_calls") or []
        said = [f"{speaker}: {text}"] if text or not calls else []
        for call in calls:
            function = call.get("function") or {}
            names[str(call.get("id"))] = str(function.get("name"))
            said.append(f"Assistant calls {function.get('name')}({function.get('arguments')}) [{call.get('id')}]")
        lines.append("\n".join(said))
    return "\n\n".join(lines)


def tools_part(row: dict[str, Any]) -> str | None:
    """The tools the assistant was offered, one line each: name, description, parameters schema."""
    tools = row.get("tools")
    if not tools:
        return None
    lines = []
    for tool in tools:
        function = tool.get("function", tool) if isinstance(tool, dict) else {}
        parameters = orjson.dumps(function.get("parameters") or {}).decode()
        lines.append(f"- {function.get('name')}: {function.get('description') or ''} Parameters: {parameters}")
    return "Tools the assistant could call:\n" + "\n".join(lines)


@dataclass
class Verdict:
    """A judged row: the seed's `evaluation` object, its final_score and grade."""

    evaluation: dict[str, Any]
    final_score: float | None
    grade: Grade | None


class ConversationJudge:
    """Asks a model to score each applicable criterion; computes final_score and the grade locally."""

    def __init__(self, provider: LLMProvider, cfg: EvaluationConfig) -> None:
        self.provider = provider
        self.cfg = cfg

    def context_part(self, row: dict[str, Any]) -> str:
        """What the judge is told of the row's context (cut at max_context_chars)."""
        context = row_context(row)
        limit = self.cfg.max_context_chars
        if len(context) > limit:
            context = context[:limit] + " […]"
        return f"Context the assistant was given:\n{context}" if context else "The assistant was given no context."

    def messages(self, row: dict[str, Any], criteria: tuple[str, ...]) -> Messages:
        """The judge's request for one row."""
        tools = tools_part(row)
        parts = [
            self.context_part(row),
            *([tools] if tools else []),
            f"Conversation:\n{transcript(row)}",
            f"Score these criteria:\n{asked(criteria)}",
        ]
        return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]

    async def judge(self, row: dict[str, Any]) -> Verdict:
        """Judge one row (a dict in the seed schema); ProviderError propagates to the caller."""
        criteria = applicable_criteria(bool(row_context(row)), self.cfg.context_criteria, row_has_tools(row))
        response = await self.provider.acomplete_structured(self.messages(row, criteria), verdict_schema(criteria))
        parsed = response.parsed
        verdicts: dict[str, CriterionVerdict] = {name: getattr(parsed, name) for name in criteria}
        return self.verdict(verdicts, self.provider.model_name)

    def verdict(self, verdicts: dict[str, CriterionVerdict], judge_model: str) -> Verdict:
        """Assemble the evaluation object; criteria missing from `verdicts` are not applicable (tool_use, of a
        row without tools, is left out: such rows are written as before tools existed)."""
        evaluation: dict[str, Any] = {}
        for name in CRITERIA:
            got = verdicts.get(name)
            if got is None and name == TOOL_CRITERION:
                continue
            if got is None:
                evaluation[name] = {"score": None, "feedback": NOT_APPLICABLE_FEEDBACK, "applicable": False}
            else:
                evaluation[name] = {"score": round(got.score, 4), "feedback": got.feedback, "applicable": True}
        score = final_score({n: v.score for n, v in verdicts.items()}, self.cfg.weights)
        grade = grade_for(score, self.cfg.grades) if score is not None else None
        evaluation["overall_grade"] = grade
        evaluation["judge_model"] = judge_model
        return Verdict(evaluation=evaluation, final_score=score, grade=grade)
