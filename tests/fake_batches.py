"""Fake batch endpoints for the fake server: the OpenAI batch protocol (/v1/files + /v1/batches, and Azure's
classic /openai/...?api-version= routes) and Anthropic Message Batches (/v1/messages/batches).

Every line is answered by the fake server's own chat logic (its _chat_or_refusal), so its content knobs
(context_tokens, filter_words, unprocessable_words, rate_truncated, end_rate, reasoning, responder, …)
apply to batch lines as to online calls; the HTTP-level knobs of online calls (latency, rate_429, …) do not.
Progress is counted in polls, never in seconds: a batch finishes on its first GET by default, or after
`batch_polls_to_finish` GETs. The knobs live on `server.batch_api` (a FakeBatches):

- batch_polls_to_finish: GETs of a batch before it finishes (0 or 1: the first GET finds it finished).
- batch_line_fail_rate: share of lines answered with a 500 (seeded by the server's `seed`).
- batch_expire_after: the batch expires with only its first K lines answered.
- batch_fail_validation: a 1-based line number the validation refuses (OpenAI: the batch ends `failed`
  with errors.data naming the line; Anthropic: the create is refused with a 400 naming requests.N).
- batch_hang: batches stay in progress until the knob is set back to False (a cancel still ends them).
- batch_hang_from: the K-th batch created and every later one stay in progress until the knob is None.
- batch_http_errors: statuses the next batch API calls answer with, one call each (a 500 on retrieve, …).
- batch_drop_created: the next N creates make their batch, then drop the connection before answering.
- batch_enqueued_limit: a new OpenAI batch fails with `token_limit_exceeded` when it and the unfinished
  batches hold more lines than this (the fake counts lines as its enqueued tokens).

Counters: `lines_received` (custom_id → how many times a created batch carried it), `batches_created`,
`lines_answered`, `http_calls`. The server's `stats["requests"]` counts online calls only; its content
counters (ok, prompt_tokens, context_exceeded, filtered, …) count batch lines too. The Anthropic routes
and shapes are in tests/fake_message_batches.py. These knobs are plain attributes of this process's server
(POST /_knobs does not reach them).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from tests import fake_message_batches as message_batches

if TYPE_CHECKING:
    from tests.fakeserver import FakeOpenAIServer

OPENAI_ENDPOINT, AZURE_ENDPOINT = "/v1/chat/completions", "/chat/completions"
NOT_RUN_MESSAGES = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "The batch was cancelled before this request executed."),
}


@dataclass
class FakeBatch:
    """One batch and where it stands; `answers` and `not_run` are filled when it ends."""

    id: str
    protocol: str  # "openai" | "anthropic"
    lines: list[tuple[str, dict[str, Any]]]  # (custom_id, body), in input order
    created_at: int
    endpoint: str = ""
    input_file_id: str = ""
    input_bytes: int = 0  # the JSONL file (OpenAI) or the create body (Anthropic), as received
    metadata: dict[str, str] | None = None
    invalid: list[dict[str, Any]] = field(default_factory=list)  # validation errors: the batch fails
    polls: int = 0  # polls that moved it on
    polled: bool = False  # polled at all: validated (OpenAI shows `validating` until then)
    number: int = 0  # 1 for the first batch created, …
    progress: int = 0  # lines shown as processed so far
    cancelling: bool = False
    outcome: str = ""  # completed | expired | cancelled | failed, once it ended
    ended_at: int | None = None
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None


class FakeBatches:
    """The batch endpoints' state, knobs and counters (see the module docstring)."""

    def __init__(self, server: FakeOpenAIServer) -> None:
        self.server = server
        self.batch_polls_to_finish = 0
        self.batch_line_fail_rate = 0.0
        self.batch_expire_after: int | None = None
        self.batch_fail_validation: int | None = None
        self.batch_hang = False
        self.batch_hang_from: int | None = None
        self.batch_http_errors: list[int] = []
        self.batch_drop_created = 0
        self.batch_enqueued_limit: int | None = None
        self.lines_received: Counter[str] = Counter()
        self.batches_created = 0
        self.lines_answered = 0
        self.http_calls = 0
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.batches: dict[str, FakeBatch] = {}
        self._rng = random.Random(server.seed)
        self._ids = 0

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:06d}"

    # --- the lifecycle, shared by both protocols ------------------------------------------

    def _poll(self, batch: FakeBatch) -> None:
        """One GET of the batch: it moves one step on, or ends."""
        batch.polled = True
        if batch.outcome:
            return
        if batch.invalid:
            self._end(batch, 0, "failed")
        elif batch.cancelling:
            self._end(batch, batch.progress, "cancelled")
        elif not self.batch_hang and not (self.batch_hang_from is not None and batch.number >= self.batch_hang_from):
            batch.polls += 1
            steps = self.batch_polls_to_finish
            if batch.polls < steps:
                batch.progress = len(batch.lines) * batch.polls // steps
            elif self.batch_expire_after is not None and self.batch_expire_after < len(batch.lines):
                self._end(batch, self.batch_expire_after, "expired")
            else:
                self._end(batch, len(batch.lines), "completed")

    def _end(self, batch: FakeBatch, answered: int, outcome: str) -> None:
        """Answer the first `answered` lines, leave the rest unrun, and write the result files."""
        for custom_id, body in batch.lines[:answered]:
            batch.answers[custom_id] = self._answer(batch.protocol, body)
        batch.not_run = [custom_id for custom_id, _ in batch.lines[answered:]]
        self.lines_answered += answered
        batch.progress, batch.outcome, batch.ended_at = answered, outcome, int(time.time())
        if batch.protocol == "openai" and outcome != "failed":
            self._write_openai_files(batch)

    def _answer(self, protocol: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """What the server's chat logic says to one line (or a 500, at batch_line_fail_rate)."""
        if self._rng.random() < self.batch_line_fail_rate:
            response = self.server._error(500)
        else:
            response = self.server._chat_or_refusal(
                body if protocol == "openai" else message_batches.openai_request(body)
            )
        assert isinstance(response.body, bytes)
        answer = orjson.loads(response.body)
        if protocol == "anthropic":
            answer = message_batches.anthropic_answer(response.status, answer)
        return response.status, answer

    # --- OpenAI ---------------------------------------------------------------------------

    def _write_openai_files(self, batch: FakeBatch) -> None:
        """Output file (2xx lines) and error file (failed and unrun lines), in no particular order."""
        output, errors = [], []
        for custom_id, (status, body) in batch.answers.items():
            response = {"status_code": status, "request_id": self._new_id("req_"), "body": body}
            line = {"id": self._new_id("batch_req_"), "custom_id": custom_id, "response": response, "error": None}
            (output if status < 400 else errors).append(line)
        code, message = NOT_RUN_MESSAGES.get(batch.outcome, ("", ""))
        for custom_id in batch.not_run:
            error = {"code": code, "message": message}
            errors.append({"id": self._new_id("batch_req_"), "custom_id": custom_id, "response": None, "error": error})
        self._rng.shuffle(output)
        self._rng.shuffle(errors)
        if output:
            batch.output_file_id = self._store_file(output, "batch_output", "batch_output.jsonl")
        if errors:
            batch.error_file_id = self._store_file(errors, "batch_output", "batch_errors.jsonl")

    def _store_file(self, lines: list[dict[str, Any]], purpose: str, filename: str) -> str:
        content = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        return self._keep_file(content, purpose, filename)["id"]

    def _keep_file(self, content: bytes, purpose: str, filename: str) -> dict[str, Any]:
        """A FileObject, as POST /v1/files returns it."""
        file = {
            "id": self._new_id("file-"),
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        self.files[file["id"]] = (file, content)
        return file

    def _openai_batch(self, batch: FakeBatch) -> dict[str, Any]:
        """The Batch object."""
        status = batch.outcome or self._openai_status(batch)
        answered = batch.answers.values()
        completed = sum(1 for s, _ in answered if s < 400) if batch.outcome else batch.progress
        failed = sum(1 for s, _ in answered if s >= 400)
        stamps = dict.fromkeys(("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at"))
        stamps.update(dict.fromkeys(("cancelling_at", "cancelled_at")))
        if batch.outcome:
            stamps[f"{batch.outcome}_at"] = batch.ended_at
        errors = {"object": "list", "data": batch.invalid} if batch.outcome == "failed" else None
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "errors": errors,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": batch.created_at,
            "expires_at": batch.created_at + 86400,
            **stamps,
            "request_counts": {"total": len(batch.lines), "completed": completed, "failed": failed},
            "metadata": batch.metadata,
        }

    def _openai_status(self, batch: FakeBatch) -> str:
        if batch.cancelling:
            return "cancelling"
        if not batch.polled:
            return "validating"
        return "finalizing" if batch.polls == self.batch_polls_to_finish - 1 else "in_progress"

    def _validate_openai(self, content: bytes, endpoint: str) -> tuple[list[tuple[str, dict[str, Any]]], list[Any]]:
        """The file's lines, and the validation errors a real batch would fail with (each naming its line)."""
        lines: list[tuple[str, dict[str, Any]]] = []
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        models: set[str] = set()
        for number, raw in enumerate(content.splitlines(), 1):
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                line = None
            body = line.get("body") if isinstance(line, dict) else None
            if not isinstance(line, dict) or not isinstance(body, dict):
                errors.append(_invalid("invalid_json_line", "This line is not parseable as valid JSON.", number))
                continue
            custom_id = str(line.get("custom_id"))
            if line.get("url") != endpoint or line.get("method") != "POST":
                message = f"The url provided for this request does not match the batch endpoint {endpoint}."
                errors.append(_invalid("mismatched_endpoint", message, number))
            elif custom_id in seen:
                errors.append(_invalid("duplicate_custom_id", f"The custom_id {custom_id} is not unique.", number))
            elif number == self.batch_fail_validation or not body.get("model"):
                errors.append(_invalid("missing_required_parameter", "Missing required parameter: 'model'.", number))
            seen.add(custom_id)
            models.add(str(body.get("model")))
            lines.append((custom_id, body))
        if len(models) > 1 and not errors:
            errors.append(_invalid("model_mismatch", "All requests in a batch must use the same model.", None))
        return lines, errors

    # --- HTTP -----------------------------------------------------------------------------

    def _gate(self, request: web.Request, protocol: str) -> web.Response | None:
        """The misbehaviour every batch call may meet first: a queued error status, a rejected key."""
        self.http_calls += 1
        if self.batch_http_errors:
            return self._fail(protocol, self.batch_http_errors.pop(0), "Injected failure of the batch API.")
        if protocol == "azure" and "api-version" not in request.query:
            return self._fail(protocol, 404, "Resource not found (no api-version given).")
        header = {"openai": "Authorization", "azure": "api-key", "anthropic": "x-api-key"}[protocol]
        key = request.headers.get(header, "").removeprefix("Bearer ")
        if key in self.server.reject_keys:
            return self._fail(protocol, 401, "invalid x-api-key" if protocol == "anthropic" else None)
        return None

    def _fail(self, protocol: str, status: int, message: str | None = None) -> web.Response:
        if protocol != "anthropic":
            return self.server._error(status, message)
        kinds = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
        kinds.update({429: "rate_limit_error", 529: "overloaded_error"})
        error = {"type": kinds.get(status, "api_error"), "message": message or f"Error {status}."}
        return web.json_response({"type": "error", "error": error}, status=status)

    def add_openai_routes(self, app: web.Application, prefix: str, protocol: str) -> None:
        endpoint = AZURE_ENDPOINT if protocol == "azure" else OPENAI_ENDPOINT

        async def upload(request: web.Request) -> web.Response:
            if refused := self._gate(request, protocol):
                return refused
            form = await request.post()
            file = form.get("file")
            if form.get("purpose") != "batch" or not isinstance(file, web.FileField):
                return self._fail(protocol, 400, "A multipart upload with purpose=batch and a file is required.")
            return web.json_response(self._keep_file(file.file.read(), "batch", file.filename))

        async def content(request: web.Request) -> web.Response:
            if refused := self._gate(request, protocol):
                return refused
            stored = self.files.get(request.match_info["file_id"])
            if stored is None:
                return self._fail(protocol, 404, "No such File object.")
            return web.Response(body=stored[1], content_type="application/octet-stream")

        async def create(request: web.Request) -> web.Response:
            if refused := self._gate(request, protocol):
                return refused
            body = await request.json()
            stored = self.files.get(str(body.get("input_file_id")))
            if body.get("endpoint") != endpoint or body.get("completion_window") != "24h":
                return self._fail(protocol, 400, f"endpoint must be {endpoint} and completion_window 24h.")
            if stored is None:
                return self._fail(protocol, 400, f"Cannot find file {body.get('input_file_id')}.")
            metadata = body.get("metadata")
            if metadata is not None and (len(metadata) > 16 or any(len(v) > 512 for v in metadata.values())):
                return self._fail(protocol, 400, "metadata: at most 16 pairs, values of at most 512 characters.")
            lines, invalid = self._validate_openai(stored[1], endpoint)
            invalid = invalid or self._over_enqueued_limit(lines)
            batch = FakeBatch(self._new_id("batch_"), "openai", lines, int(time.time()), endpoint, stored[0]["id"])
            batch.metadata, batch.invalid, batch.input_bytes = metadata, invalid, len(stored[1])
            return self._reply(request, self._openai_batch(self._created(batch)))

        async def listing(request: web.Request) -> web.Response:
            if refused := self._gate(request, protocol):
                return refused
            openai = [b for b in self.batches.values() if b.protocol == "openai"]
            return web.json_response(self._page(openai, request, "after", self._openai_batch))

        async def retrieve(request: web.Request) -> web.Response:
            if refused := self._gate(request, protocol):
                return refused
            batch = self.batches.get(request.match_info["batch_id"])
            if batch is None or batch.protocol != "openai":
                return self._fail(protocol, 404, "No such batch.")
            self._poll(batch)
            return web.json_response(self._openai_batch(batch))

        async def cancel(request: web.Request) -> web.Response:
            if refused := self._gate(request, protocol):
                return refused
            batch = self.batches.get(request.match_info["batch_id"])
            if batch is None or batch.protocol != "openai":
                return self._fail(protocol, 404, "No such batch.")
            if batch.outcome:
                return self._fail(protocol, 400, f"Cannot cancel a batch with status '{batch.outcome}'.")
            batch.cancelling = True
            return web.json_response(self._openai_batch(batch))

        app.router.add_post(f"{prefix}/files", upload)
        app.router.add_get(f"{prefix}/files/{{file_id}}/content", content)
        app.router.add_post(f"{prefix}/batches", create)
        app.router.add_get(f"{prefix}/batches", listing)
        app.router.add_get(f"{prefix}/batches/{{batch_id}}", retrieve)
        app.router.add_post(f"{prefix}/batches/{{batch_id}}/cancel", cancel)

    def _over_enqueued_limit(self, lines: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """The capacity refusal of a batch that would pass batch_enqueued_limit, or none."""
        limit = self.batch_enqueued_limit
        queued = sum(len(b.lines) for b in self.batches.values() if b.protocol == "openai" and not b.outcome)
        if limit is None or queued + len(lines) <= limit:
            return []
        model = lines[0][1].get("model") if lines else "the model"
        message = (
            f"Enqueued token limit reached for {model} in organization org-fake. Limit: {limit:,} enqueued "
            "tokens. Please try again once some in_progress batches have been completed."
        )
        return [_invalid("token_limit_exceeded", message, None)]

    def _reply(self, request: web.Request, batch: dict[str, Any]) -> web.Response:
        """The created batch, unless batch_drop_created says to lose the answer (the batch exists all the same)."""
        if self.batch_drop_created > 0:
            self.batch_drop_created -= 1
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)
        return web.json_response(batch)

    def _created(self, batch: FakeBatch) -> FakeBatch:
        """Record a new batch and count the requests it carries."""
        self.batches[batch.id] = batch
        self.batches_created += 1
        batch.number = self.batches_created
        self.lines_received.update(custom_id for custom_id, _ in batch.lines)
        return batch

    def _page(
        self, batches: list[FakeBatch], request: web.Request, after: str, show: Callable[[FakeBatch], dict[str, Any]]
    ) -> dict[str, Any]:
        """One page of a list, newest first, from the one after the `after` id."""
        newest = sorted(batches, key=lambda b: b.id, reverse=True)
        cursor = request.query.get(after)
        if cursor is not None:
            ids = [b.id for b in newest]
            newest = newest[ids.index(cursor) + 1 :] if cursor in ids else []
        limit = int(request.query.get("limit", "20"))
        shown = newest[:limit]
        data = [show(b) for b in shown]
        first, last = (shown[0].id, shown[-1].id) if shown else (None, None)
        return {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": len(newest) > limit}


def add_routes(server: FakeOpenAIServer, app: web.Application) -> None:
    """The batch endpoints of both protocols, on the fake server's app; state and knobs at server.batch_api."""
    batches = FakeBatches(server)
    server.batch_api = batches  # type: ignore[attr-defined]
    batches.add_openai_routes(app, "/v1", "openai")
    batches.add_openai_routes(app, "/openai", "azure")
    message_batches.add_routes(batches, app)


def _invalid(code: str, message: str, line: int | None) -> dict[str, Any]:
    """One entry of a failed batch's errors.data (BatchError)."""
    return {"code": code, "message": message, "param": None, "line": line}
