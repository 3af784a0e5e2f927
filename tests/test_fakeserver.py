"""Tests for the fake OpenAI server: every knob over plain HTTP, and litellm accepting its answers."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from pydantic import BaseModel, Field

from tests.fakeserver import END_TOKEN, FakeOpenAIServer, sample, violate

USER_MSG = [{"role": "user", "content": "Explain how photosynthesis turns light into sugar in green plants, please"}]
SIMULATOR_SYSTEM = {"role": "system", "content": "You are a Simulated User talking to an AI assistant."}
# One pooled client: building an httpx client per request costs more than the request itself.
CLIENT = httpx.Client()


def chat(srv: FakeOpenAIServer, key: str = "sk-test", timeout: float = 5.0, **body: Any) -> httpx.Response:
    """POST one chat completion."""
    body = {"model": "fake-model", "messages": USER_MSG, **body}
    headers = {"Authorization": f"Bearer {key}"}
    return CLIENT.post(f"{srv.api_base}/chat/completions", json=body, headers=headers, timeout=timeout)


async def burst(srv: FakeOpenAIServer, n: int, **body: Any) -> list[int]:
    """Send n chat completions at once; their status codes."""
    payload = {"model": "fake-model", "messages": USER_MSG, **body}
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=srv.api_base, limits=limits, timeout=10) as client:
        responses = await asyncio.gather(*(client.post("/chat/completions", json=payload) for _ in range(n)))
    return [r.status_code for r in responses]


class Address(BaseModel):
    city: str
    zip_code: str = Field(min_length=5, max_length=5)


class Person(BaseModel):
    name: str
    age: int = Field(ge=18, lt=120)
    score: float = Field(gt=0, le=1)
    role: str = Field(json_schema_extra={"enum": ["admin", "user"]})
    nickname: str | None = None
    address: Address
    previous: list[Address] = Field(min_length=1, max_length=1)
    tags: list[str]
    active: bool
    born: str = Field(json_schema_extra={"format": "date"})
    manager: Person | None = None


def structured_format(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style json_schema response_format."""
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}


# --- content ---------------------------------------------------------------------------------


def test_chat_completion_shape_and_token_counts(fake_server: FakeOpenAIServer) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *USER_MSG]
    response = chat(fake_server, model="my-model", messages=messages)
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion" and data["model"] == "my-model" and data["id"]
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    content = choice["message"]["content"]
    # The end of the question, then one fact per turn of the dialog (so a well-behaved dialog never repeats).
    assert content == (
        "Here is an answer about into sugar in green plants, please: "
        "start with the defaults, measure one change at a time, and keep notes."
    )
    assert "reasoning_content" not in choice["message"]
    prompt = sum(len(m["content"]) // 4 + 1 for m in messages)
    usage = {k: v for k, v in data["usage"].items() if not k.endswith("_details")}
    assert usage == {
        "prompt_tokens": prompt,
        "completion_tokens": len(content) // 4 + 1,
        "total_tokens": prompt + len(content) // 4 + 1,
    }
    assert data["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    stats = fake_server.stats
    assert stats["requests"] == stats["ok"] == 1
    assert stats["prompt_tokens"] == prompt and stats["completion_tokens"] == len(content) // 4 + 1
    assert stats["by_key"] == {"sk-test": 1} and stats["models"] == {"my-model": 1}
    # The path without /v1 answers too, identically.
    again = httpx.post(f"{fake_server.url}/chat/completions", json={"model": "my-model", "messages": messages})
    assert again.json()["choices"] == data["choices"]


def test_defective_turns_are_drawn_per_request_like_a_seeded_model(fake_server: FakeOpenAIServer) -> None:
    def content(**body: Any) -> str:
        return chat(fake_server, **body).json()["choices"][0]["message"]["content"]

    fake_server.rate_echo = 1.0
    assert content() == USER_MSG[0]["content"]  # the answer echoes the question
    fake_server.rate_echo = 0.5
    # The same request gets the same turn; another seed draws again.
    by_seed = {seed: content(seed=seed) for seed in range(16)}
    assert all(content(seed=seed) == text for seed, text in list(by_seed.items())[:4])
    assert 0 < sum(text == USER_MSG[0]["content"] for text in by_seed.values()) < 16
    fake_server.rate_echo = 0.0
    dialog = [SIMULATOR_SYSTEM, {"role": "assistant", "content": "How do leaves work?"}]
    dialog += [{"role": "user", "content": "Leaves capture light with chlorophyll."}]
    fake_server.defect_words = {"leaves": "copy"}
    assert content(messages=dialog) == "Leaves capture light with chlorophyll."  # the simulated user copies
    fake_server.defect_words = {"leaves": "repeat"}
    assert content(messages=dialog) == "How do leaves work?"  # … or asks its opening again
    fake_server.defect_words = {"leaves": "leak"}
    assert content(messages=dialog).startswith("<assistant_last_message>\nCan you tell me more about")
    assert fake_server.stats["defects"]["echo"] > 0 and fake_server.stats["defects"]["copy"] == 1


def test_user_simulator_questions_and_end_rate(fake_server: FakeOpenAIServer) -> None:
    messages = [SIMULATOR_SYSTEM, {"role": "assistant", "content": "Plants use chlorophyll to capture sunlight."}]
    first = chat(fake_server, messages=messages).json()["choices"][0]["message"]["content"]
    assert first == "Can you tell me more about Plants use chlorophyll to capture sunlight?"
    assert chat(fake_server, messages=messages).json()["choices"][0]["message"]["content"] == first
    fake_server.end_rate = 1.0
    assert chat(fake_server, messages=messages).json()["choices"][0]["message"]["content"] == END_TOKEN
    fake_server.end_rate = 0.5
    answers = [chat(fake_server, messages=messages).json()["choices"][0]["message"]["content"] for _ in range(40)]
    assert 5 < answers.count(END_TOKEN) < 35 and first in answers


def test_reasoning_and_responder(fake_server: FakeOpenAIServer) -> None:
    fake_server.reasoning = True
    message = chat(fake_server).json()["choices"][0]["message"]
    assert message["reasoning_content"] and message["content"].startswith("Here is an answer")
    fake_server.responder = lambda body: f"custom for {body['model']}"
    message = chat(fake_server, response_format={"type": "json_object"}).json()["choices"][0]["message"]
    assert message["content"] == "custom for fake-model"


def test_structured_output_satisfies_the_schema(fake_server: FakeOpenAIServer) -> None:
    schema = Person.model_json_schema()
    response = chat(fake_server, response_format=structured_format(schema))
    person = Person.model_validate_json(response.json()["choices"][0]["message"]["content"])
    assert person.role == "admin" and 18 <= person.age < 120 and len(person.address.zip_code) == 5
    content = chat(fake_server, response_format={"type": "json_object"}).json()["choices"][0]["message"]["content"]
    assert isinstance(httpx.Response(200, content=content).json(), dict)


@pytest.mark.parametrize(
    "schema",
    [
        Person.model_json_schema(),
        {"type": "array", "items": {"type": "integer", "exclusiveMinimum": 0, "maximum": 1}, "minItems": 2},
        {"oneOf": [{"type": "null"}, {"type": ["null", "number"], "minimum": 2.5}]},
        {"type": "object", "properties": {"ids": {"type": "array", "items": {"const": 7}}}, "required": ["ids"]},
        {"type": "string", "format": "date-time"},
        {"type": "object", "additionalProperties": {"type": "integer"}},
        {"allOf": [{"$ref": "#/definitions/A"}], "definitions": {"A": {"type": "boolean"}}},
    ],
)
def test_sample_and_violate(schema: dict[str, Any]) -> None:
    value = sample(schema)
    jsonschema.validate(value, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(violate(schema, value), schema)


def test_rate_bad_structured(fake_server: FakeOpenAIServer) -> None:
    fake_server.rate_bad_structured = 1.0
    schema = Person.model_json_schema()
    content = chat(fake_server, response_format=structured_format(schema)).json()["choices"][0]["message"]["content"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(httpx.Response(200, content=content).json(), schema)
    # Plain requests are not structured, so the knob leaves them alone.
    assert chat(fake_server).json()["choices"][0]["message"]["content"].startswith("Here is an answer")
    assert fake_server.stats["bad_structured"] == 1 and fake_server.stats["ok"] == 2


def test_embeddings_and_models(fake_server: FakeOpenAIServer) -> None:
    url = f"{fake_server.api_base}/embeddings"
    floats = httpx.post(url, json={"model": "emb", "input": ["alpha", "beta"]}).json()
    assert [d["index"] for d in floats["data"]] == [0, 1] and floats["usage"]["prompt_tokens"] == 4
    vector = floats["data"][0]["embedding"]
    assert len(vector) == 16 and abs(sum(v * v for v in vector) - 1) < 1e-9
    single = httpx.post(url, json={"model": "emb", "input": "alpha", "encoding_format": "base64"}).json()
    decoded = struct.unpack("<16f", base64.b64decode(single["data"][0]["embedding"]))
    assert decoded == pytest.approx(vector, abs=1e-6)
    assert fake_server.stats["embeddings"] == 2 and fake_server.stats["models"] == {"emb": 2}
    models = httpx.get(f"{fake_server.api_base}/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "fake-model"


# --- failures --------------------------------------------------------------------------------


def test_rate_429_with_and_without_retry_after(fake_server: FakeOpenAIServer) -> None:
    fake_server.rate_429 = 1.0
    response = chat(fake_server)
    assert response.status_code == 429 and response.headers["Retry-After"] == "0.05"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    fake_server.retry_after = None
    assert "Retry-After" not in chat(fake_server).headers
    assert fake_server.stats["429"] == 2 and fake_server.stats["ok"] == 0


def test_rate_500_and_garbage(fake_server: FakeOpenAIServer) -> None:
    fake_server.rate_500 = 1.0
    response = chat(fake_server)
    assert response.status_code == 500 and response.json()["error"]["type"] == "server_error"
    fake_server.rate_500, fake_server.rate_garbage = 0.0, 1.0
    response = chat(fake_server)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert fake_server.stats["500"] == 1 and fake_server.stats["garbage"] == 1


def test_fractional_rates_are_reproducible_from_the_seed() -> None:
    def outcomes(seed: int) -> list[int]:
        with FakeOpenAIServer(rate_429=0.3, rate_500=0.2, rate_garbage=0.1, seed=seed) as srv:
            return [chat(srv).status_code for _ in range(60)]

    first = outcomes(7)
    assert first == outcomes(7) and first != outcomes(8)
    assert 8 < first.count(429) < 30 and 3 < first.count(500) < 22 and 200 in first


def test_fail_status_and_reject_keys(fake_server: FakeOpenAIServer) -> None:
    fake_server.reject_keys = {"sk-bad"}
    bad = chat(fake_server, key="sk-bad")
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
    assert chat(fake_server, key="sk-good").status_code == 200
    fake_server.fail_status = 400
    response = chat(fake_server, key="sk-good")
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    fake_server.fail_status = None
    assert chat(fake_server, key="sk-good").status_code == 200
    assert fake_server.stats["by_key"] == {"sk-bad": 1, "sk-good": 3} and fake_server.stats["rejected"] == 2


def test_outage_window_drops_connections_or_answers_a_status() -> None:
    srv = FakeOpenAIServer(down_after=2, down_for=3600).start()
    try:
        assert [chat(srv).status_code for _ in range(2)] == [200, 200]
        with pytest.raises(httpx.RemoteProtocolError):  # the connection is dropped, as a restart drops it
            chat(srv)
        srv.down_status = 503
        assert chat(srv).status_code == 503
        srv.down_after = None  # back up
        assert chat(srv).status_code == 200
        assert srv.stats["down"] == 2 and srv.stats["ok"] == 3
    finally:
        srv.stop()
    srv = FakeOpenAIServer(down_after=0, down_for=0.0).start()  # a zero-length outage is none
    try:
        assert chat(srv).status_code == 200
    finally:
        srv.stop()


def test_stream_and_bad_json_are_400(fake_server: FakeOpenAIServer) -> None:
    assert chat(fake_server, stream=True).status_code == 400
    assert httpx.post(f"{fake_server.api_base}/chat/completions", content=b"{nope").status_code == 400
    assert fake_server.stats["bad_request"] == 2


def test_gather_and_in_flight(fake_server: FakeOpenAIServer) -> None:
    fake_server.latency = 0.05
    fake_server.gather = 20  # no request is answered before all twenty are in: concurrency without timing
    assert asyncio.run(burst(fake_server, 20)) == [200] * 20
    assert fake_server.stats["max_in_flight"] == 20 and fake_server.stats["in_flight"] == 0


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_admit_rps_token_bucket(fake_server: FakeOpenAIServer) -> None:
    fake_server.clock = clock = FrozenClock(1000.0)  # the bucket starts full: one second's worth
    fake_server.admit_rps = 10
    fake_server.rate_limit_headers = True
    codes = asyncio.run(burst(fake_server, 30))
    assert codes.count(200) == 10 and codes.count(429) == 20
    clock.now += 0.25  # refills 2.5 tokens: two more requests
    response = chat(fake_server)
    assert response.status_code == 200 and int(response.headers["x-ratelimit-remaining-requests"]) == 1
    assert response.headers["x-ratelimit-reset-requests"]
    assert [chat(fake_server).status_code for _ in range(2)] == [200, 429]
    fake_server.admit_rps = None
    assert asyncio.run(burst(fake_server, 30)) == [200] * 30


def test_hang_until_flipped_or_stopped() -> None:
    srv = FakeOpenAIServer(hang=True).start()
    try:
        with pytest.raises(httpx.ReadTimeout):
            chat(srv, timeout=0.2)
        srv.hang = False
        assert chat(srv).status_code == 200
        srv.hang = True
        outcome: list[BaseException | httpx.Response] = []

        def waiting() -> None:
            try:
                outcome.append(chat(srv, timeout=10))
            except httpx.HTTPError as exc:
                outcome.append(exc)

        client = threading.Thread(target=waiting)
        client.start()
        while srv.stats["hung"] < 2:
            time.sleep(0.01)
        assert srv.stats["in_flight"] >= 1
    finally:
        srv.stop()
    client.join()
    # stop() drops the hung connection instead of leaving the client to its 10 s timeout.
    assert isinstance(outcome[0], httpx.HTTPError) and not isinstance(outcome[0], httpx.TimeoutException)


def test_reset_stats_snapshot_and_unknown_knob(fake_server: FakeOpenAIServer) -> None:
    chat(fake_server)
    snapshot = fake_server.snapshot()
    fake_server.reset_stats()
    assert snapshot["ok"] == 1 and fake_server.stats["ok"] == 0 and fake_server.stats["by_key"] == {}
    with pytest.raises(TypeError):
        FakeOpenAIServer(rate_four_twenty_nine=1.0)


def test_session_server_is_well_behaved(fake_server_session: FakeOpenAIServer) -> None:
    assert chat(fake_server_session).status_code == 200


def test_command_line_mode() -> None:
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "tests.fakeserver", "--port", "0", "--latency", "0.01", "--reject-key", "sk-x"]
    proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        post = httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": USER_MSG})
        assert post.status_code == 200
        assert httpx.post(f"{url}/_knobs", json={"rate_500": 1.0}).json() == {"ok": True}
        assert httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": []}).status_code == 500
        headers = {"Authorization": "Bearer sk-x"}
        assert httpx.post(f"{url}/v1/embeddings", json={"input": "a"}, headers=headers).status_code == 401
        stats = httpx.get(f"{url}/_stats").json()
        assert stats["ok"] == 1 and stats["500"] == 1 and stats["rejected"] == 1
        assert httpx.post(f"{url}/_knobs", json={"nope": 1}).status_code == 400
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


# --- through litellm ---------------------------------------------------------------------------


def test_litellm_accepts_the_answers(fake_server: FakeOpenAIServer) -> None:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    litellm.suppress_debug_info = True
    common: dict[str, Any] = {
        "model": "openai/fake-model",
        "api_base": fake_server.api_base,
        "api_key": "sk-test",
        "max_retries": 0,
    }

    async def run() -> None:
        fake_server.reasoning = True
        plain = await litellm.acompletion(messages=USER_MSG, **common)
        assert plain.choices[0].message.content.startswith("Here is an answer about into sugar")
        assert plain.usage.prompt_tokens == len(USER_MSG[0]["content"]) // 4 + 1
        assert plain.choices[0].message.reasoning_content

        schema = Person.model_json_schema()
        structured = await litellm.acompletion(messages=USER_MSG, response_format=structured_format(schema), **common)
        Person.model_validate_json(structured.choices[0].message.content)

        fake_server.rate_429 = 1.0
        with pytest.raises(litellm.RateLimitError):
            await litellm.acompletion(messages=USER_MSG, **common)
        fake_server.rate_429 = 0.0
        fake_server.reject_keys = {"sk-test"}
        with pytest.raises(litellm.AuthenticationError):
            await litellm.acompletion(messages=USER_MSG, **common)
        fake_server.reject_keys = set()

        embedded = await litellm.aembedding(
            model="openai/fake-embed", input=["x"], api_base=fake_server.api_base, api_key="sk-test"
        )
        assert len(embedded.data[0]["embedding"]) == 16
        await litellm.close_litellm_async_clients()

    asyncio.run(run())
    assert fake_server.stats["by_key"] == {"sk-test": 5} and fake_server.stats["models"]["fake-model"] == 4


def test_hang_after_answers_the_first_requests_then_hangs() -> None:
    srv = FakeOpenAIServer(hang_after=2).start()
    try:
        assert [chat(srv).status_code for _ in range(2)] == [200, 200]
        with pytest.raises(httpx.ReadTimeout):
            chat(srv, timeout=0.2)
        assert srv.stats["hung"] == 1 and srv.stats["ok"] == 2
    finally:
        srv.stop()


# --- OpenAI wire shapes: usage details, forced tool calls, Azure's route -------------------------------


def test_answers_parse_as_the_openai_sdks_types_with_cached_tokens(fake_server: FakeOpenAIServer) -> None:
    from openai.types.chat import ChatCompletion

    fake_server.cached_share = 0.5
    data = chat(fake_server).json()
    completion = ChatCompletion.model_validate(data)
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    cached = completion.usage.prompt_tokens_details.cached_tokens
    assert cached == completion.usage.prompt_tokens // 2 > 0 and fake_server.stats["cached_tokens"] == cached
    assert completion.usage.completion_tokens_details is not None
    fake_server.cached_share = 1.0  # the whole prompt
    usage = chat(fake_server).json()["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == usage["prompt_tokens"]


def test_a_forced_tool_is_called_with_arguments_that_fit_its_parameters(fake_server: FakeOpenAIServer) -> None:
    from openai.types.chat import ChatCompletion

    parameters = Person.model_json_schema()
    tools = [{"type": "function", "function": {"name": "json_tool_call", "parameters": parameters}}]
    forced = {"type": "function", "function": {"name": "json_tool_call"}}
    completion = ChatCompletion.model_validate(chat(fake_server, tools=tools, tool_choice=forced).json())
    message = completion.choices[0].message
    assert message.content is None and message.tool_calls is not None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.type == "function" and call.function.name == "json_tool_call"
    Person.model_validate_json(call.function.arguments)
    # Tools offered but not forced: the model calls one (tests/fake_tools.py) unless tool_call_rate says not to.
    offered = chat(fake_server, tools=tools).json()["choices"][0]
    assert offered["finish_reason"] == "tool_calls" and offered["message"]["content"] is None
    fake_server.tool_call_rate = 0.0
    plain = chat(fake_server, tools=tools).json()["choices"][0]["message"]
    assert plain["content"] and "tool_calls" not in plain


def test_azure_deployment_route_takes_an_api_key_header(fake_server: FakeOpenAIServer) -> None:
    url = f"{fake_server.url}/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"
    response = CLIENT.post(url, json={"model": "my-deployment", "messages": USER_MSG}, headers={"api-key": "az-key"})
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]
    assert fake_server.stats["by_key"] == {"az-key": 1}
    last = fake_server.stats["last_request"]
    assert last["path"].endswith("?api-version=2024-10-21") and last["auth"] == "api-key"
    assert last["body"]["model"] == "my-deployment"
