"""A direct transport for the Gemini API: POST {base}/v1beta/models/{model}:generateContent over one aiohttp
session, without litellm (a fraction of its CPU per call).

The key travels in the `x-goog-api-key` header, never in the URL, so it cannot reach a log. Thoughts become
`reasoning_content`, a blocked prompt or a safety stop is one item's refusal (`content_filter`), and usage,
retries and structured output behave as on every other transport.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import orjson

from ..errors import ProviderError
from .base import LLMResponse, Messages
from .gemini_request import request_body, thinking_config
from .gemini_tools import read_calls
from .http_errors import status_error
from .http_transport import HttpTransport
from .keypool import ApiKey
from .ratelimit import parse_duration
from .remote import PROBE_MESSAGES
from .structured import Schema
from .tool_calls import finish_with_calls

DEFAULT_API_BASE = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"
# A base URL that already ends in an API version (litellm's convention for gemini api_base) is used as is.
_VERSIONED = re.compile(r"/v1(?:alpha|beta)?\d*$")
FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length"}
# Thought signatures kept for the next request of a dialog (Gemini 3's function calls need theirs back): the
# newest this many, as only a call of a dialog in flight is ever sent again.
KEPT_SIGNATURES = 10_000
# Why Gemini stops or blocks for what was asked or written: that item's refusal, asking again will not help.
REFUSALS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT"}
)


def google_error(body: bytes) -> tuple[str, float | None, bool]:
    """(detail, retry delay in seconds, whether the key is invalid) of a Google API error body,
    {"error": {"code", "message", "status", "details": [RetryInfo, ErrorInfo, …]}}."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace"), None, False
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return str(data)[:300], None, False
    details = [d for d in error.get("details") or () if isinstance(d, dict)]
    delay = next((parse_duration(d.get("retryDelay")) for d in details if "retryDelay" in d), None)
    reasons = {str(d.get("reason")) for d in details if d.get("reason")}
    status = f"{error['status']}: " if error.get("status") else ""
    return f"{status}{error.get('message', '')}"[:300], delay, "API_KEY_INVALID" in reasons


class GeminiProvider(HttpTransport):
    """generateContent against the Gemini API (or a server speaking it), one HTTP session for the run."""

    # No `batch_protocol`: Gemini's batch API is not spoken yet, so batch mode refuses these models by name.

    def __init__(self, model: str, **settings: Any) -> None:
        super().__init__(model, **settings)
        base = (self.api_base or DEFAULT_API_BASE).rstrip("/")
        self.root = base if _VERSIONED.search(base) else f"{base}/{API_VERSION}"
        name = self.requested_model.removeprefix("models/")
        # A tuned model is 'tunedModels/…'; a base model's resource is 'models/…'.
        self.resource = name if "/" in name else f"models/{name}"
        self.url = f"{self.root}/{self.resource}:generateContent"
        self.signatures: dict[str, str] = {}
        thinking_config(self.params, name)  # a bad reasoning_effort fails now, not on every item

    @property
    def request_url(self) -> str:
        """The URL path generateContent bodies are POSTed to (what a batch request names)."""
        return urlsplit(self.url).path

    def request_headers(self, key: ApiKey | None) -> dict[str, str]:
        return {"x-goog-api-key": key.value} if key is not None else {}

    @property
    def models_url(self) -> str:
        return f"{self.root}/models"

    def model_entries(self, data: dict[str, Any]) -> list[Any] | None:
        """Gemini lists {"models": [{"name": "models/gemini-2.5-flash", …}]}; the id is the name's tail. (A
        gateway in front may list models as OpenAI does, which is read as such.)"""
        models = data.get("models")
        if not isinstance(models, list):
            return super().model_entries(data)
        entries = [m for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]
        return [{**m, "id": m["name"].removeprefix("models/")} for m in entries]

    def request_payload(self, messages: Messages, schema: Schema | None = None, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of one generateContent call (batch mode sends the same body inside a batch file)."""
        return request_body(messages, {**self.params, **kwargs}, self.requested_model, schema, self.signatures)

    def error_for(self, status: int, body: bytes, headers: dict[str, str], key: ApiKey | None) -> ProviderError:
        detail, delay, key_invalid = google_error(body)
        # Gemini answers a bad key with 400 INVALID_ARGUMENT (reason API_KEY_INVALID): what others call 401.
        error = status_error(self.model_name, 401 if key_invalid else status, detail, headers, key, self.api_base)
        if error.retry_after is None and delay is not None:
            error.retry_after = delay  # RESOURCE_EXHAUSTED says how long to wait in RetryInfo, not a header
        return error

    def _to_response(self, data: dict[str, Any], headers: dict[str, str]) -> LLMResponse:
        usage = data.get("usageMetadata") or {}
        prompt_tokens = int(usage.get("promptTokenCount") or 0)
        # Thinking is billed as output: it counts as completion, as litellm counts it.
        completion_tokens = int(usage.get("candidatesTokenCount") or 0) + int(usage.get("thoughtsTokenCount") or 0)
        cached = int(usage.get("cachedContentTokenCount") or 0)
        candidates = data.get("candidates") or []
        candidate = candidates[0] if isinstance(candidates, list) and candidates else {}
        raw_reason = candidate.get("finishReason") if isinstance(candidate, dict) else None
        content = candidate.get("content") if isinstance(candidate, dict) else None
        all_parts = content.get("parts") if isinstance(content, dict) else None
        calls, signatures = read_calls(data, list(all_parts or ()))
        self._keep(signatures)
        parts = [p for p in all_parts or () if isinstance(p, dict) and isinstance(p.get("text"), str)]
        thoughts = "".join(p["text"] for p in parts if p.get("thought"))
        limits = {k: v for k, v in headers.items() if "ratelimit" in k}
        response = LLMResponse(
            text="".join(p["text"] for p in parts if not p.get("thought")),
            prompt_token_count=prompt_tokens,
            completion_token_count=completion_tokens,
            total_token_count=int(usage.get("totalTokenCount") or prompt_tokens + completion_tokens),
            cached_prompt_tokens=cached,
            finish_reason=finish_with_calls(
                FINISH_REASONS.get(raw_reason, str(raw_reason).lower()) if raw_reason else None, calls
            ),
            model_name=self.model_name,
            raw_response=data,
            reasoning_content=thoughts or None,
            cost=self.priced(prompt_tokens, completion_tokens, cached),
            headers=limits or None,
            tool_calls=calls,
        )
        feedback = data.get("promptFeedback") or {}
        blocked = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if blocked:
            raise self._refused(f"the prompt was blocked (blockReason {blocked})", response)
        if raw_reason in REFUSALS:
            raise self._refused(f"the answer was stopped (finishReason {raw_reason})", response)
        if (
            not parts and not calls and raw_reason != "MAX_TOKENS"
        ):  # a limit that thinking used up leaves no text: a cut answer
            error = ProviderError(
                f"{self.model_name}: empty response (finishReason={raw_reason})", retryable=True, kind="invalid_output"
            )
            error.response = response
            raise error
        return response

    def _keep(self, signatures: dict[str, str]) -> None:
        self.signatures.update(signatures)
        while len(self.signatures) > KEPT_SIGNATURES:
            del self.signatures[next(iter(self.signatures))]

    def _refused(self, what: str, response: LLMResponse) -> ProviderError:
        """One item's content-filter refusal; the answer it carries was billed."""
        error = ProviderError(
            f"{self.model_name}: {what} by Gemini's safety filters", retryable=False, kind="content_filter"
        )
        error.response = response
        return error

    async def aprobe_model(self) -> str | None:
        """The `modelVersion` of the server's answer to a one-token request."""
        data, _ = await self._post(self.request_payload(PROBE_MESSAGES, max_tokens=1))
        model = data.get("modelVersion")
        return model if isinstance(model, str) and model else None
