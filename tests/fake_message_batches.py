"""Anthropic Message Batches on the fake server (/v1/messages/batches), over the lifecycle and knobs of
tests/fake_batches.py: lines go in inline with the create, results come out as one JSONL file once the
batch has ended. Each line's Messages params are turned into the chat body the fake's chat logic reads,
and its answer back into an Anthropic Message (or error), as the real API shapes them."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from tests.fake_batches import FakeBatch, FakeBatches

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def add_routes(fake: FakeBatches, app: web.Application) -> None:
    """Message Batches: create, list, retrieve, results, cancel."""
    root = "/v1/messages/batches"

    def find(request: web.Request) -> FakeBatch | None:
        batch = fake.batches.get(request.match_info["batch_id"])
        return batch if batch is not None and batch.protocol == "anthropic" else None

    async def create(request: web.Request) -> web.Response:
        if refused := fake._gate(request, "anthropic"):
            return refused
        if request.headers.get("anthropic-version") is None:
            return fake._fail("anthropic", 400, "anthropic-version: header is required")
        raw = await request.read()
        requests = orjson.loads(raw).get("requests")
        if reason := refusal(requests, fake.batch_fail_validation):
            return fake._fail("anthropic", 400, reason)
        from tests.fake_batches import FakeBatch  # here: fake_batches imports this module

        lines = [(r["custom_id"], r["params"]) for r in requests]
        batch = FakeBatch(fake._new_id("msgbatch_"), "anthropic", lines, int(time.time()), input_bytes=len(raw))
        return fake._reply(request, message_batch(fake._created(batch), fake.server.url))

    async def listing(request: web.Request) -> web.Response:
        if refused := fake._gate(request, "anthropic"):
            return refused
        batches = [b for b in fake.batches.values() if b.protocol == "anthropic"]
        page = fake._page(batches, request, "after_id", lambda b: message_batch(b, fake.server.url))
        page = {k: v for k, v in page.items() if k != "object"}
        return web.json_response(page)

    async def retrieve(request: web.Request) -> web.Response:
        if refused := fake._gate(request, "anthropic"):
            return refused
        if (batch := find(request)) is None:
            return fake._fail("anthropic", 404, "No such message batch.")
        fake._poll(batch)
        return web.json_response(message_batch(batch, fake.server.url))

    async def results(request: web.Request) -> web.Response:
        if refused := fake._gate(request, "anthropic"):
            return refused
        if (batch := find(request)) is None or not batch.outcome:
            return fake._fail("anthropic", 404, "No results for this message batch (yet).")
        lines = []
        for custom_id, (status, answer) in batch.answers.items():
            result = {"type": "succeeded", "message": answer} if status < 400 else {"type": "errored", "error": answer}
            lines.append({"custom_id": custom_id, "result": result})
        kind = "expired" if batch.outcome == "expired" else "canceled"
        lines += [{"custom_id": custom_id, "result": {"type": kind}} for custom_id in batch.not_run]
        fake._rng.shuffle(lines)
        body = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        return web.Response(body=body, content_type="application/binary")

    async def cancel(request: web.Request) -> web.Response:
        if refused := fake._gate(request, "anthropic"):
            return refused
        if (batch := find(request)) is None:
            return fake._fail("anthropic", 404, "No such message batch.")
        batch.cancelling = batch.cancelling or not batch.outcome
        return web.json_response(message_batch(batch, fake.server.url))

    app.router.add_post(root, create)
    app.router.add_get(root, listing)
    app.router.add_get(f"{root}/{{batch_id}}", retrieve)
    app.router.add_get(f"{root}/{{batch_id}}/results", results)
    app.router.add_post(f"{root}/{{batch_id}}/cancel", cancel)


def message_batch(batch: FakeBatch, server_url: str) -> dict[str, Any]:
    """The MessageBatch object: counts other than `processing` stay zero until the batch has ended."""
    counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
    if batch.outcome:
        counts["succeeded"] = sum(1 for s, _ in batch.answers.values() if s < 400)
        counts["errored"] = len(batch.answers) - counts["succeeded"]
        counts["expired" if batch.outcome == "expired" else "canceled"] = len(batch.not_run)
    else:
        counts["processing"] = len(batch.lines)
    status = "ended" if batch.outcome else "canceling" if batch.cancelling else "in_progress"
    base = server_url + f"/v1/messages/batches/{batch.id}"
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "ended_at": iso(batch.ended_at),
        "created_at": iso(batch.created_at),
        "expires_at": iso(batch.created_at + 86400),
        "archived_at": None,
        "cancel_initiated_at": iso(batch.created_at) if batch.cancelling else None,
        "results_url": base + "/results" if batch.outcome else None,
    }


def refusal(requests: Any, fail_line: int | None) -> str | None:
    """Why Anthropic would refuse the create with a 400, naming the request (requests.N), or None."""
    if not isinstance(requests, list) or not 1 <= len(requests) <= 100_000:
        return "requests: must be a list of 1 to 100000 items"
    seen: set[str] = set()
    for index, entry in enumerate(requests):
        custom_id = entry.get("custom_id") if isinstance(entry, dict) else None
        params = entry.get("params") if isinstance(entry, dict) else None
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            return f"requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        if custom_id in seen:
            return f"requests.{index}.custom_id: custom_id {custom_id!r} is not unique within the batch"
        seen.add(custom_id)
        if not isinstance(params, dict) or index + 1 == fail_line or "max_tokens" not in params:
            return f"requests.{index}.params.max_tokens: Field required"
    return None


def iso(stamp: int | None) -> str | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")


def blocks_text(content: Any) -> str:
    """The text of Anthropic content: a string, or the text blocks of a list."""
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content or () if isinstance(b, dict) and b.get("type") == "text")


def openai_request(params: dict[str, Any]) -> dict[str, Any]:
    """Anthropic Messages params as the chat body the fake's chat logic reads (tools, tool choice and tool
    turns as the Messages routes read them)."""
    from tests.fake_anthropic import FakeAnthropic

    messages = [{"role": "system", "content": blocks_text(params["system"])}] if params.get("system") else []
    messages += [{"role": m.get("role"), "content": blocks_text(m.get("content"))} for m in params.get("messages", ())]
    if params.get("tools") and FakeAnthropic.tool_refusal(params) is None:
        messages = FakeAnthropic.chat_view(FakeAnthropic.prompt_blocks(params))
    request = {"model": params.get("model"), "messages": messages, "max_tokens": params.get("max_tokens")}
    if params.get("tools"):
        tools = [{"name": t.get("name"), "parameters": t.get("input_schema")} for t in params["tools"]]
        request["tools"] = [{"type": "function", "function": tool} for tool in tools]
        choice = params.get("tool_choice") or {}
        forced = {"type": "function", "function": {"name": choice.get("name")}}
        request["tool_choice"] = {"tool": forced, "any": "required", "none": "none"}.get(choice.get("type"), "auto")
    output = params.get("output_format")
    if isinstance(output, dict) and output.get("type") == "json_schema":
        request["response_format"] = {"type": "json_schema", "json_schema": {"schema": output.get("schema")}}
    return request


def anthropic_answer(status: int, answer: dict[str, Any]) -> dict[str, Any]:
    """A chat completion as an Anthropic Message, or its error as an Anthropic error response."""
    if status >= 400:
        message = str((answer.get("error") or {}).get("message") or "")
        kind = "api_error" if status >= 500 else "invalid_request_error"
        if "context size" in message:
            tokens = re.findall(r"\d+", message)
            message = f"prompt is too long: {tokens[0]} tokens > {tokens[-1]} maximum"
        return {"type": "error", "error": {"type": kind, "message": message or "Internal server error"}}
    choice, usage = answer["choices"][0], answer["usage"]
    content: list[dict[str, Any]] = []
    if choice["message"].get("reasoning_content"):
        content.append({"type": "thinking", "thinking": choice["message"]["reasoning_content"], "signature": "fake"})
    calls = choice["message"].get("tool_calls") or []
    if choice["message"].get("content") is not None:
        content.append({"type": "text", "text": choice["message"]["content"]})
    for call in calls:
        try:
            arguments = orjson.loads(call["function"]["arguments"])
        except orjson.JSONDecodeError:
            arguments = {}
        block = {"type": "tool_use", "id": call["id"].replace("call_", "toolu_"), "name": call["function"]["name"]}
        content.append({**block, "input": arguments})
    return {
        "id": answer["id"].replace("chatcmpl-", "msg_"),
        "type": "message",
        "role": "assistant",
        "model": answer["model"],
        "content": content,
        "stop_reason": "max_tokens" if choice["finish_reason"] == "length" else "tool_use" if calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"]},
    }
