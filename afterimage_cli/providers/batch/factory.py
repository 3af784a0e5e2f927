"""Which batch client serves a model: the one that speaks its direct transport's protocol."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ...config import RetryConfig
from ...errors import ConfigError
from ..base import LLMProvider
from ..remote import RemoteProvider
from .anthropic_batches import AnthropicBatchAPI
from .base import BatchAPI
from .openai_batches import OpenAIBatchAPI

OPENAI_BASE = "https://api.openai.com/v1"
# The first GA version of Azure OpenAI's REST API with /batches; AZURE_API_VERSION (litellm's variable too)
# or a transport's `api_version` picks another.
AZURE_API_VERSION = "2024-10-21"
AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")


def _transport(provider: LLMProvider) -> Any:
    """The transport under the wrappers a run puts around it (retries, cache)."""
    while hasattr(provider, "inner"):
        provider = provider.inner
    return provider


def is_azure(model: str, api_base: str | None) -> bool:
    """An Azure OpenAI deployment: an `azure/` model, or an api_base on an Azure OpenAI host."""
    host = (urlsplit(api_base).hostname or "").lower() if api_base else ""
    return model.startswith("azure/") or host.endswith(AZURE_HOSTS)


def batch_api_for(
    provider: LLMProvider, *, environ: Mapping[str, str] | None = None, retry: RetryConfig | None = None
) -> BatchAPI:
    """The batch client for a built direct transport, with its api_base, key pool and timeout. A transport
    says which batch protocol it speaks by its class attribute `batch_protocol` ("openai" | "anthropic")."""
    env = os.environ if environ is None else environ
    transport = _transport(provider)
    protocol = getattr(transport, "batch_protocol", None)
    model = provider.model_name
    if not isinstance(transport, RemoteProvider) or protocol not in ("openai", "anthropic"):
        where = f"{transport.config_path}: " if getattr(transport, "config_path", "") else ""
        raise ConfigError(
            f"{where}{model} cannot run in batch mode: it needs an OpenAI-protocol model (openai/…, azure/…, or "
            "an api_base server that offers /v1/batches) or an Anthropic model (anthropic/…) on its direct "
            f"transport, and {model} goes through {type(transport).__name__}"
        )
    settings: dict[str, Any] = {"timeout": transport.timeout, "retry": retry}
    if protocol == "anthropic":
        base = transport.api_base or env.get("ANTHROPIC_BASE_URL")
        return AnthropicBatchAPI(model, base, transport.keys, **settings)
    if not is_azure(model, transport.api_base):
        return OpenAIBatchAPI(model, transport.api_base or OPENAI_BASE, transport.keys, **settings)
    if not transport.api_base:
        raise ConfigError(f"{model}: an Azure model needs api_base (https://NAME.openai.azure.com) for batch mode")
    # Azure's /openai/v1 API is the OpenAI protocol itself; its classic routes want an api-version.
    v1 = "/openai/v1" in (urlsplit(transport.api_base).path or "")
    version = None if v1 else getattr(transport, "api_version", None) or env.get("AZURE_API_VERSION", AZURE_API_VERSION)
    return OpenAIBatchAPI(
        model, transport.api_base, transport.keys, api_version=version, key_header="api-key", **settings
    )
