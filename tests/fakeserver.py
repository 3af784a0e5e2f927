"""A fake OpenAI-compatible HTTP server for tests and benchmarks (tests/fake_anthropic.py adds the Anthropic
Messages API's routes and tests/fake_gemini.py the Gemini API's, with the same knobs).

It answers chat completions, embeddings and the model list on 127.0.0.1 with deterministic content, and
misbehaves on demand through knobs (plain attributes that may be flipped while it runs): latency, 429s, 500s,
529s (Anthropic's "overloaded"), garbage bodies, schema-violating structured output, hung requests (all, or
every one after the first N), a fixed failure status, rejected keys, a token-bucket admission limit (timed by
`clock`, which a test may replace), `gather` (hold requests until that many are in flight together, so a test
of concurrency needs no timing) and an outage (after `down_after` requests, every request for `down_for`
seconds has its connection dropped, or gets `down_status`); defective turns as small models write them
(echoes, copies, repeats, leaked tags, one-character turns: `rate_echo` … `defect_words`); and which model it
says it serves (in answers and GET /models, or no model list at all). Its answers have OpenAI's wire shape
(checked against the openai SDK's types): usage details with `cached_share` of the prompt tokens read from a
cache, a forced tool call answered as one, tools offered answered with calls (tests/fake_tools.py:
`tool_call_rate`, `invalid_tool_args_rate`, `parallel_tool_calls`) and tool results answered by quoting them,
and Azure OpenAI's deployment route (`api-key` header). Counters in
`stats` record what happened, and `stats["last_request"]` what the last request asked.

Run it standalone with `python -m tests.fakeserver --port 0 --latency 0.05`: the first stdout line
is its URL. `GET /_stats` returns the counters and `POST /_knobs` (a JSON object) sets knobs, so a
benchmark can steer a server running in another process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import hashlib
import random
import re
import signal
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from tests import fake_anthropic, fake_gemini, fake_tools
from tests.fake_batches import add_routes as add_batch_routes

END_TOKEN = "[END]"
EMBEDDING_DIM = 16
# Answers of differing quality, for preference runs, and how the fake judge tells them apart: a degraded answer
# (a weak model's, or one the prompt asks to be deliberately worse) starts with DEGRADED; a sample of a repeated
# request at temperature > 0 ends with "(take N)"; each costs the answer points in the judge's eyes.
DEGRADED = "Roughly: "
_TAKE = re.compile(r"\(take (\d+)\)")
_SHOWN_ANSWER = re.compile(r"\[Answer ([A-H])\]\n(.*?)\n\[/Answer \1\]", re.S)

KNOBS = tuple(
    "latency rate_429 retry_after rate_500 rate_garbage rate_bad_structured hang hang_after fail_status admit_rps"
    " rate_529 end_rate reasoning seed responder rate_limit_headers reject_keys model_name context_tokens filter_words"
    " unprocessable_words withheld_words rate_truncated down_after down_for down_status echo_model models_status"
    " model_meta gather cached_share rate_echo rate_copy rate_repeat rate_leak rate_short defect_words"
    " weak_models sample_spread judge_position_bias judge_flat tool_call_rate invalid_tool_args_rate"
    " parallel_tool_calls slots".split()
)
# Defective turns (see `_defect`), in the order their rates are stacked, and the sides that make each:
# the respondent ("answer") or the simulated user ("question").
DEFECTS: dict[str, tuple[str, ...]] = {
    "echo": ("answer",),
    "copy": ("question",),
    "repeat": ("answer", "question"),
    "leak": ("answer", "question"),
    "short": ("answer", "question"),
}
LEAKED_TAG = "<assistant_last_message>"
# What the well-behaved fake answers with, one sentence per turn of a dialog, so its turns never repeat.
FACTS = (
    "start with the defaults, measure one change at a time, and keep notes",
    "the usual cause is a setting that differs between two environments",
    "a small reproducible example makes every later step much easier",
    "the documentation lists the limits, and the logs show which one was hit",
    "most teams automate this check so that it runs on every change",
    "compare the numbers before and after rather than trusting a single run",
)
GATHER_TIMEOUT = 30.0  # seconds a gathering request waits for the others before it goes on alone

# OpenAI's error "type" and "code" per status, so clients map them to the right exception class.
_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to use this model.", "invalid_request_error", "permission_denied"),
    404: ("The model does not exist.", "invalid_request_error", "model_not_found"),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
}
# A body cut mid-way, as a dropped proxy connection leaves it: a 200 that is not JSON.
_GARBAGE = b'{"id": "chatcmpl-garbage", "object": "chat.completion", "choices": [{"index": 0, "mess'


def _text(content: Any) -> str:
    """The text of a message content: a string, or the text parts of a multimodal list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _auth_scheme(request: web.Request) -> str | None:
    """How the request carried its key: 'bearer' (OpenAI), 'api-key' (Azure), or None."""
    if request.headers.get("Authorization", "")[:7].lower() == "bearer ":
        return "bearer"
    return "api-key" if "api-key" in request.headers else None


def _tokens(text: str) -> int:
    """The deterministic token count of a text."""
    return len(text) // 4 + 1


def _schema_format(schema: Any) -> dict[str, Any]:
    """A JSON-Schema response_format around a schema (a forced tool's parameters are answered as one)."""
    return {"type": "json_schema", "json_schema": {"name": "tool", "schema": schema}}


def _error_body(status: int, message: str | None = None) -> bytes:
    """An OpenAI-style error JSON body."""
    default, kind, code = _ERRORS.get(status, (f"Error {status}.", "server_error", None))
    return orjson.dumps({"error": {"message": message or default, "type": kind, "param": None, "code": code}})


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response from already-encoded bytes (orjson is several times faster than json)."""
    return web.Response(body=body, status=status, headers=headers, content_type="application/json")


def _embed(text: str) -> list[float]:
    """A deterministic unit vector from the text's hash."""
    vector = [(b - 127.5) / 127.5 for b in hashlib.sha256(text.encode()).digest()[:EMBEDDING_DIM]]
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


def _resolve(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref`s into `$defs`/`definitions` and collapse allOf, anyOf and oneOf to one branch."""
    for _ in range(32):
        if not isinstance(schema, dict):
            return {}
        if "$ref" in schema:
            node: Any = root
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            schema = node
        elif "allOf" in schema and schema["allOf"]:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for sub in schema["allOf"]:
                merged.update(_resolve(sub, root))
            schema = merged
        elif schema.get("anyOf") or schema.get("oneOf"):
            branches = schema.get("anyOf") or schema.get("oneOf")
            non_null = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
            schema = (non_null or branches)[0]
        else:
            return schema
    return {}


def _type_of(schema: dict[str, Any]) -> str:
    """The one JSON type to produce for a resolved schema."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind:
        return str(kind)
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    return "array" if "items" in schema else "string"


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    """A number inside the schema's bounds."""
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = 1 if low is None else low + (1 if "exclusiveMinimum" in schema else 0)
    if high is not None and value > high - (1 if "exclusiveMaximum" in schema else 0):
        value = (low + high) / 2 if low is not None else high - 1
    return int(value) if integer else float(value)


_FORMATS = {"date-time": "2024-01-01T00:00:00Z", "date": "2024-01-01", "uuid": "00000000-0000-4000-8000-000000000000"}


def sample(schema: Any, root: dict[str, Any] | None = None, name: str = "value", depth: int = 0) -> Any:
    """A value that satisfies a JSON Schema (the subset structured-output APIs use)."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = _type_of(schema)
    if kind == "object":
        props = schema.get("properties", {})
        # Past some depth only required properties, so recursive schemas terminate.
        keys = props if depth < 6 else [k for k in props if k in schema.get("required", ())]
        return {k: sample(props[k], root, k, depth + 1) for k in keys}
    if kind == "array":
        count = 0 if depth >= 6 else 2 if name.endswith("s") else 1
        count = max(schema.get("minItems", 0), min(count, schema.get("maxItems", count)))
        return [sample(schema.get("items", {}), root, name.rstrip("s"), depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = _FORMATS.get(schema.get("format", ""), f"sample {name}")
    if len(text) < schema.get("minLength", 0):
        text = text.ljust(schema["minLength"], "x")
    return text[: schema.get("maxLength", len(text))]


def violate(schema: Any, valid: Any) -> Any:
    """Valid JSON that breaks the schema: a required property dropped, or a wrong type."""
    resolved = _resolve(schema, schema) if isinstance(schema, dict) else {}
    required = [k for k in resolved.get("required", ()) if isinstance(valid, dict) and k in valid]
    if required:
        return {k: v for k, v in valid.items() if k != required[0]}
    return ["not", "the", "expected", "type"] if isinstance(valid, (dict, str)) or valid is None else "wrong type"


class FakeOpenAIServer:
    """An aiohttp OpenAI look-alike on its own event loop in a daemon thread; knobs are plain attributes."""

    latency: float = 0.0
    rate_429: float = 0.0
    retry_after: float | None = 0.05
    rate_500: float = 0.0
    rate_529: float = 0.0  # Anthropic's "overloaded"
    rate_garbage: float = 0.0
    rate_bad_structured: float = 0.0
    hang: bool = False
    hang_after: int | None = None  # answer the first N requests, then hang every later one
    fail_status: int | None = None
    admit_rps: float | None = None
    gather: int = 0
    # Requests it works on at once, like a GPU server's slots (llama.cpp --parallel, vLLM's batch): the rest
    # queue, so its throughput is slots / latency however many a client sends (None: no limit).
    slots: int | None = None
    end_rate: float = 0.0
    reasoning: bool = False
    seed: int = 0
    responder: Callable[[dict[str, Any]], str | None] | None = None
    rate_limit_headers: bool = False
    reject_keys: set[str] | frozenset[str] = frozenset()
    model_name: str = "fake-model"
    # Per-item refusals, as real servers make them: a prompt longer than the context (llama.cpp's 400), a
    # prompt containing a filtered word (Azure/OpenAI's content-filter 400), or one the server cannot
    # process (422); an answer withheld by an output filter (Azure's: no content, finish_reason
    # "content_filter", its tokens billed); and answers cut off by the token limit (finish_reason "length").
    context_tokens: int | None = None
    filter_words: tuple[str, ...] = ()
    unprocessable_words: tuple[str, ...] = ()
    withheld_words: tuple[str, ...] = ()
    rate_truncated: float = 0.0
    down_after: int | None = None
    down_for: float = 2.0
    down_status: int | None = None
    # True: answers name the model the request asked for. False: they name `model_name`, as real servers
    # name what they serve (llama.cpp its --alias or gguf path, vLLM its served-model-name).
    echo_model: bool = True
    # Defective turns, as small models write them: an answer that echoes the question, a simulated user that
    # copies the last answer, a turn that repeats an earlier one, a leaked scaffolding tag, a one-character
    # turn. Each request draws from a hash of its messages, seed and temperature, as a model sampled with
    # that seed would: the same request gets the same turn, a regeneration sent with a seed of its own
    # draws again. A request mentioning a word of `defect_words` always gets that word's defect.
    rate_echo: float = 0.0
    rate_copy: float = 0.0
    rate_repeat: float = 0.0
    rate_leak: float = 0.0
    rate_short: float = 0.0
    defect_words: dict[str, str] = {}  # noqa: RUF012  (a knob: replaced, never mutated)
    # GET /models answers with this error status (a server without a model list) instead of the list.
    models_status: int | None = None
    # Preference runs: models whose answers are degraded; repeated requests at temperature > 0 answered with
    # numbered takes, each worse than the last; a judge that, with this probability, prefers whichever answer
    # it is shown first (position bias); a judge that, with this probability, scores every candidate alike (a tie).
    weak_models: tuple[str, ...] = ()
    sample_spread: bool = False
    judge_position_bias: float = 0.0
    judge_flat: float = 0.0
    # What GET /models says of the weights, as llama.cpp's `meta` does (size, parameters …); None: nothing.
    model_meta: dict[str, Any] | None = None
    # The share of each prompt reported as read from the provider's prompt cache: OpenAI's
    # usage.prompt_tokens_details.cached_tokens, Gemini's cachedContentTokenCount (stats["cached_tokens"]).
    cached_share: float = 0.0
    # Tool calling (tests/fake_tools.py): the share of requests with tools and a user turn last that are
    # answered with calls, the share of calls with invalid arguments, and how many calls an answer makes.
    tool_call_rate: float = 1.0
    invalid_tool_args_rate: float = 0.0
    parallel_tool_calls: int = 1

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **knobs: Any) -> None:
        unknown = set(knobs) - set(KNOBS)
        if unknown:
            raise TypeError(f"unknown knobs: {sorted(unknown)}")
        self.host, self.port = host, port
        self.clock: Callable[[], float] = time.monotonic
        for key, value in knobs.items():
            setattr(self, key, value)
        self.stats: dict[str, Any] = self._fresh_stats()
        self._rng, self._rng_seed = random.Random(self.seed), self.seed
        self._tokens_left, self._bucket_at = 0.0, 0.0
        self._ids = 0
        self._seen = 0
        self._asked: dict[bytes, int] = {}  # sample_spread: how often each request body came
        self._down_until: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._released: asyncio.Event | None = None
        self._gathered: asyncio.Event | None = None
        self._slots: tuple[int, asyncio.Semaphore] | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """The base URL OpenAI clients expect."""
        return self.url + "/v1"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        """Serve in a daemon thread; return once the port is listening."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start(), which re-raises it
                failure.append(exc)
                ready.set()
                return
            self._loop = loop
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"fakeserver-{self.port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    async def _serve(self) -> None:
        """Bind the listening socket."""
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._chat)  # Azure OpenAI
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/models", self._models)
        app.router.add_get("/_stats", self._get_stats)
        app.router.add_post("/_knobs", self._set_knobs)
        add_batch_routes(self, app)
        fake_anthropic.add_routes(self, app)
        fake_gemini.add_routes(self, app)
        # No access log: at thousands of requests/s it would cost more than answering.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=4096)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._released = asyncio.Event()
        self._gathered = asyncio.Event()

    def stop(self) -> None:
        """Drop hung requests, close the server and end its thread."""
        loop, self._loop = self._loop, None
        if loop is None:
            return

        async def shutdown() -> None:
            assert self._released is not None and self._runner is not None
            self._released.set()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def release_hung(self) -> None:
        """Stop hanging: requests hung so far end with a dropped connection, later ones are answered."""

        def release() -> None:
            self.hang, self.hang_after = False, None
            assert self._released is not None
            self._released.set()
            self._released = asyncio.Event()

        self._on_loop(release)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- counters --------------------------------------------------------------------------

    def _fresh_stats(self, in_flight: int = 0) -> dict[str, Any]:
        """Zeroed counters (in-flight requests are still in flight)."""
        counts = dict.fromkeys(("requests", "ok", "429", "500", "529", "garbage", "bad_structured", "hung"), 0)
        counts.update(dict.fromkeys(("rejected", "bad_request", "embeddings", "prompt_tokens", "completion_tokens"), 0))
        counts.update(dict.fromkeys(("context_exceeded", "filtered", "unprocessable", "truncated", "withheld"), 0))
        counts["down"] = 0
        counts["cached_tokens"] = 0
        counts["model_lists"] = 0
        counts["comparisons"] = 0
        counts["tool_calls"] = 0
        counts["invalid_tool_args"] = 0
        counts["answered_at"] = []  # the server clock at each answered request, for rates measured here
        defects = dict.fromkeys(DEFECTS, 0)
        return {
            **counts,
            "by_key": {},
            "models": {},
            "defects": defects,
            "last_request": None,
            "in_flight": in_flight,
            "max_in_flight": in_flight,
        }

    def _on_loop(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the server's loop, so it never races a handler's read-modify-write."""
        loop = self._loop
        if loop is None or not loop.is_running() or self._thread is threading.current_thread():
            return fn()

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=10)

    def reset_stats(self) -> None:
        """Zero the counters."""
        self._on_loop(lambda: setattr(self, "stats", self._fresh_stats(self.stats["in_flight"])))

    def snapshot(self) -> dict[str, Any]:
        """A consistent deep copy of the counters."""
        return self._on_loop(lambda: copy.deepcopy(self.stats))

    # --- request pipeline ------------------------------------------------------------------

    def _random(self) -> float:
        """The next draw of the seeded generator (re-seeded when the seed knob changes)."""
        if self.seed != self._rng_seed:
            self._rng, self._rng_seed = random.Random(self.seed), self.seed
        return self._rng.random()

    def _admit(self) -> bool:
        """Token bucket of admit_rps tokens/s, holding at most one second's worth."""
        rps = self.admit_rps
        if rps is None:
            return True
        now = self.clock()
        self._tokens_left = min(max(rps, 1.0), self._tokens_left + (now - self._bucket_at) * rps)
        self._bucket_at = now
        if self._tokens_left >= 1.0:
            self._tokens_left -= 1.0
            return True
        return False

    async def _gather(self) -> None:
        """Until `gather` requests have been in flight together, hold each one; then let all go."""
        assert self._gathered is not None
        if not self.gather or self._gathered.is_set():
            return
        if self.stats["in_flight"] >= self.gather:
            self._gathered.set()
            return
        try:
            await asyncio.wait_for(self._gathered.wait(), GATHER_TIMEOUT)
        except TimeoutError:
            pass

    def _is_down(self) -> bool:
        """Whether the outage is on: it starts at request number down_after + 1 and lasts down_for seconds."""
        self._seen += 1
        if self.down_after is None:
            return False
        if self._down_until is None:
            if self._seen <= self.down_after:
                return False
            self._down_until = time.monotonic() + self.down_for
        return time.monotonic() < self._down_until

    def _headers(self) -> dict[str, str]:
        """Rate-limit headers like OpenAI's, when the knob asks for them."""
        if not self.rate_limit_headers:
            return {}
        remaining = int(self._tokens_left) if self.admit_rps is not None else 9999
        return {
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": "1s",
        }

    def _error(self, status: int, message: str | None = None) -> web.Response:
        """An OpenAI-style error response."""
        headers = self._headers()
        if status == 429 and self.retry_after is not None:
            headers["Retry-After"] = f"{self.retry_after:g}"
        return _json(_error_body(status, message), status, headers)

    async def _handle(
        self,
        request: web.Request,
        answer: Callable[[dict[str, Any]], web.Response],
        error: Callable[[int, str | None], web.Response] | None = None,
        model: str | None = None,
    ) -> web.Response:
        """The knobs, in order: outage, auth, fail_status, bad request, hang, admission, gather, latency,
        random failures. `error` makes an error response in the protocol's shape (OpenAI's by default);
        `model` is the model a protocol names in its URL rather than its body (Gemini)."""
        fail = error or self._error
        stats = self.stats  # no await before the try: a reset cannot slip in between
        stats["requests"] += 1
        stats["in_flight"] += 1
        stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
        try:
            if self._is_down():
                stats["down"] += 1
                if self.down_status is not None:
                    return fail(self.down_status)
                if request.transport is not None:
                    request.transport.abort()  # a restarting server: the client sees a dropped connection
                return web.Response(status=503)
            auth = request.headers.get("Authorization", "")
            key = (
                request.headers.get("x-api-key")
                or request.headers.get("x-goog-api-key")
                or (auth[7:] if auth[:7].lower() == "bearer " else auth)
                or request.headers.get("api-key", "")
            )
            self.stats["by_key"][key] = self.stats["by_key"].get(key, 0) + 1
            try:
                body = orjson.loads(await request.read())
                if not isinstance(body, dict):
                    raise ValueError("the body is not a JSON object")
            except ValueError as exc:
                self.stats["bad_request"] += 1
                return fail(400, f"Invalid JSON body: {exc}")
            # What the last request asked, as the server saw it (a parity test compares two clients' requests).
            self.stats["last_request"] = {"path": request.path_qs, "auth": _auth_scheme(request), "body": body}
            model = str(body.get("model", "")) if model is None else model
            self.stats["models"][model] = self.stats["models"].get(model, 0) + 1
            if key in self.reject_keys or self.fail_status is not None:
                self.stats["rejected"] += 1
                return fail(401 if key in self.reject_keys else int(self.fail_status or 500))
            if body.get("stream"):
                self.stats["bad_request"] += 1
                return fail(400, "This fake server does not stream.")
            if self.hang or (self.hang_after is not None and self.stats["requests"] > self.hang_after):
                self.stats["hung"] += 1
                assert self._released is not None
                await self._released.wait()
                if request.transport is not None:
                    request.transport.abort()  # the server went away: the client sees a dropped connection
                return web.Response(status=503)
            if not self._admit():
                self.stats["429"] += 1
                return fail(429)
            await self._gather()
            if self.slots:
                if self._slots is None or self._slots[0] != self.slots:
                    self._slots = (self.slots, asyncio.Semaphore(self.slots))
                async with self._slots[1]:
                    await asyncio.sleep(self.latency)
            elif self.latency > 0:
                await asyncio.sleep(self.latency)
            draw = self._random()
            if draw < self.rate_429:
                self.stats["429"] += 1
                return fail(429)
            if draw < self.rate_429 + self.rate_500:
                self.stats["500"] += 1
                return fail(500)
            if draw < self.rate_429 + self.rate_500 + self.rate_529:
                self.stats["529"] += 1
                return fail(529)
            if draw < self.rate_429 + self.rate_500 + self.rate_529 + self.rate_garbage:
                self.stats["garbage"] += 1
                return _json(_GARBAGE, 200, self._headers())
            self.stats["answered_at"].append(self.clock())
            return answer(body)
        finally:
            self.stats["in_flight"] -= 1

    async def _chat(self, request: web.Request) -> web.Response:
        return await self._handle(request, self._chat_or_refusal)

    def _chat_or_refusal(self, body: dict[str, Any]) -> web.Response:
        """Refuse this one request for what it says (context, filter, 422), or answer it."""
        messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
        texts = [_text(m.get("content")) for m in messages]
        prompt_tokens = sum(_tokens(t) for t in texts)
        if self.context_tokens is not None and prompt_tokens > self.context_tokens:
            self.stats["context_exceeded"] += 1
            message = (
                f"request ({prompt_tokens} tokens) exceeds the available context size "
                f"({self.context_tokens} tokens), try increasing it"
            )
            body_ = {"error": {"code": 400, "message": message, "type": "exceed_context_size_error"}}
            return _json(orjson.dumps(body_), 400)
        joined = " ".join(texts).lower()
        if any(word.lower() in joined for word in self.filter_words):
            self.stats["filtered"] += 1
            message = "The response was filtered due to the prompt triggering Azure OpenAI's content management policy."
            body_ = {"error": {"message": message, "type": None, "param": "prompt", "code": "content_filter"}}
            return _json(orjson.dumps(body_), 400)
        if any(word.lower() in joined for word in self.unprocessable_words):
            self.stats["unprocessable"] += 1
            return self._error(422, "Unprocessable Entity: the input could not be processed.")
        return self._chat_answer(body)

    async def _embeddings(self, request: web.Request) -> web.Response:
        return await self._handle(request, self._embedding_answer)

    # --- answers ---------------------------------------------------------------------------

    def _content(self, body: dict[str, Any], messages: list[dict[str, Any]]) -> str:
        """What the fake model says: structured JSON, the user simulator's turn, or an answer."""
        if self.responder is not None:
            answer = self.responder(body)
            if answer is not None:  # None: this request gets the default content
                return answer
        system = next((_text(m.get("content")) for m in messages if m.get("role") == "system"), "")
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"):
            spec = fmt.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, dict) else None
            schema = schema if isinstance(schema, dict) else {"type": "object", "properties": {"answer": {}}}
            if "comparing candidate answers" in system:
                return orjson.dumps(self._comparison(schema, messages)).decode()
            value = sample(schema)
            if self.rate_bad_structured and self._random() < self.rate_bad_structured:
                self.stats["bad_structured"] += 1
                value = violate(schema, value)
            return orjson.dumps(value).decode()
        if fake_tools.answers_results(messages):
            return fake_tools.result_answer(messages)
        side = "question" if "simulated user" in system.lower() else "answer"
        if side == "question" and self.end_rate and self._random() < self.end_rate:
            return END_TOKEN
        normal = self._normal(messages, side)
        if side == "answer":
            normal = self._graded(body, system, normal)
        defect = self._defect(body, messages, side)
        if defect is None:
            return normal
        self.stats["defects"][defect] += 1
        return self._defective(defect, side, messages, normal)

    @staticmethod
    def _normal(messages: list[dict[str, Any]], side: str) -> str:
        """A well-behaved turn: a follow-up on the last answer's end, an opening, or a fact per turn."""
        if side == "question":
            words = _text(messages[-1].get("content")).replace("?", " ").split() if messages else []
            return f"Can you tell me more about {' '.join(words[-6:]).rstrip('.!') or 'that'}?"
        last_user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        if "write the first message" in last_user.lower():  # an instruction generator asks for an opening
            topic = last_user.split("about:", 1)[-1].split("\n", 1)[0].split(".", 1)[0].split()
            return f"How do I get started with {' '.join(topic[:6]) or 'this'}?"
        turn = sum(1 for m in messages if m.get("role") == "user")
        topic = " ".join(last_user.split()[-6:]).rstrip("?.!")
        return f"Here is an answer about {topic}: {FACTS[(turn - 1) % len(FACTS)]}."

    def _defect(self, body: dict[str, Any], messages: list[dict[str, Any]], side: str) -> str | None:
        """Which defect this request's turn has, if any (see the rate_* knobs and defect_words)."""
        if self.defect_words:
            joined = " ".join(_text(m.get("content")) for m in messages).lower()
            for word, defect in self.defect_words.items():
                if word.lower() in joined and side in DEFECTS[defect]:
                    return defect
        rates = {name: getattr(self, f"rate_{name}") for name, sides in DEFECTS.items() if side in sides}
        if not any(rates.values()):
            return None
        request = [body.get("messages"), body.get("seed"), body.get("temperature")]
        digest = hashlib.sha256(orjson.dumps(request, default=str)).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        for name, rate in rates.items():
            if draw < rate:
                return name
            draw -= rate
        return None

    @staticmethod
    def _defective(defect: str, side: str, messages: list[dict[str, Any]], normal: str) -> str:
        """The defective turn: the other side's last message, an earlier turn, a tag, or one character."""
        # Both sides see their own turns as 'assistant' (the simulated user's dialog has its roles flipped).
        texts = [(m.get("role"), _text(m.get("content"))) for m in messages if m.get("role") != "system"]
        own = [text for role, text in texts if role == "assistant"]
        if defect in ("echo", "copy"):
            return texts[-1][1] if texts else "."
        if defect == "repeat":  # the simulated user its opening, the respondent its last answer
            return (own[0] if side == "question" else own[-1]) if own else normal
        if defect == "leak":
            return f"{LEAKED_TAG}\n{normal}"
        return "."

    def _forced_tool(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The tool a request forces the model to call (`tool_choice` naming a function of `tools`), if any."""
        choice = body.get("tool_choice")
        name = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
        tools = [t.get("function") for t in body.get("tools") or () if isinstance(t, dict)]
        return next((t for t in tools if isinstance(t, dict) and t.get("name") == name), None)

    def _graded(self, body: dict[str, Any], system: str, answer: str) -> str:
        """A preference run's answer: degraded for a weak model or a prompt asking for a worse answer, and a
        numbered take when a request at temperature > 0 comes again (see `quality`)."""
        if body.get("model") in self.weak_models or "deliberately worse answer" in system:
            answer = DEGRADED + answer
        temperature = body.get("temperature")
        if self.sample_spread and isinstance(temperature, int | float) and temperature > 0:
            key = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
            self._asked[key] = take = self._asked.get(key, 0) + 1
            answer += f" (take {take})"
        return answer

    @staticmethod
    def quality(answer: str) -> float:
        """What the fake judge thinks of an answer: 0.9, less 0.3 if degraded, less 0.2 per sample take."""
        score = 0.9 - (0.3 if answer.startswith(DEGRADED) else 0.0)
        take = _TAKE.search(answer)
        if take:
            score -= 0.2 * int(take.group(1))
        return round(max(score, 0.0), 2)

    def _comparison(self, schema: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
        """A pairwise verdict: each shown answer scored by its quality (or all alike, or the first preferred)."""
        self.stats["comparisons"] += 1
        shown = dict(_SHOWN_ANSWER.findall(_text(messages[-1].get("content")) if messages else ""))
        biased = bool(self.judge_position_bias) and self._random() < self.judge_position_bias
        flat = bool(self.judge_flat) and self._random() < self.judge_flat
        verdict: dict[str, Any] = {}
        for name, prop in (schema.get("properties") or {}).items():
            if name not in shown:
                verdict[name] = sample(prop, schema, name)
                continue
            score = 0.5 if flat else self.quality(shown[name])
            if biased:
                score = 0.95 if name == "A" else 0.2
            points = round(score * 10)  # the comparison asks for whole points out of 10
            verdict[name] = {"feedback": f"Answer {name} scores {points}/10.", "score": points}
        return verdict

    def _chat_answer(self, body: dict[str, Any]) -> web.Response:
        messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
        tool = self._forced_tool(body)
        calls = (
            None
            if tool is not None
            else fake_tools.calls_for(self, body.get("tools"), body.get("tool_choice"), messages)
        )
        if calls:
            calls = calls[:1] if body.get("parallel_tool_calls") is False else calls
            message = fake_tools.openai_message(self, calls)
            content, finish_reason = "".join(c["arguments"] for c in calls), "tool_calls"
        elif tool is not None:  # the arguments of the one call it forces, no content (OpenAI's wire shape)
            arguments = self._content({"response_format": _schema_format(tool.get("parameters"))}, messages)
            content, finish_reason = arguments, "stop"
            call = {"id": f"call_fake{self._ids}", "type": "function"}
            call["function"] = {"name": tool["name"], "arguments": arguments}
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        else:
            content, finish_reason = self._cut(body, self._content(body, messages))
            message = {"role": "assistant", "content": content}
            joined = " ".join(_text(m.get("content")) for m in messages).lower()
            if any(word.lower() in joined for word in self.withheld_words):
                self.stats["withheld"] += 1  # Azure's output filter: no content, its tokens still billed
                message["content"], finish_reason = None, "content_filter"
        if self.reasoning:
            message["reasoning_content"] = f"Thinking about {len(messages)} messages before answering."
        prompt_tokens = sum(_tokens(_text(m.get("content"))) for m in messages)
        completion_tokens = _tokens(content)
        self._ids += 1
        self.stats["ok"] += 1
        self.stats["prompt_tokens"] += prompt_tokens
        self.stats["completion_tokens"] += completion_tokens
        usage: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
        usage["total_tokens"] = prompt_tokens + completion_tokens
        cached = int(prompt_tokens * self.cached_share)
        self.stats["cached_tokens"] += cached
        usage["prompt_tokens_details"] = {"cached_tokens": cached, "audio_tokens": 0}
        usage["completion_tokens_details"] = dict.fromkeys(
            ("reasoning_tokens", "audio_tokens", "accepted_prediction_tokens", "rejected_prediction_tokens"), 0
        )
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        payload = {"id": f"chatcmpl-fake{self._ids}", "object": "chat.completion", "created": int(time.time())}
        served = body.get("model", self.model_name) if self.echo_model else self.model_name
        payload.update(model=served, choices=[choice], usage=usage, service_tier="default")
        payload["system_fingerprint"] = "fp_fake"
        return _json(orjson.dumps(payload), 200, self._headers())

    def _cut(self, body: dict[str, Any], content: str) -> tuple[str, str]:
        """The answer as the token limit leaves it: cut at max_tokens, or at random (rate_truncated)."""
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and _tokens(content) > limit:
            self.stats["truncated"] += 1
            return content[: max(0, limit * 4 - 4)], "length"
        if self.rate_truncated and self._random() < self.rate_truncated:
            self.stats["truncated"] += 1
            return content[: len(content) // 2], "length"
        return content, "stop"

    def _embedding_answer(self, body: dict[str, Any]) -> web.Response:
        raw = body.get("input", "")
        inputs = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else list(raw)
        texts = [item if isinstance(item, str) else str(item) for item in inputs]
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vector: Any = _embed(text)
            if as_base64:  # the openai SDK asks for base64 float32 unless the caller chose a format
                vector = base64.b64encode(struct.pack(f"<{EMBEDDING_DIM}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        prompt_tokens = sum(_tokens(t) for t in texts)
        self.stats["ok"] += 1
        self.stats["embeddings"] += 1
        self.stats["prompt_tokens"] += prompt_tokens
        usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
        payload = {"object": "list", "data": data, "model": body.get("model", self.model_name), "usage": usage}
        return _json(orjson.dumps(payload), 200, self._headers())

    async def _models(self, request: web.Request) -> web.Response:
        self.stats["model_lists"] += 1
        if self.models_status is not None:
            return self._error(self.models_status)
        model: dict[str, Any] = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "fakeserver"}
        if self.model_meta is not None:
            model["meta"] = self.model_meta
        return web.json_response({"object": "list", "data": [model]})

    async def _get_stats(self, request: web.Request) -> web.Response:
        return _json(orjson.dumps(self.stats))

    async def _set_knobs(self, request: web.Request) -> web.Response:
        knobs = await request.json()
        bad = set(knobs) - (set(KNOBS) - {"responder"})
        if bad:
            return web.json_response({"error": f"unknown knobs: {sorted(bad)}"}, status=400)
        for key, value in knobs.items():
            setattr(self, key, set(value) if key == "reject_keys" else value)
        return web.json_response({"ok": True})


def main(argv: list[str] | None = None) -> None:
    """Serve until killed, printing the URL first so a parent process can read it."""
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible HTTP server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    for name in ("latency", "rate_429", "rate_500", "rate_529", "rate_garbage", "rate_bad_structured", "end_rate"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=0.0)
    parser.add_argument("--retry-after", type=lambda v: None if v.lower() == "none" else float(v), default=0.05)
    parser.add_argument("--admit-rps", type=float, default=None)
    parser.add_argument("--slots", type=int, default=None)
    parser.add_argument("--fail-status", type=int, default=None)
    parser.add_argument("--down-after", type=int, default=None)
    parser.add_argument("--down-for", type=float, default=2.0)
    parser.add_argument("--down-status", type=int, default=None)
    parser.add_argument("--hang-after", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-name", default="fake-model")
    parser.add_argument("--models-status", type=int, default=None)
    parser.add_argument("--no-echo-model", dest="echo_model", action="store_false", help="Answers name model_name.")
    parser.add_argument("--reject-key", dest="reject_keys", action="append", default=[])
    for flag in ("hang", "reasoning", "rate_limit_headers"):
        parser.add_argument("--" + flag.replace("_", "-"), action="store_true")
    args = vars(parser.parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    server = FakeOpenAIServer(host, port, **{**args, "reject_keys": set(args["reject_keys"])}).start()
    print(server.url, flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    server.stop()


if __name__ == "__main__":
    main()
