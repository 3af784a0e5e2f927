"""Batch APIs (OpenAI /v1/batches, Azure, OpenAI-compatible servers, Anthropic Message Batches): the
provider side of batch mode. The round scheduler builds request bodies with a transport's
request_payload(), submits them here, and reads each answered line with the transport's answer_from()."""

from __future__ import annotations

from .anthropic_batches import AnthropicBatchAPI
from .base import BatchAPI, BatchInfo, BatchRequest, LineResult
from .factory import batch_api_for
from .openai_batches import OpenAIBatchAPI

__all__ = [
    "AnthropicBatchAPI",
    "BatchAPI",
    "BatchInfo",
    "BatchRequest",
    "LineResult",
    "OpenAIBatchAPI",
    "batch_api_for",
]
