"""What every batch API client offers the round scheduler: submit a file of requests, watch it, read its
lines back as the same response bodies an online call returns, with failed lines mapped to the same
ProviderErrors an online call raises."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import ProviderError


@dataclass(frozen=True)
class BatchRequest:
    """One line of a batch: the caller's id for it and the body a transport's request_payload() built."""

    custom_id: str
    body: dict[str, Any]


@dataclass
class BatchInfo:
    """Where a batch stands, in the provider's own words."""

    id: str
    # OpenAI: validating, in_progress, finalizing, completed, failed, expired, cancelling, cancelled.
    # Anthropic: in_progress, canceling, ended.
    status: str
    total: int
    completed: int
    failed: int
    done: bool  # terminal: nothing more will come
    # For a batch the provider refused as a whole (OpenAI `failed`): its message with the line number(s).
    error: str | None = None
    # The refusal passes with time (OpenAI `token_limit_exceeded`: the organisation's enqueued-token quota is
    # full until running batches finish): resubmit the requests later instead of stopping the run.
    retry_later: bool = False
    # The provider's own counts, as it gives them (for display): request_counts of either protocol.
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class LineResult:
    """The answer to one request of a batch: a response body, or the error an online call would raise."""

    custom_id: str
    body: dict[str, Any] | None  # the same JSON an online call returns, on success
    headers: dict[str, str]
    error: ProviderError | None


class BatchAPI(ABC):
    """A provider's batch endpoint, over one HTTP session. HTTP failures raise ProviderError mapped as an
    online call's (providers/http_errors.py); submit, retrieve and results retry 5xx, 429 and dropped
    connections a few times themselves (engine/attempts.py), so a caller sees only what outlasted that."""

    name: str  # "openai" | "anthropic"
    max_requests: int  # per batch
    max_bytes: int  # per batch input, already below the provider's limit by a safety margin

    @abstractmethod
    def encode(self, request: BatchRequest) -> bytes:
        """The exact bytes `request` adds to a batch's input (for splitting a round by size)."""

    @abstractmethod
    async def submit(self, requests: Sequence[BatchRequest], metadata: dict[str, str]) -> str:
        """Upload and create one batch; its id."""

    @abstractmethod
    async def find(self, metadata: dict[str, str]) -> str | None:
        """The newest batch created with exactly these metadata (to adopt one whose id a crash lost
        between create and recording it); None when there is none or the API cannot tell."""

    @abstractmethod
    async def retrieve(self, batch_id: str) -> BatchInfo:
        """The batch's status and counts."""

    @abstractmethod
    async def results(self, batch_id: str) -> dict[str, LineResult]:
        """Every answered line by custom_id, succeeded or failed. Lines the batch never ran (it expired or
        was cancelled first) are absent: the caller resubmits them."""

    @abstractmethod
    async def cancel(self, batch_id: str) -> None:
        """Ask the provider to stop the batch; lines already answered stay readable through results()."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the HTTP session."""
