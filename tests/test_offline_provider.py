from __future__ import annotations

import asyncio

from pydantic import BaseModel

from afterimage_cli import prompts
from afterimage_cli.providers.factory import LLMFactory
from afterimage_cli.providers.offline import OfflineProvider


class QA(BaseModel):
    question: str
    answer: str
    difficulty: int
    tags: list[str]


def test_deterministic_and_counts_tokens() -> None:
    provider = OfflineProvider()
    messages = [{"role": "user", "content": "What is a vector database?"}]
    first = asyncio.run(provider.acomplete(messages))
    second = asyncio.run(provider.acomplete(messages))
    assert first.text == second.text and first.text
    assert first.prompt_token_count == len(messages[0]["content"]) // 4 + 1
    assert first.total_token_count == first.prompt_token_count + first.completion_token_count
    assert first.cost == 0.0


def test_answers_extractively_from_context() -> None:
    context = "Qdrant stores vectors with payloads. It supports sparse vectors for keyword search. Cats sleep a lot."
    system = prompts.with_context("You are helpful.", context)
    answer = asyncio.run(
        OfflineProvider().acomplete(
            [{"role": "system", "content": system}, {"role": "user", "content": "Does Qdrant support sparse vectors?"}]
        )
    )
    assert "sparse vectors" in answer.text


def test_writes_a_question_for_instruction_prompts() -> None:
    request = prompts.INSTRUCTION_PROMPT.format(topic="HTTP caching headers", persona="")
    text = asyncio.run(OfflineProvider().agenerate_content(request)).text
    assert text.endswith("?")


def test_simulated_user_asks_follow_up() -> None:
    system = prompts.USER_SIMULATOR_SYSTEM.format(persona="")
    messages = [
        {"role": "system", "content": system},
        {"role": "assistant", "content": "What is garbage collection?"},
        {"role": "user", "content": "Garbage collection reclaims unreachable objects automatically."},
    ]
    assert asyncio.run(OfflineProvider().acomplete(messages)).text.endswith("?")


def test_structured_output_honours_pydantic_and_dict_schemas() -> None:
    provider = LLMFactory.create("offline")
    result = provider.generate_structured("Write a quiz item about Python lists.", QA)
    assert isinstance(result.parsed, QA) and result.parsed.tags
    schema = {
        "type": "object",
        "properties": {"label": {"enum": ["a", "b"]}, "score": {"type": "number", "minimum": 0, "maximum": 1}},
        "required": ["label", "score"],
    }
    parsed = provider.generate_structured("Classify this.", schema).parsed
    assert parsed["label"] in ("a", "b") and 0 <= parsed["score"] <= 1
