"""The OpenAI batch protocol (/files + /batches): api.openai.com, OpenAI-compatible servers that offer
/v1/batches, and Azure OpenAI (its classic `{base}/openai/...?api-version=` routes, or its /openai/v1 API)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson

from ...config import RetryConfig
from ...errors import ProviderError
from ..http_errors import refusal_kind, status_error
from ..http_transport import error_message
from ..keypool import ApiKey, SmartKeyPool
from .base import BatchAPI, BatchInfo, BatchRequest, LineResult
from .http import SUBMIT_PATIENCE, BatchHTTP, Sleep, jsonl_objects

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# Lines the batch never ran: OpenAI lists them in the error file under these codes. They are not failures
# of the request, so results() leaves them out like any unanswered line, and the caller resubmits them.
NOT_RUN = frozenset({"batch_expired", "batch_cancelled"})
# A failed batch with only these codes was refused for capacity (the organisation's enqueued-token quota),
# not for its input: the same requests succeed once running batches finish.
CAPACITY_CODES = frozenset({"token_limit_exceeded"})
# How many pages of the batch list find() reads, newest first (100 a page, the API's largest): a batch to
# adopt was created moments before the crash that lost its id, so it is near the top.
FIND_PAGES, FIND_PAGE_SIZE = 10, 100


class OpenAIBatchAPI(BatchAPI):
    """Batches of chat completions over the OpenAI protocol."""

    name = "openai"
    # OpenAI: at most 50,000 requests and 200 MB per input file (Azure: 100,000 requests; 50,000 fits both).
    max_requests = 50_000
    # 5 % under 200 MB: the documentation does not say whether MB is 10^6 or 2^20 bytes (this is below
    # both), and the multipart envelope around the file counts toward the upload too.
    max_bytes = 190_000_000

    def __init__(
        self,
        model: str,
        api_base: str,
        keys: SmartKeyPool | None,
        *,
        timeout: float = 60.0,
        retry: RetryConfig | None = None,
        api_version: str | None = None,
        key_header: str = "Authorization",
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """`api_base` is the /v1 URL (https://api.openai.com/v1). With `api_version` it is a classic Azure
        resource (https://NAME.openai.azure.com): routes under /openai, `?api-version=` on each, endpoint
        /chat/completions. `key_header` "api-key" sends the key as Azure wants it."""
        self.model = model
        self.key_header = key_header
        base = api_base.rstrip("/")
        if api_version is not None:
            base = base.removesuffix("/openai")
            self.root = base + "/openai"
            self.endpoint = "/chat/completions"
            self.params: dict[str, str] = {"api-version": api_version}
        else:
            self.root = base
            self.endpoint = "/v1/chat/completions"
            self.params = {}
        self.http = BatchHTTP(model, api_base, keys, self._auth, timeout=timeout, retry=retry, sleep=sleep)

    def _auth(self, key: ApiKey | None) -> dict[str, str]:
        if key is None:
            return {}
        return {"api-key": key.value} if self.key_header == "api-key" else {"Authorization": f"Bearer {key.value}"}

    def encode(self, request: BatchRequest) -> bytes:
        line = {"custom_id": request.custom_id, "method": "POST", "url": self.endpoint, "body": request.body}
        return orjson.dumps(line) + b"\n"

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One JSON call, retried while it fails retryably."""
        params = {**self.params, **kwargs.pop("params", {})}
        url = self.root + path
        return await self.http.retrying(lambda: self.http.json(method, url, params=params or None, **kwargs))

    async def submit(self, requests: Sequence[BatchRequest], metadata: dict[str, str]) -> str:
        """Upload the JSONL file, then create the batch. A create whose answer was lost (dropped connection,
        5xx) may have made the batch all the same: before trying again it looks for it by its metadata."""
        if not requests:
            raise ValueError("a batch needs at least one request")
        content = b"".join(self.encode(r) for r in requests)

        def form() -> Any:
            import aiohttp

            data = aiohttp.FormData()
            data.add_field("purpose", "batch")
            data.add_field("file", content, filename="afterimage-batch.jsonl", content_type="application/jsonl")
            return data

        uploaded = await self._request("POST", "/files", form=form, patience=SUBMIT_PATIENCE)
        payload = {
            "input_file_id": uploaded["id"],
            "endpoint": self.endpoint,
            "completion_window": "24h",
            "metadata": metadata,
        }
        tries = 0

        async def create() -> str:
            nonlocal tries
            tries += 1
            if tries > 1 and (adopted := await self.find(metadata)) is not None:
                return adopted
            url, params = self.root + "/batches", self.params or None
            batch = await self.http.json("POST", url, json=payload, params=params, patience=SUBMIT_PATIENCE)
            return str(batch["id"])

        return await self.http.retrying(create)

    async def find(self, metadata: dict[str, str]) -> str | None:
        """The newest batch among the latest FIND_PAGES * FIND_PAGE_SIZE whose metadata equal `metadata`."""
        after: str | None = None
        for _ in range(FIND_PAGES):
            params = {"limit": str(FIND_PAGE_SIZE), **({"after": after} if after else {})}
            page = await self._request("GET", "/batches", params=params)
            batches = [b for b in page.get("data") or () if isinstance(b, dict)]
            for batch in batches:
                if batch.get("metadata") == metadata:
                    return str(batch["id"])
            if not batches or page.get("has_more") is False:
                return None
            after = str(batches[-1]["id"])
        return None

    async def retrieve(self, batch_id: str) -> BatchInfo:
        return self._info(await self._request("GET", f"/batches/{batch_id}"))

    def _info(self, batch: dict[str, Any]) -> BatchInfo:
        counts = batch.get("request_counts") or {}
        status = str(batch.get("status"))
        errors = [e for e in ((batch.get("errors") or {}).get("data") or ()) if isinstance(e, dict)]
        error = None
        if status == "failed":
            error = "; ".join(_describe(e) for e in errors) or "the provider gave no reason"
        return BatchInfo(
            id=str(batch["id"]),
            status=status,
            total=int(counts.get("total") or 0),
            completed=int(counts.get("completed") or 0),
            failed=int(counts.get("failed") or 0),
            done=status in TERMINAL,
            error=error,
            retry_later=bool(errors) and all(e.get("code") in CAPACITY_CODES for e in errors),
            counts={k: int(v) for k, v in counts.items() if isinstance(v, int)},
        )

    async def results(self, batch_id: str) -> dict[str, LineResult]:
        """The output file's lines, then the error file's; OpenAI does not keep the input's order."""
        batch = await self._request("GET", f"/batches/{batch_id}")
        found: dict[str, LineResult] = {}
        for file_id in (batch.get("error_file_id"), batch.get("output_file_id")):
            if not file_id:
                continue
            url = f"{self.root}/files/{file_id}/content"

            async def download(url: str = url) -> list[dict[str, Any]]:
                body, _ = await self.http.send("GET", url, params=self.params or None)
                return jsonl_objects(body)

            for line in await self.http.retrying(download):
                result = self._line(line)
                if result is not None:  # an answer in the output file wins over an error for the same id
                    found[result.custom_id] = result
        return found

    def _line(self, line: dict[str, Any]) -> LineResult | None:
        """One line of the output or error file; None for a line the batch never ran."""
        custom_id = str(line.get("custom_id"))
        response = line.get("response") if isinstance(line.get("response"), dict) else None
        request_id = response.get("request_id") if response else None
        headers = {"x-request-id": str(request_id)} if request_id else {}
        status = response.get("status_code") if response else None
        if isinstance(status, int):
            body = response.get("body") if response else None
            if status < 400 and isinstance(body, dict):
                return LineResult(custom_id, body, headers, None)
            if status >= 400:
                detail = error_message(orjson.dumps(body))
                return LineResult(custom_id, None, headers, status_error(self.model, status, detail, {}, None, None))
        error = line.get("error") if isinstance(line.get("error"), dict) else None
        if error is None:
            failure = ProviderError(
                f"{self.model}: a batch line without an answer or an error", retryable=True, kind="invalid_output"
            )
            return LineResult(custom_id, None, headers, failure)
        code = str(error.get("code") or "")
        if code in NOT_RUN:
            return None
        return LineResult(custom_id, None, headers, _line_error(self.model, code, str(error.get("message") or code)))

    async def cancel(self, batch_id: str) -> None:
        await self._request("POST", f"/batches/{batch_id}/cancel")

    async def aclose(self) -> None:
        await self.http.aclose()


def _describe(error: dict[str, Any]) -> str:
    """One entry of a failed batch's errors, with the input file's line number when it gives one."""
    where = f"line {error['line']}: " if error.get("line") is not None else ""
    code = f" ({error['code']})" if error.get("code") else ""
    return f"{where}{error.get('message') or 'invalid'}{code}"


def _line_error(model: str, code: str, message: str) -> ProviderError:
    """A line the batch ran but could not answer, known by an error code instead of an HTTP status: a
    timeout or anything unknown is retried; a refusal of the prompt itself is the item's, as online."""
    if code == "request_timeout":
        return ProviderError(f"{model}: the request timed out inside the batch", retryable=True, kind="timeout")
    kind = refusal_kind(400, f"{code} {message}")
    if kind != "bad_request":
        return ProviderError(f"{model}: the request was refused: {message}", retryable=False, kind=kind)
    return ProviderError(
        f"{model}: the batch could not answer the request: {message} ({code})", retryable=True, kind="server"
    )
