"""The HTTP side of the batch clients: one aiohttp session, one key, errors mapped as an online call's, and a
few retries of 5xx, 429 and dropped connections under the retry policy of engine/attempts.py."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson

from ...config import RetryConfig
from ...engine.attempts import CallAttempts
from ...errors import ITEM_LEVEL_KINDS, ProviderError
from ..http_errors import status_error
from ..http_transport import error_message
from ..keypool import ApiKey, SmartKeyPool

T = TypeVar("T")

# Few and short: the round scheduler polls again anyway, and a provider down for minutes should reach it
# as an error rather than hold a round in a hidden wait.
BATCH_RETRY = RetryConfig(max_attempts=4, base_delay=1.0, max_delay=20.0, rate_limit_patience=120.0)
# How long a submit may wait for the answer once its body is sent: the provider reads and checks up to
# hundreds of MB before it answers, and a submit given up on may have made its batch all the same.
SUBMIT_PATIENCE = 600.0
AuthHeaders = Callable[[ApiKey | None], dict[str, str]]
Sleep = Callable[[float], Awaitable[None]]


class BatchHTTP:
    """Requests to one provider's batch endpoints, all under the same key: a batch belongs to the
    organisation or project of the key that created it, so a pool's other keys may not even see it."""

    def __init__(
        self,
        model: str,
        api_base: str,
        keys: SmartKeyPool | None,
        auth: AuthHeaders,
        *,
        timeout: float = 60.0,
        retry: RetryConfig | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.keys = keys
        self.auth = auth
        self.timeout = timeout
        self.retry = retry or BATCH_RETRY
        self._sleep = sleep
        self._rng = random.Random()
        self._session: Any = None

    def _key(self) -> ApiKey | None:
        """The pool's first key not rejected; MissingCredentialsError when every key was."""
        return None if self.keys is None else self.keys._live()[0]

    def _client(self) -> Any:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16, ttl_dns_cache=300))
        return self._session

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()` until it succeeds or fails for good (non-retryable, or out of attempts)."""
        attempts = CallAttempts(self.retry, rng=self._rng)
        while True:
            try:
                return await attempt()
            except ProviderError as error:
                delay = attempts.delay_after(error)
                if delay is None:
                    raise
                await self._sleep(delay)

    # Uploads and result files run to hundreds of MB: a request is bounded by a stall (no byte for a while),
    # not by a total time.
    async def send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        form: Callable[[], Any] | None = None,
        params: dict[str, str] | None = None,
        patience: float | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """One request; its body and lower-cased headers. An error status raises the ProviderError an
        online call would (429 and 5xx retryable, 401/403 auth, 400 by its message), a 404 says what is
        missing, a dropped connection or stall is a retryable connection error or timeout. `patience`:
        seconds without a byte before the request is given up (default: the model's timeout)."""
        import aiohttp

        key = self._key()
        headers = self.auth(key)
        if json is not None:
            data = orjson.dumps(json)
        if data is not None:
            headers["Content-Type"] = "application/json"
        payload = form() if form is not None else data
        stall = max(patience or 0.0, self.timeout)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=stall)
        request = self._client().request(method, url, data=payload, params=params, headers=headers, timeout=timeout)
        try:
            async with request as response:
                body = await response.read()
                answer_headers = {k.lower(): v for k, v in response.headers.items()}
                status = response.status
        except TimeoutError:
            raise ProviderError(
                f"{self.model}: {method} {url} stalled for {stall:g} s", retryable=True, kind="timeout"
            ) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(
                f"{self.model}: cannot reach the batch API at {self.api_base}: {exc}", retryable=True, kind="connection"
            ) from exc
        if status >= 400:
            raise self._status_error(method, url, status, body, answer_headers, key)
        return body, answer_headers

    def _status_error(
        self, method: str, url: str, status: int, body: bytes, headers: dict[str, str], key: ApiKey | None
    ) -> ProviderError:
        detail = error_message(body)
        if status == 404:
            return ProviderError(
                f"{self.model}: {method} {url} answered 404 ({detail}): no such batch or file under this key, "
                "or the server does not offer the batch API",
                retryable=False,
                status_code=404,
                kind="not_found",
            )
        error = status_error(self.model, status, detail, headers, key, self.api_base)
        if error.kind in ITEM_LEVEL_KINDS:  # a refusal of a whole batch call is no one item's fault
            error.kind = "bad_request"
        if key is not None and self.keys is not None:
            self.keys.report_error(key, error.status_code, error.retry_after)
        return error

    async def json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """One request whose answer is a JSON object."""
        body, _ = await self.send(method, url, **kwargs)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise ProviderError(
                f"{self.model}: {method} {url} answered with a malformed body ({len(body)} bytes)",
                retryable=True,
                kind="invalid_output",
            )
        return data

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def jsonl_objects(content: bytes) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file; blank lines skipped, a line that is not an object is an error
    (a torn download is retried by the caller like any malformed answer)."""
    objects = []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise ProviderError(
                f"line {number} of a batch result file is not a JSON object", retryable=True, kind="invalid_output"
            )
        objects.append(value)
    return objects
