"""Anthropic Message Batches (/v1/messages/batches): the requests go inline in one POST, the results come
back as one JSONL file once the whole batch has ended."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

import orjson

from ...config import RetryConfig
from ...errors import ProviderError
from ..anthropic_direct import API_VERSION as ANTHROPIC_VERSION
from ..http_errors import status_error
from ..keypool import ApiKey, SmartKeyPool
from .base import BatchAPI, BatchInfo, BatchRequest, LineResult
from .http import SUBMIT_PATIENCE, BatchHTTP, Sleep, jsonl_objects

DEFAULT_BASE = "https://api.anthropic.com"
# The HTTP status each error type of the Messages API stands for, so a failed line maps exactly as the
# same error of an online call (429 and 5xx retried, 400 by its message: "prompt is too long" → context).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_ENVELOPE_HEAD, _ENVELOPE_TAIL = b'{"requests":[', b"]}"
# What the API accepts as a custom_id (a stricter rule than OpenAI's, so ids that pass here pass both).
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


class AnthropicBatchAPI(BatchAPI):
    """Message Batches under one key (x-api-key, anthropic-version)."""

    name = "anthropic"
    # At most 100,000 requests or 256 MB per batch, whichever comes first.
    max_requests = 100_000
    # 16 MB under 256 MB: the limit's unit (10^6 or 2^20 bytes) is not stated and this is below both; the
    # one POST also carries the JSON envelope, which encode() does not count.
    max_bytes = 240_000_000

    def __init__(
        self,
        model: str,
        api_base: str | None,
        keys: SmartKeyPool | None,
        *,
        timeout: float = 60.0,
        retry: RetryConfig | None = None,
        version: str = ANTHROPIC_VERSION,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """`api_base` is the API's root, with or without /v1 (https://api.anthropic.com)."""
        self.model = model
        self.version = version
        base = (api_base or DEFAULT_BASE).rstrip("/").removesuffix("/v1")
        self.root = base + "/v1/messages/batches"
        self.http = BatchHTTP(model, base, keys, self._auth, timeout=timeout, retry=retry, sleep=sleep)

    def _auth(self, key: ApiKey | None) -> dict[str, str]:
        headers = {"anthropic-version": self.version}
        if key is not None:
            headers["x-api-key"] = key.value
        return headers

    def encode(self, request: BatchRequest) -> bytes:
        """The request's entry in the create body, with the comma after it (the last entry's comma gives
        way to the closing bracket: the body is sum(encode) + 14 bytes). An id the API would refuse is a
        ValueError here, before anything is sent."""
        if not CUSTOM_ID.fullmatch(request.custom_id):
            raise ValueError(f"custom_id {request.custom_id!r}: Anthropic takes 1 to 64 of a-z, A-Z, 0-9, _ and -")
        return orjson.dumps({"custom_id": request.custom_id, "params": request.body}) + b","

    async def submit(self, requests: Sequence[BatchRequest], metadata: dict[str, str]) -> str:
        """Create the batch in one POST. A 429 or an error the API answered itself is retried; a dropped
        connection or a gateway timeout is not, because the batch may exist and there is no metadata to
        find it by: the error says so, and a second submit could run (and bill) every request twice."""
        if not requests:
            raise ValueError("a batch needs at least one request")
        body = _ENVELOPE_HEAD + b"".join(self.encode(r) for r in requests)[:-1] + _ENVELOPE_TAIL

        async def create() -> str:
            try:
                batch = await self.http.json("POST", self.root, data=body, patience=SUBMIT_PATIENCE)
            except ProviderError as error:
                if error.kind not in ("connection", "timeout") and error.status_code != 504:
                    raise
                raise ProviderError(
                    f"{error}; the batch of {len(requests)} requests may have been created all the same "
                    "(Message Batches keep no metadata to find it by): see the Anthropic console",
                    retryable=False,
                    status_code=error.status_code,
                    kind=error.kind,
                ) from error
            return str(batch["id"])

        return await self.http.retrying(create)

    async def find(self, metadata: dict[str, str]) -> str | None:
        """Always None: Message Batches keep no metadata (nor anything else of the caller's) to recognise a
        batch by, so a batch whose id was lost cannot be adopted."""
        return None

    async def _request(self, method: str, url: str) -> dict[str, Any]:
        return await self.http.retrying(lambda: self.http.json(method, url))

    async def retrieve(self, batch_id: str) -> BatchInfo:
        return self._info(await self._request("GET", f"{self.root}/{batch_id}"))

    def _info(self, batch: dict[str, Any]) -> BatchInfo:
        counts = {k: int(v) for k, v in (batch.get("request_counts") or {}).items() if isinstance(v, int)}
        status = str(batch.get("processing_status"))
        return BatchInfo(
            id=str(batch["id"]),
            status=status,
            total=sum(counts.values()),
            completed=counts.get("succeeded", 0),
            failed=counts.get("errored", 0),
            done=status == "ended",
            counts=counts,
        )

    async def results(self, batch_id: str) -> dict[str, LineResult]:
        """Nothing until the batch has ended (Anthropic publishes results only then), then every line that
        succeeded or errored; canceled and expired lines are left out. Read from the documented route
        under api_base rather than the batch's results_url, so the key never goes to another host."""
        if not (await self.retrieve(batch_id)).done:
            return {}

        async def download() -> list[dict[str, Any]]:
            body, _ = await self.http.send("GET", f"{self.root}/{batch_id}/results")
            return jsonl_objects(body)

        found: dict[str, LineResult] = {}
        for line in await self.http.retrying(download):
            result = self._line(line)
            if result is not None:
                found[result.custom_id] = result
        return found

    def _line(self, line: dict[str, Any]) -> LineResult | None:
        custom_id = str(line.get("custom_id"))
        result = _object(line.get("result"))
        kind = result.get("type")
        if kind == "succeeded" and isinstance(result.get("message"), dict):
            return LineResult(custom_id, result["message"], {}, None)
        if kind in ("canceled", "expired"):
            return None
        if kind == "errored":
            inner = _object(_object(result.get("error")).get("error"))  # {type: error, error: {type, message}}
            return LineResult(custom_id, None, {}, self._line_error(str(inner.get("type")), inner.get("message")))
        failure = ProviderError(f"{self.model}: a batch result of unknown shape", retryable=True, kind="invalid_output")
        return LineResult(custom_id, None, {}, failure)

    def _line_error(self, error_type: str, message: Any) -> ProviderError:
        detail = str(message or error_type)
        if error_type == "billing_error":  # no credit left: every later request fails the same way
            return ProviderError(f"{self.model}: billing error: {detail}", retryable=False, kind="billing")
        status = ERROR_STATUS.get(error_type, 500)
        return status_error(self.model, status, detail, {}, None, None)

    async def cancel(self, batch_id: str) -> None:
        await self._request("POST", f"{self.root}/{batch_id}/cancel")

    async def aclose(self) -> None:
        await self.http.aclose()


def _object(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (a result line of another shape)."""
    return value if isinstance(value, dict) else {}
