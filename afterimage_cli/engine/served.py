"""Which model an api_base server actually serves, asked once when a run starts.

A served id goes into the run fingerprint and into every cache key of that model's calls, so loading
another model behind the same URL is a new run (refused on the same output, never answered from the old
model's cache), while another URL serving the same model (a replica) resumes the same run.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

import orjson

from ..config import RetryConfig
from ..errors import ConfigError, ProviderError
from ..providers.base import BaseProvider, LLMProvider
from ..providers.factory import is_provider_endpoint
from ..providers.remote import RemoteProvider
from ..providers.replicas import Replica, ReplicaSet
from .attempts import backoff_delay

T = TypeVar("T")

# Fields of a GET /models entry that describe the weights behind its id: vLLM's `root` (the model a
# served-model-name stands for) and `parent` (a LoRA's base), llama.cpp's `meta` (size, parameters,
# vocabulary). With them, another model loaded under the same alias is still told apart.
DESCRIBING_FIELDS = ("root", "parent", "meta")
# What llama.cpp's `meta` says of how the server was started, not of the weights: a restart with a larger
# context serves the same model, and its run resumes.
SERVER_SETTINGS = frozenset({"n_ctx", "n_batch", "n_ubatch", "n_parallel", "n_threads", "n_slots"})


def asks_for_served_model(provider: LLMProvider) -> bool:
    """Whether the provider calls an api_base that is not its provider's own endpoint (a server of yours)."""
    api_base = getattr(provider, "api_base", None)
    if not isinstance(provider, RemoteProvider) or not api_base:
        return False
    return not is_provider_endpoint(provider.model_name.partition("/")[0], api_base)


def pick_listed(entries: list[Any], requested: str) -> dict[str, Any] | None:
    """The entry of the served model: the only one listed, or the one with the requested name."""
    usable = [e for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"]]
    if len(usable) == 1:
        return usable[0]
    return next((e for e in usable if e["id"] == requested), None)


def served_id(entry: dict[str, Any]) -> str:
    """The entry's id, followed by '#' and a short hash of what describes its weights when the server says."""
    details = {k: entry[k] for k in DESCRIBING_FIELDS if entry.get(k) not in (None, "", entry["id"])}
    if isinstance(details.get("meta"), dict):
        details["meta"] = {k: v for k, v in details["meta"].items() if k not in SERVER_SETTINGS}
    if not details:
        return str(entry["id"])
    digest = hashlib.sha256(orjson.dumps(details, option=orjson.OPT_SORT_KEYS)).hexdigest()[:8]
    return f"{entry['id']}#{digest}"


async def _retrying(call: Callable[[], Awaitable[T]], retry: RetryConfig, sleep: Callable[[float], Any]) -> T:
    """`call` until it succeeds, a non-retryable error, or `retry.max_attempts`."""
    rng = random.Random()
    attempt = 0
    while True:
        try:
            return await call()
        except ProviderError as error:
            attempt += 1
            if not error.retryable or attempt >= retry.max_attempts:
                raise
            await sleep(backoff_delay(attempt - 1, retry, error.retry_after, rng))


async def aserved_model(
    provider: RemoteProvider, retry: RetryConfig, sleep: Callable[[float], Any] = asyncio.sleep
) -> str:
    """What the server at the provider's api_base serves: from GET /models, or else from the `model` field
    of its answer to a one-token request. ProviderError when it cannot be reached or says neither."""
    entries = await _retrying(provider.alist_models, retry, sleep)
    entry = pick_listed(entries, provider.requested_model) if entries is not None else None
    if entry is not None:
        return served_id(entry)
    probed = await _retrying(provider.aprobe_model, retry, sleep)
    if probed is None:
        raise ProviderError(
            f"{provider.model_name}: the server at {provider.api_base} does not say which model it serves "
            "(no usable GET /models, no `model` field in its answers); afterimage needs it to keep the cache "
            "and resume to one model",
            retryable=False,
            kind="bad_request",
        )
    return probed


async def aserved_by_set(replicas: ReplicaSet, retry: RetryConfig) -> str | None:
    """What the servers of a replica set serve, asked of each at once: one model for all, else a ConfigError
    naming them. A server that cannot be reached is taken out (its probes bring it back); None when no
    replica is a server of yours (hosted deployments)."""
    asking = [r for r in replicas.replicas if asks_for_served_model(r.transport)]
    if not asking:
        return None
    answers = await asyncio.gather(
        *(aserved_model(cast(RemoteProvider, r.transport), retry) for r in asking), return_exceptions=True
    )
    ids: dict[str, str] = {}
    failures: list[tuple[Replica, ProviderError]] = []
    for replica, answer in zip(asking, answers, strict=True):
        if isinstance(answer, ProviderError) and answer.kind in ("connection", "timeout", "server"):
            replicas.take_out(replica, answer)
            failures.append((replica, answer))
        elif isinstance(answer, BaseException):
            raise answer
        else:
            ids[replica.name] = answer
    if not ids:
        raise replicas.all_failed(failures)
    if len(set(ids.values())) > 1:
        said = ", ".join(f"{name} serves {ident}" for name, ident in ids.items())
        raise ConfigError(
            f"{replicas.config_path or replicas.model_name}.api_base: its replicas serve different models ({said}); "
            "replicas of one model block must serve the same model"
        )
    return next(iter(ids.values()))


async def aidentify_served(roles: Mapping[str, tuple[LLMProvider, LLMProvider]], retry: RetryConfig) -> dict[str, str]:
    """Ask each role's server (role → (raw provider, the provider the run calls)) which model it serves,
    once per server and model; mark the called provider with it and return role → served id. The replicas
    of a set are one server here: they serve one model, whichever and however many are listed."""
    asked: dict[tuple[str, ...], str | None] = {}
    served: dict[str, str] = {}
    for role, (raw, called) in roles.items():
        if isinstance(raw, ReplicaSet):
            where: tuple[str, ...] = (*raw.names, raw.model_name)
            if where not in asked:
                asked[where] = await aserved_by_set(raw, retry)
        elif asks_for_served_model(raw):
            assert isinstance(raw, RemoteProvider) and raw.api_base is not None
            where = (raw.api_base, raw.model_name)
            if where not in asked:
                asked[where] = await aserved_model(raw, retry)
        else:
            continue
        ident = asked[where]
        if ident is None:
            continue
        if isinstance(called, BaseProvider):  # what the run calls: the cache keys, rows record
            called.served_model_id = ident
        served[role] = ident
    return served


def models_metadata(respondent: LLMProvider, correspondent: LLMProvider | None = None) -> dict[str, Any]:
    """A row's `metadata.models`: each role's model, and under `served` what its server said it serves."""
    roles = {"respondent": respondent, "correspondent": correspondent}
    models: dict[str, Any] = {role: p.model_name for role, p in roles.items() if p is not None}
    served = {role: getattr(p, "served_model_id", None) for role, p in roles.items()}
    served = {role: ident for role, ident in served.items() if ident}
    if served:
        models["served"] = served
    return models
