"""The Anthropic Messages API on the fake server: POST /v1/messages, and GET /v1/models for a client that sends
`anthropic-version` (others get the OpenAI list). Shapes follow the official SDK's types (anthropic.types:
Message, Usage, TextBlock, ThinkingBlock, ToolUseBlock, ErrorResponse, ModelInfo; headers as the API documents).

Every knob of the server acts here too, through its own helpers (_handle, _content, _cut): latency, 429/500
rates and rate_529 (overloaded), rejected keys, outages, hangs, admission, truncation, bad structured output,
reasoning (a thinking block), rate-limit headers (anthropic-ratelimit-*, resets as RFC 3339 times). The
per-item refusals take Anthropic's form: a prompt over `context_tokens` is a 400 invalid_request_error
"prompt is too long", a filtered word an answer with stop_reason "refusal".

Like the real API it refuses (400) what a client must not send: no anthropic-version header, fields the API
does not know, a missing max_tokens (or one within the thinking budget), a `system` role or extra keys in
messages, a first turn that is not the user's, a forced tool choice with thinking on, a tool without an
object input_schema, and tool turns out of order (every tool_use answered by a tool_result in the next user
turn, results first in it, none for an id the previous turn did not call).

Tools offered and not forced by a `tool` choice are called as tests/fake_tools.py decides (tool_use blocks,
stop_reason "tool_use"); tool results are answered in text that quotes them. A forced `tool` choice is
structured output through a tool, as before.

Prompt caching is emulated: with a `cache_control` marker (a block's, or the top-level one that marks the
last block), the prompt up to the marker is written to the model's cache (cache_creation_input_tokens), and
a later prompt that starts with a cached prefix reads it (cache_read_input_tokens); the API's minimum
cacheable length is not emulated.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from tests import fake_tools
from tests import fakeserver as base

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
ERROR_MESSAGES = {
    400: "Invalid request.",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "model: not found",
    429: "This request would exceed the rate limit for your organization.",
    500: "Internal server error",
    529: "Overloaded",
}
# The top-level fields of a Messages request (anthropic.types.MessageCreateParams); `output_format` is the
# structured-outputs beta's older name for output_config.format, which litellm still sends.
REQUEST_FIELDS = frozenset(
    {"model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature"}
    | {"top_p", "top_k", "thinking", "tools", "tool_choice", "output_config", "output_format", "cache_control"}
    | {"container", "context_management", "diagnostics", "inference_geo", "mcp_servers", "service_tier", "speed"}
)


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _block_text(block: dict[str, Any]) -> str:
    if block.get("type") == "tool_result":
        content = block.get("content")
        return content if isinstance(content, str) else " ".join(_block_text(b) for b in _blocks(content))
    return str(
        block.get("text")
        or block.get("thinking")
        or (orjson.dumps(block["input"]).decode() if "input" in block else "")
    )


def _rfc3339(seconds_from_now: float) -> str:
    return datetime.fromtimestamp(time.time() + seconds_from_now, UTC).isoformat().replace("+00:00", "Z")


class FakeAnthropic:
    """The Anthropic protocol's routes, over one FakeOpenAIServer's knobs and counters."""

    def __init__(self, server: base.FakeOpenAIServer) -> None:
        self.server = server
        self.cached: set[bytes] = set()  # hashes of the prompt prefixes written to the cache

    # --- errors and headers ------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        """anthropic-ratelimit-* headers, when the server's rate_limit_headers knob asks for them."""
        server = self.server
        if not server.rate_limit_headers:
            return {}
        remaining = int(server._tokens_left) if server.admit_rps is not None else 9999
        return {
            "anthropic-ratelimit-requests-limit": "10000",
            "anthropic-ratelimit-requests-remaining": str(remaining),
            "anthropic-ratelimit-requests-reset": _rfc3339(1.0),
            "anthropic-ratelimit-tokens-limit": "1000000",
            "anthropic-ratelimit-tokens-remaining": "999000",
            "anthropic-ratelimit-tokens-reset": _rfc3339(1.0),
        }

    def error(self, status: int, message: str | None = None) -> web.Response:
        """An error as anthropic.types.ErrorResponse has it; 429 and 529 say when to retry."""
        kind = ERROR_TYPES.get(status, "api_error")
        text = message or ERROR_MESSAGES.get(status, f"Error {status}.")
        body = {"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_fake"}
        headers = self.headers()
        if status in (429, 529) and self.server.retry_after is not None:
            headers["retry-after"] = f"{self.server.retry_after:g}"
        return base._json(orjson.dumps(body), status, headers)

    def invalid(self, message: str) -> web.Response:
        self.server.stats["bad_request"] += 1
        return self.error(400, message)

    # --- routes ------------------------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.Response:
        if "anthropic-version" not in request.headers:
            return self.invalid("anthropic-version: header is required")
        return await self.server._handle(request, self.answer, self.error)

    @web.middleware
    async def models(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """GET /v1/models in Anthropic's shape for Anthropic clients; everything else goes on as it was."""
        if request.path != "/v1/models" or "anthropic-version" not in request.headers:
            return await handler(request)
        server = self.server
        server.stats["model_lists"] += 1
        if server.models_status is not None:
            return self.error(server.models_status)
        model = {
            "type": "model",
            "id": server.model_name,
            "display_name": server.model_name,
            "created_at": "2025-01-01T00:00:00Z",
            "lifecycle": "active",
        }
        page = {"data": [model], "has_more": False, "first_id": model["id"], "last_id": model["id"]}
        return base._json(orjson.dumps(page))

    # --- answers -----------------------------------------------------------------------------

    def refusal_of(self, body: dict[str, Any]) -> str | None:
        """Why the real API would refuse this body (400), or None."""
        unknown = sorted(set(body) - REQUEST_FIELDS)
        if unknown:
            return f"{unknown[0]}: Extra inputs are not permitted"
        if not isinstance(body.get("max_tokens"), int):
            return "max_tokens: Field required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: Field required"
        for i, message in enumerate(messages):
            extra = sorted(set(message) - {"role", "content"}) if isinstance(message, dict) else ["(not an object)"]
            if extra:
                return f"messages.{i}.{extra[0]}: Extra inputs are not permitted"
            if message.get("role") not in ("user", "assistant"):
                return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if messages[0]["role"] != "user":
            return 'messages: first message must use the "user" role'
        tool_refusal = self.tool_refusal(body)
        if tool_refusal:
            return tool_refusal
        thinking = body.get("thinking")
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        if isinstance(budget, int) and budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
        choice = body.get("tool_choice")
        if isinstance(thinking, dict) and thinking.get("type") != "disabled" and isinstance(choice, dict):
            if choice.get("type") in ("tool", "any"):
                return "Thinking may not be enabled when tool_choice forces tool use."
        return None

    @staticmethod
    def tool_refusal(body: dict[str, Any]) -> str | None:
        """Why the real API would refuse the request's tools or tool turns, or None."""
        for i, tool in enumerate(body.get("tools") or ()):
            schema = tool.get("input_schema") if isinstance(tool, dict) else None
            if not isinstance(schema, dict) or schema.get("type") != "object" or not tool.get("name"):
                return f"tools.{i}.custom.input_schema.type: Input should be 'object'"
        choice = body.get("tool_choice")
        if choice is not None and (
            not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none")
        ):
            return "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
        called: list[str] = []
        for i, message in enumerate(body["messages"]):
            blocks = _blocks(message["content"])
            results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
            if called and (
                sorted(map(str, results)) != sorted(called)
                or blocks[: len(results)] != [b for b in blocks if b.get("type") == "tool_result"]
            ):
                return (
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(called)}. Each `tool_use` block must have a corresponding `tool_result` block in "
                    "the next message, and tool_result blocks must come first."
                )
            if results and not called:
                return f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {results[0]}"
            called = [str(b.get("id")) for b in blocks if b.get("type") == "tool_use"]
            if called and message["role"] != "assistant":
                return f"messages.{i}: tool_use blocks may only appear in assistant turns"
        if called:
            return "messages: the last assistant turn called tools whose results were not sent"
        return None

    @staticmethod
    def prompt_blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
        """The prompt's blocks in order: the system prompt's, then each message's (each knows its role)."""
        blocks = [{**b, "role": "system"} for b in _blocks(body.get("system") or [])]
        for message in body["messages"]:
            blocks += [{**b, "role": message["role"]} for b in _blocks(message["content"])]
        if isinstance(body.get("cache_control"), dict) and blocks:
            blocks[-1] = {**blocks[-1], "cache_control": body["cache_control"]}
        return blocks

    def usage(self, model: str, blocks: list[dict[str, Any]], tokens: list[int]) -> dict[str, int]:
        """input / cache read / cache write tokens of a prompt, as the model's prompt cache would split them."""
        marked = [i for i, b in enumerate(blocks) if isinstance(b.get("cache_control"), dict)]
        total = sum(tokens)
        if not marked:
            return {"input_tokens": total, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
        digest, prefixes = model.encode(), []
        for block in blocks[: marked[-1] + 1]:
            clean = {k: v for k, v in block.items() if k != "cache_control"}
            digest = hashlib.sha256(digest + orjson.dumps(clean, option=orjson.OPT_SORT_KEYS)).digest()
            prefixes.append(digest)
        hit = max((i + 1 for i, d in enumerate(prefixes) if d in self.cached), default=0)
        read = sum(tokens[:hit])
        written = sum(tokens[hit : marked[-1] + 1])
        self.cached.update(prefixes[i] for i in marked)
        return {
            "input_tokens": total - read - written,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
        }

    def structured_schema(self, body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """(the schema the answer must fit, the tool to answer through or None for JSON output)."""
        config = body.get("output_config") if isinstance(body.get("output_config"), dict) else {}
        output = config.get("format") or body.get("output_format")
        if isinstance(output, dict) and isinstance(output.get("schema"), dict):
            return output["schema"], None
        tools = [t for t in body.get("tools") or () if isinstance(t, dict) and isinstance(t.get("input_schema"), dict)]
        choice = body.get("tool_choice") or {}
        forced = choice.get("type") == "tool"
        tool = next((t for t in tools if forced and t.get("name") == choice.get("name")), None)
        return (tool["input_schema"], str(tool["name"])) if tool else (None, None)

    @staticmethod
    def chat_view(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The conversation as the server's OpenAI helpers read it, a message per block (tool turns in
        OpenAI's form, a result named after the call it answers)."""
        names = {b.get("id"): b.get("name") for b in blocks if b.get("type") == "tool_use"}
        chat: list[dict[str, Any]] = []
        for b in blocks:
            if b.get("type") == "tool_result":
                call = b.get("tool_use_id")
                chat.append({"role": "tool", "tool_call_id": call, "name": names.get(call), "content": _block_text(b)})
            else:
                chat.append({"role": b["role"], "content": _block_text(b)})
        return chat

    def tool_calls(self, body: dict[str, Any], chat: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """The tool_use blocks the fake model answers with when tools are offered (not forced), or None."""
        tools = [{"name": t.get("name"), "parameters": t.get("input_schema")} for t in body.get("tools") or ()]
        choice = body.get("tool_choice") or {}
        mode = {"any": "required", "none": "none"}.get(str(choice.get("type")), "auto")
        calls = fake_tools.calls_for(self.server, tools, mode, chat, as_text=False)
        if not calls:
            return None
        if choice.get("disable_parallel_tool_use"):
            calls = calls[:1]
        ids = self.server._ids
        return [
            {"type": "tool_use", "id": f"toolu_fake{ids}_{n}", "name": c["name"], "input": c["arguments"]}
            for n, c in enumerate(calls)
        ]

    def answer(self, body: dict[str, Any]) -> web.Response:
        server, stats = self.server, self.server.stats
        refusal = self.refusal_of(body)
        if refusal:
            return self.invalid(refusal)
        blocks = self.prompt_blocks(body)
        tokens = [base._tokens(_block_text(b)) for b in blocks]
        if server.context_tokens is not None and sum(tokens) > server.context_tokens:
            stats["context_exceeded"] += 1
            return self.invalid(f"prompt is too long: {sum(tokens)} tokens > {server.context_tokens} maximum")
        chat = self.chat_view(blocks)
        joined = " ".join(m["content"] for m in chat).lower()
        schema, tool = self.structured_schema(body)
        calls = self.tool_calls(body, chat) if schema is None else None
        shim: dict[str, Any] = {**body, "messages": chat}
        if schema is not None:
            shim["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
        content: list[dict[str, Any]] = []
        thinking = body.get("thinking")
        if server.reasoning or (isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")):
            thought = f"Thinking about {len(body['messages'])} messages before answering."
            content.append({"type": "thinking", "thinking": thought, "signature": "fake-signature"})
        if any(word.lower() in joined for word in server.filter_words):
            stats["filtered"] += 1
            stop_reason, content, text = "refusal", [], ""
        elif calls:
            stop_reason, text = "tool_use", "".join(orjson.dumps(c["input"]).decode() for c in calls)
            content.extend(calls)
        else:
            text, finish = server._cut(body, server._content(shim, chat))
            stop_reason = "max_tokens" if finish == "length" else "tool_use" if tool else "end_turn"
            if tool is None:
                content.append({"type": "text", "text": text, "citations": None})
            else:
                value = orjson.loads(text) if finish == "stop" else {}
                value = value if isinstance(value, dict) else {"value": value}
                content.append({"type": "tool_use", "id": f"toolu_fake{server._ids}", "name": tool, "input": value})
        usage = self.usage(str(body.get("model")), blocks, tokens)
        # What the model wrote, a cut tool input included (the block then carries none of it).
        output_tokens = sum(base._tokens(b["thinking"]) for b in content if b["type"] == "thinking")
        output_tokens += base._tokens(text) if text else 0
        server._ids += 1
        stats["ok"] += 1
        stats["prompt_tokens"] += sum(tokens)
        stats["completion_tokens"] += output_tokens
        for key in ("cache_read_input_tokens", "cache_creation_input_tokens"):
            stats[key] = stats.get(key, 0) + usage[key]
        message = {
            "id": f"msg_fake{server._ids}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", server.model_name) if server.echo_model else server.model_name,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": output_tokens, "service_tier": "standard"},
        }
        return base._json(orjson.dumps(message), 200, self.headers())


def add_routes(server: base.FakeOpenAIServer, app: web.Application) -> None:
    """Serve the Anthropic protocol from `server`, with its knobs."""
    fake = FakeAnthropic(server)
    app.router.add_post("/v1/messages", fake.messages)
    app.middlewares.append(fake.models)
