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
    from openai.types.chat import ChatCompletion

    fake_server.parallel_tool_calls = 2
    answer = ask(build(fake_server, "openai/fake-model"), tools=TOOLS)
    wire = ChatCompletion.model_validate(answer.raw_response).choices[0]  # OpenAI's own wire shape
    assert wire.finish_reason == "tool_calls" and wire.message.tool_calls and len(wire.message.tool_calls) == 2
    assert answer.tool_calls and [c.name for c in answer.tool_calls] == ["get_weather", "stock_price"]
    assert len({c.id for c in answer.tool_calls}) == 2 and all(valid(c) for c in answer.tool_calls)
    single = ask(build(fake_server, "openai/fake-model", params={"parallel_tool_calls": False}), tools=TOOLS)
    assert single.tool_calls and len(single.tool_calls) == 1  # the request's own parallel_tool_calls: false

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


# --- litellm -----------------------------------------------------------------------------------------------


def test_litellm_sends_tools_without_the_mcp_package_and_reads_the_calls(fake_server, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "mcp", None)  # not installed: litellm's MCP gateway check would import it
    provider = build(fake_server, "openai/fake-model", provider="litellm")
    answer = ask(provider, tools=TOOLS, tool_choice="required")
    body = fake_server.stats["last_request"]["body"]
    assert body["tools"] == TOOLS and body["tool_choice"] == "required" and "_skip_mcp_handler" not in body
    assert answer.finish_reason == "tool_calls" and answer.text == ""
    assert answer.tool_calls and answer.tool_calls[0].name == "get_weather" and valid(answer.tool_calls[0])
    dialog = follow_up(answer)
    second = ask(build(fake_server, "openai/fake-model", provider="litellm"), dialog, tools=TOOLS)
    sent = fake_server.stats["last_request"]["body"]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[2]["tool_calls"] == dialog[2]["tool_calls"] and sent[3]["tool_call_id"] == answer.tool_calls[0].id
    assert second.tool_calls is None and "get_weather returned" in second.text


# --- Anthropic Messages ------------------------------------------------------------------------------------

CLAUDE = "anthropic/claude-test"


def test_anthropic_sends_tools_in_its_form_and_reads_tool_use_blocks(fake_server) -> None:
    answer = ask(build(fake_server, CLAUDE), tools=TOOLS, tool_choice="required")
    body = fake_server.stats["last_request"]["body"]
    assert body["tools"] == [
        {"name": "get_weather", "input_schema": WEATHER, "description": "Forecast"},
        {"name": "stock_price", "input_schema": STOCKS, "description": "Quote"},
    ]
    assert body["tool_choice"] == {"type": "any"} and fake_server.stats["bad_request"] == 0
    assert answer.finish_reason == "tool_calls" and answer.text == ""  # stop_reason tool_use
    assert answer.tool_calls and answer.tool_calls[0].name == "get_weather" and valid(answer.tool_calls[0])
    assert answer.tool_calls[0].id.startswith("toolu_")


@pytest.mark.parametrize(
    ("choice", "params", "wire"),
    [
        ("auto", {}, {"type": "auto"}),
        ("none", {}, {"type": "none"}),
        ({"type": "function", "function": {"name": "stock_price"}}, {}, {"type": "tool", "name": "stock_price"}),
        ("required", {"parallel_tool_calls": False}, {"type": "any", "disable_parallel_tool_use": True}),
        ("required", {"thinking": {"type": "enabled", "budget_tokens": 1024}}, {"type": "auto"}),
    ],
)
def test_anthropic_tool_choice_mapping(choice, params, wire) -> None:
    provider = LLMFactory.create(CLAUDE, api_base="http://127.0.0.1:9", params=params)
    body = provider.request_payload(ASK, tools=TOOLS, tool_choice=choice)  # type: ignore[attr-defined]
    assert body["tool_choice"] == wire and "parallel_tool_calls" not in body


def test_anthropic_round_trip_merges_tool_results_into_one_user_turn(fake_server) -> None:
    fake_server.parallel_tool_calls = 2
    first = ask(build(fake_server, CLAUDE), tools=TOOLS)
    assert first.tool_calls and len(first.tool_calls) == 2
    dialog = follow_up(first)
    second = ask(build(fake_server, CLAUDE), dialog, tools=TOOLS)
    sent = fake_server.stats["last_request"]["body"]["messages"]
    assert fake_server.stats["bad_request"] == 0  # the fake refuses tool turns out of the API's order
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": orjson.loads(c.arguments)} for c in first.tool_calls
    ]
    assert sent[2]["content"] == [
        {"type": "tool_result", "tool_use_id": c.id, "content": '{"temp_c": 21, "sky": "clear"}'}
        for c in first.tool_calls
    ]
    assert second.tool_calls is None and second.finish_reason == "stop"
    assert "get_weather returned" in second.text and "stock_price returned" in second.text


def test_anthropic_keeps_invalid_arguments_readable_and_text_beside_calls() -> None:
    provider = LLMFactory.create(CLAUDE, api_base="http://127.0.0.1:9")
    calls = [{"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Os'}}]
    messages = [*ASK, {"role": "assistant", "content": "Let me look.", "tool_calls": calls}]
    messages.append({"role": "tool", "tool_call_id": "t1", "name": "get_weather", "content": "error: bad JSON"})
    body = provider.request_payload(messages, tools=TOOLS)  # type: ignore[attr-defined]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"arguments": '{"city": "Os'}},
    ]
    assert "tool_choice" not in body  # none asked for: the API's default (auto)


# --- Gemini ------------------------------------------------------------------------------------------------

GEMINI = "gemini/gemini-2.5-flash"


def test_gemini_sends_function_declarations_and_gives_its_calls_stable_ids(fake_server) -> None:
    answer = ask(
        build(fake_server, GEMINI), tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}}
    )
    body = fake_server.stats["last_request"]["body"]
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "get_weather", "description": "Forecast", "parametersJsonSchema": WEATHER},
                {"name": "stock_price", "description": "Quote", "parametersJsonSchema": STOCKS},
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    assert answer.finish_reason == "tool_calls" and answer.text == ""  # finishReason STOP with functionCall parts
    assert answer.tool_calls and answer.tool_calls[0].name == "get_weather" and valid(answer.tool_calls[0])
    # No id on the wire: one made from the answer, the same each time the same body is read.
    provider = build(fake_server, GEMINI)
    raw = answer.raw_response
    again = provider.answer_from(raw, {})  # type: ignore[attr-defined]
    assert again.tool_calls == answer.tool_calls and answer.tool_calls[0].id.startswith("call_")


def test_gemini_old_models_get_the_openapi_subset_and_modes_map() -> None:
    provider = LLMFactory.create("gemini/gemini-1.5-pro", api_base="http://127.0.0.1:9")
    body = provider.request_payload(ASK, tools=TOOLS, tool_choice="none")  # type: ignore[attr-defined]
    declaration = body["tools"][0]["functionDeclarations"][0]
    assert declaration["parameters"]["type"] == "OBJECT" and "parametersJsonSchema" not in declaration
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    required = provider.request_payload(ASK, tools=TOOLS, tool_choice="required")  # type: ignore[attr-defined]
    assert required["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_gemini_round_trip_sends_function_calls_and_responses(fake_server) -> None:
    fake_server.parallel_tool_calls = 2
    first = ask(build(fake_server, GEMINI), tools=TOOLS)
    assert first.tool_calls and len({c.id for c in first.tool_calls}) == 2
    dialog = follow_up(first)
    dialog[-1]["content"] = "plain text result"
    second = ask(build(fake_server, GEMINI), dialog, tools=TOOLS)
    contents = fake_server.stats["last_request"]["body"]["contents"]
    assert fake_server.stats["bad_request"] == 0  # the fake refuses responses that do not match the calls
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"] == [
        {"functionCall": {"name": c.name, "args": orjson.loads(c.arguments)}} for c in first.tool_calls
    ]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21, "sky": "clear"}}},
        {"functionResponse": {"name": "stock_price", "response": {"output": "plain text result"}}},
    ]
    assert second.tool_calls is None and second.finish_reason == "stop"
    assert "get_weather returned" in second.text and "plain text result" in second.text


def test_gemini_3_sends_thought_signatures_back() -> None:
    provider = LLMFactory.create("gemini/gemini-3-pro-preview", api_base="http://127.0.0.1:9")
    part = {"functionCall": {"name": "get_weather", "args": {"city": "Oslo", "days": 1}}, "thoughtSignature": "sig-1"}
    data = {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP"}], "responseId": "r1"}
    answer = provider.answer_from(data, {})  # type: ignore[attr-defined]
    assert answer.tool_calls and answer.tool_calls[0].arguments == '{"city":"Oslo","days":1}'
    recorded = [{"id": "call_elsewhere", "type": "function", "function": {"name": "stock_price", "arguments": "{}"}}]
    messages = [
        *ASK,
        {"role": "assistant", "content": "", "tool_calls": [c.wire() for c in answer.tool_calls] + recorded},
    ]
    parts = provider.request_payload(messages, tools=TOOLS)["contents"][1]["parts"]  # type: ignore[attr-defined]
    assert [p["thoughtSignature"] for p in parts] == ["sig-1", "skip_thought_signature_validator"]


# --- the offline built-in model ----------------------------------------------------------------------------


def test_offline_model_calls_the_matching_tool_then_reports_the_result() -> None:
    offline = LLMFactory.create("offline")
    weather = [{"role": "user", "content": "What will the weather be like in Oslo this week?"}]
    answer = ask(offline, weather, tools=TOOLS)
    assert answer.finish_reason == "tool_calls" and answer.text == "" and answer.tool_calls
    (call,) = answer.tool_calls
    assert call.name == "get_weather" and valid(call)  # "weather" matches the name; days within 1..7
    assert ask(LLMFactory.create("offline"), weather, tools=TOOLS) == answer  # deterministic
    stocks = [{"role": "user", "content": "Quote me the stock price of ACME."}]
    assert [c.name for c in ask(offline, stocks, tools=TOOLS).tool_calls or ()] == ["stock_price"]

    dialog = [*weather, {"role": "assistant", "content": "", "tool_calls": [call.wire()]}]
    dialog.append({"role": "tool", "tool_call_id": call.id, "name": call.name, "content": "Sunny, 21 C"})
    after = ask(offline, dialog, tools=TOOLS)
    assert (
        after.tool_calls is None and after.finish_reason == "stop" and "get_weather returned Sunny, 21 C" in after.text
    )
    assert ask(offline, weather, tools=TOOLS, tool_choice="none").tool_calls is None
    forced = {"type": "function", "function": {"name": "stock_price"}}
    assert [c.name for c in ask(offline, weather, tools=TOOLS, tool_choice=forced).tool_calls or ()] == ["stock_price"]


def test_offline_simulator_writes_a_result_from_the_call_not_from_its_instructions() -> None:
    import asyncio

    from afterimage_cli.tools.definitions import ToolDefinition
    from afterimage_cli.tools.sources import SimulatedResults

    source = SimulatedResults(LLMFactory.create("offline"))
    hotel = ToolDefinition(name="book_hotel", description="Book a room.", parameters={"type": "object"})
    result = asyncio.run(source.result(hotel, {"city": "Lisbon", "nights": 3}, "A room in Lisbon, please.", []))
    assert result in ("book_hotel done: city Lisbon, nights 3", "city Lisbon", "nights 3")  # said from the call
    assert "Reply with JSON" not in result  # the simulator's instructions were echoed as the result


def test_offline_tools_requests_come_from_the_descriptions_and_arguments_from_the_schemas_examples() -> None:
    import asyncio

    import orjson

    from afterimage_cli.instructions.tools import TOOLS_PROMPT

    offline = LLMFactory.create("offline")
    prompt = TOOLS_PROMPT.format(
        targets="book_hotel (Book a room in a city), then get_weather (The current weather in a city)",
        tools="- book_hotel(city)\n- get_weather(city)",
        chain="these tools in turn",
        persona="",
    )
    request = asyncio.run(offline.acomplete([{"role": "user", "content": prompt}])).text
    assert request == "Please book a room in a city, and then I need the current weather in a city."
    city = {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Porto"}}}
    tool = {"type": "function", "function": {"name": "book_hotel", "description": "Book a room", "parameters": city}}
    (call,) = ask(offline, [{"role": "user", "content": request}], tools=[tool]).tool_calls or ()
    assert orjson.loads(call.arguments) == {"city": "Porto"}  # the schema's example, not a phrase of the request


# --- the response cache and batch requests -----------------------------------------------------------------


def test_cache_keys_on_tools_and_keeps_the_calls(fake_server, tmp_path) -> None:
    from afterimage_cli.providers.cache import CachedProvider, ResponseCache

    cache = ResponseCache(tmp_path / "cache.sqlite")
    cached = CachedProvider(build(fake_server, "openai/fake-model"), cache, {})
    other_tools = [TOOLS[1]]

    async def go() -> list[LLMResponse]:
        answers = [
            await cached.acomplete(ASK, tools=TOOLS),
            await cached.acomplete(ASK, tools=other_tools),
            await cached.acomplete(ASK, tools=TOOLS, tool_choice="required"),
            await cached.acomplete(ASK, tools=TOOLS),
            await cached.acomplete(ASK),
            await cached.acomplete(ASK, tools=None, tool_choice=None),
        ]
        await cached.aclose()
        return answers

    first, other, required, again, plain, no_tools = asyncio.run(go())
    cache.close()
    assert fake_server.stats["requests"] == 4  # different tools or tool_choice: different entries
    assert plain.tool_calls is None and no_tools.cached  # no tools offered: the plain request's entry
    assert other.tool_calls and other.tool_calls[0].name == "stock_price"
    assert again.cached and again.tool_calls == first.tool_calls and again.finish_reason == "tool_calls"
    reopened = ResponseCache(tmp_path / "cache.sqlite")
    key = ResponseCache.key("openai/fake-model", ASK, {"tools": TOOLS}, None)
    stored = reopened.get(key)
    reopened.close()
    assert stored is not None and stored.tool_calls == first.tool_calls  # kept on disk, not only in memory


@pytest.mark.parametrize("model", ["openai/fake-model", CLAUDE])
def test_batch_lines_carry_the_tools_and_answer_with_calls(fake_server, model) -> None:
    from afterimage_cli.engine.batch_calls import custom_id
    from afterimage_cli.providers.batch import BatchRequest, batch_api_for
    from afterimage_cli.providers.cache import CallScope

    provider = build(fake_server, model)
    body = provider.request_payload(ASK, tools=TOOLS)  # type: ignore[attr-defined]
    bare = provider.request_payload(ASK)  # type: ignore[attr-defined]
    scope = CallScope(item=7)
    ids = {
        custom_id(scope, body),
        custom_id(scope, bare),
        custom_id(scope, provider.request_payload(ASK, tools=TOOLS[:1])),
    }  # type: ignore[attr-defined]
    assert len({i.rsplit("-", 2)[1] for i in ids}) == 3  # the request digest differs with the tools offered

    async def work() -> Any:
        api = batch_api_for(provider)
        try:
            results = await api.results(await api.submit([BatchRequest("line-0", body)], {}))
        finally:
            await api.aclose()
            await provider.aclose()
        return results

    line = asyncio.run(work())["line-0"]
    answer = provider.answer_from(line.body or {}, line.headers)  # type: ignore[attr-defined]
    assert answer.finish_reason == "tool_calls" and answer.tool_calls and valid(answer.tool_calls[0])
    assert fake_server.stats["requests"] == 0  # answered inside the batch


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_invalid_arguments_knob_in_the_object_protocols(fake_server, model) -> None:
    fake_server.invalid_tool_args_rate = 1.0
    answers = [
        ask(build(fake_server, model), [{"role": "user", "content": f"task {n}"}], tools=TOOLS) for n in range(3)
    ]
    calls = [c for a in answers for c in a.tool_calls or ()]
    assert len(calls) == 3 and not any(valid(c) for c in calls)
    assert all(isinstance(orjson.loads(c.arguments), dict) for c in calls)  # these protocols carry objects
