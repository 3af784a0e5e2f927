"""One mapping from an HTTP error status to a ProviderError, shared by both transports so a failure
reads and retries the same whichever path the request took."""

from __future__ import annotations

import re

from ..errors import ProviderError
from .keypool import ApiKey
from .ratelimit import parse_duration


def retry_after(headers: dict[str, str]) -> float | None:
    """Seconds from Retry-After (or retry-after-ms), if present."""
    if "retry-after-ms" in headers:
        ms = parse_duration(headers["retry-after-ms"])
        if ms is not None:
            return ms / 1000
    return parse_duration(headers.get("retry-after"))


# How servers say "this prompt is too long for the model" (OpenAI, vLLM, llama.cpp, Anthropic, Gemini, Ollama);
# Anthropic also says "input length and `max_tokens` exceed context limit" when the prompt leaves no room.
_CONTEXT_LIMIT = re.compile(
    r"context_length_exceeded|exceed_context_size|maximum context length|context (?:size|window|length)"
    r"|prompt is too long|too many (?:input )?tokens|input is too long|exceeds the (?:available )?context"
    r"|exceeds the maximum number of tokens|exceed context limit",
    re.IGNORECASE,
)
# How they say "I will not answer this prompt" (OpenAI/Azure content filter, Gemini safety blocks).
_CONTENT_FILTER = re.compile(
    r"content[_ ]?filter|content[_ ]policy|content management policy|responsible ?ai|safety (?:system|settings)"
    r"|blocked (?:by|due to) safety|prohibited content",
    re.IGNORECASE,
)


# Statuses that say "not now, send less": waited out without using up attempts, and what the adaptive
# limit cuts on. Anthropic answers 529 when its API as a whole is overloaded (not this key's limit).
BACK_PRESSURE = {429: "rate limited", 529: "overloaded"}


def refusal_kind(status: int, detail: str) -> str:
    """Which kind of 4xx refusal: one item's prompt too long, one item's content filtered, or a bad request."""
    if status == 413 or _CONTEXT_LIMIT.search(detail):
        return "context_limit"
    if _CONTENT_FILTER.search(detail):
        return "content_filter"
    return "bad_request"


def status_error(
    model: str, status: int, detail: str, headers: dict[str, str], key: ApiKey | None, api_base: str | None
) -> ProviderError:
    """What an error status means: 429 (and Anthropic's 529, overloaded) waits, 401/403 blame the key, 404 the
    model name, 400s the request; anything else is the server's problem and is retried."""
    if status in BACK_PRESSURE:
        return ProviderError(
            f"{model}: {BACK_PRESSURE[status]} ({status})",
            retryable=True,
            status_code=status,
            retry_after=retry_after(headers),
            kind="rate_limit",
            headers=headers,
        )
    if status in (401, 403):
        if key is None and api_base:  # a server of yours gets a key only when its variable is named
            message = f"{model}: {api_base} wants a key ({status}) and none was sent: name its variable with "
            message += "api_key_env in the model block, or --api-key-env NAME"
        else:
            hint = f" (key from {key.env_name})" if key else ""
            message = f"{model}: the API key was rejected ({status}){hint}: check the key variable"
        return ProviderError(message, retryable=False, status_code=status, kind="auth")
    if status == 404:
        where = f" at {api_base}" if api_base else ""
        return ProviderError(
            f"{model}: model or endpoint not found (404){where}: check the model name and api_base",
            retryable=False,
            status_code=status,
            kind="not_found",
        )
    if status in (400, 413, 422):
        return ProviderError(
            f"{model}: the request was refused ({status}): {detail}",
            retryable=False,
            status_code=status,
            kind=refusal_kind(status, detail),
        )
    return ProviderError(
        f"{model}: server error ({status}): {detail}", retryable=True, status_code=status, kind="server"
    )
