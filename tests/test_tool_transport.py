"""Tool calling through every transport, against the fake server's route for its protocol: the tools in the
request body in the protocol's own form, the calls read back as ToolCalls with finish_reason "tool_calls",
and a round trip (call → tool result → answer) with the tool turns in OpenAI form translated on the way."""

from __future__ import annotations

import asyncio
from typing import Any

import jsonschema
import orjson
import pytest

from afterimage_cli.providers.base import LLMResponse, ToolCall
from afterimage_cli.providers.factory import LLMFactory

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city", "days"],
}
STOCKS = {"type": "object", "properties": {"symbol": {"type": "string"}}, "required": ["symbol"]}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Forecast", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "stock_price", "description": "Quote", "parameters": STOCKS}},
]
SCHEMAS = {"get_weather": WEATHER, "stock_price": STOCKS}
ASK = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Use get_weather for Oslo."}]


def build(srv, model: str, **settings: Any):
    settings.setdefault("api_base", srv.api_base if model.startswith("openai/") else srv.url)
    return LLMFactory.create(model, **settings)


def ask(provider, messages=ASK, **kwargs) -> LLMResponse:
    async def go() -> LLMResponse:
        try:
            return await provider.acomplete(messages, **kwargs)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def follow_up(answer: LLMResponse, result: str = '{"temp_c": 21, "sky": "clear"}') -> list[dict[str, Any]]:
    """The dialog after `answer`'s calls, each answered by a tool message (OpenAI form)."""
    assert answer.tool_calls
    calls = [call.wire() for call in answer.tool_calls]
    results = [
        {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": result} for call in answer.tool_calls
    ]
    return [*ASK, {"role": "assistant", "content": answer.text, "tool_calls": calls}, *results]


def valid(call: ToolCall) -> bool:
    try:
        jsonschema.validate(orjson.loads(call.arguments), SCHEMAS[call.name])
    except (orjson.JSONDecodeError, jsonschema.ValidationError):
        return False
    return True


# --- OpenAI-compatible (and Azure) ------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["openai/fake-model", "azure/fake-deployment"])
def test_openai_compat_sends_tools_and_reads_the_calls(fake_server, model) -> None:
    answer = ask(build(fake_server, model), tools=TOOLS, tool_choice="auto")
    body = fake_server.stats["last_request"]["body"]
    assert body["tools"] == TOOLS and body["tool_choice"] == "auto"
    assert answer.finish_reason == "tool_calls" and answer.text == ""
    assert answer.tool_calls and [c.name for c in answer.tool_calls] == ["get_weather"]  # named in the user text
    assert answer.tool_calls[0].id.startswith("call_") and valid(answer.tool_calls[0])


def test_openai_compat_round_trip_sends_tool_turns_as_they_are(fake_server) -> None:
    first = ask(build(fake_server, "openai/fake-model"), tools=TOOLS)
    dialog = follow_up(first)
    second = ask(build(fake_server, "openai/fake-model"), dialog, tools=TOOLS)
    assert fake_server.stats["last_request"]["body"]["messages"] == dialog
    assert second.tool_calls is None and second.finish_reason == "stop"
    assert 'get_weather returned {"temp_c": 21, "sky": "clear"}' in second.text


def test_openai_compat_without_tools_sends_no_tool_fields(fake_server) -> None:
    answer = ask(build(fake_server, "openai/fake-model"), tools=None, tool_choice=None)
    body = fake_server.stats["last_request"]["body"]
    assert "tools" not in body and "tool_choice" not in body
    assert answer.tool_calls is None and answer.text.startswith("Here is an answer about")


# --- the fake server's knobs -----------------------------------------------------------------------------


def test_fake_server_knobs_shape_the_calls(fake_server) -> None:
    fake_server.parallel_tool_calls = 2
    answer = ask(build(fake_server, "openai/fake-model"), tools=TOOLS)
    assert answer.tool_calls and [c.name for c in answer.tool_calls] == ["get_weather", "stock_price"]
    assert len({c.id for c in answer.tool_calls}) == 2 and all(valid(c) for c in answer.tool_calls)

    fake_server.parallel_tool_calls, fake_server.invalid_tool_args_rate = 1, 1.0
    bad = [
        ask(build(fake_server, "openai/fake-model"), [{"role": "user", "content": f"q{n}"}], tools=TOOLS)
        for n in range(4)
    ]
    calls = [c for a in bad for c in a.tool_calls or ()]
    assert len(calls) == 4 and not any(valid(c) for c in calls)
    not_json = [c for c in calls if not c.arguments.endswith("}")]
    assert 0 < len(not_json) < 4  # some break the schema, some are not JSON at all
    assert fake_server.stats["invalid_tool_args"] == 4

    fake_server.invalid_tool_args_rate, fake_server.tool_call_rate = 0.0, 0.0
    assert ask(build(fake_server, "openai/fake-model"), tools=TOOLS).tool_calls is None
    assert ask(build(fake_server, "openai/fake-model"), tools=TOOLS, tool_choice="required").tool_calls
    fake_server.tool_call_rate = 1.0
    assert ask(build(fake_server, "openai/fake-model"), tools=TOOLS, tool_choice="none").tool_calls is None


def test_fake_server_picks_an_unnamed_tool_by_the_text(fake_server) -> None:
    picked = {
        (
            ask(
                build(fake_server, "openai/fake-model"),
                [{"role": "user", "content": f"Help me with task {n}"}],
                tools=TOOLS,
            ).tool_calls
            or [None]
        )[0].name  # type: ignore[union-attr]
        for n in range(12)
    }
    assert picked == {"get_weather", "stock_price"}
