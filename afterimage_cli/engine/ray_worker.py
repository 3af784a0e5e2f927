"""A Ray worker: the same run as the driver's (providers, cache, retries, generator), built from the driver's
config, personas and document chunks, that makes one numbered item's row when asked. It writes nothing and
keeps no state worth losing: the driver writes rows and the ledger, so a worker that dies is replaced and
its unfinished items run elsewhere."""

from __future__ import annotations

import asyncio
import os
import traceback
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from ..config import Config
from ..documents import Corpus
from ..errors import BudgetExceeded, ItemRejected, ProviderError, RunAborted
from ..monitor import GenerationMonitor, Usage
from ..providers.litellm_provider import LOCAL_DATA
from ..types import Persona
from .ray_limits import SharedLimiter, shared_limiters

USAGE_FIELDS = ("calls", "prompt_tokens", "completion_tokens", "cached_prompt_tokens", "cache_creation_tokens", "cost")


@dataclass
class WorkerBrief:
    """What the driver prepared once and every worker starts from."""

    cfg: Config
    fingerprint: str
    personas: list[Persona]
    served: dict[str, str]
    corpus: Corpus | None
    cwd: str  # the driver's, so relative paths (cache, templates) mean the same on its node
    coordinator: Any = None  # the LimitsCoordinator actor


@dataclass
class Counts:
    """What a worker's monitor counted since its last report (the driver adds it to the run's)."""

    usage: dict[str, Any] = field(default_factory=dict)
    cache_hits: int = 0
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    regenerated: Counter[str] = field(default_factory=Counter)
    ended_early: Counter[str] = field(default_factory=Counter)


def worker_config(cfg: Config) -> Config:
    """The driver's config as a worker runs it: personas come from the driver (never generated again), and a
    local Qdrant index, which one process at a time may open, becomes an in-memory copy of each worker's own."""
    update: dict[str, Any] = {"persona_generation": None, "personas_file": None, "personas": []}
    if cfg.retriever is not None and cfg.retriever.url is None:
        update["retriever"] = cfg.retriever.model_copy(update={"path": ":memory:"})
    elif cfg.retriever is None and cfg.documents is not None:
        from ..config import RetrieverConfig

        update["retriever"] = RetrieverConfig(path=":memory:")
    return cfg.model_copy(update=update)


# Variables a worker reads besides the keys: litellm's bundled data (no download), and where the response cache lives.
PASSED_ON = (*LOCAL_DATA, "XDG_CACHE_HOME")


def worker_env(cfg: Config, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of this process a worker on another node needs: every key variable the config names
    (`api_key_env` anywhere in it), the providers' usual key and URL variables, and PASSED_ON; those set here."""
    from ..providers.factory import ENDPOINTS

    names = set(PASSED_ON)
    for entry in ENDPOINTS.values():
        names.update(n for n in (entry.key_env, *entry.base_env) if n)
    stack: list[Any] = [cfg.model_dump(mode="json")]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            named = node.get("api_key_env")
            names.update([named] if isinstance(named, str) else named or [])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return {name: environ[name] for name in sorted(names) if name in environ}


class ItemWorker:
    """One worker's run, built on first use (again after Ray restarts the process)."""

    def __init__(self, brief: WorkerBrief, name: str = "") -> None:
        self.brief = brief
        self.name = name  # the driver's name for this worker (its place and how many times it was replaced)
        self.run: Any = None
        self.monitor = GenerationMonitor(0, Console(stderr=True, quiet=True))
        self._reported = Counts()
        self._building = asyncio.Lock()
        self._finished: list[dict[str, Any]] = []
        self._any_finished = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()

    async def ready(self) -> int:
        """Build the run (providers, retrieval index) now; this process's id."""
        await self._build()
        return os.getpid()

    async def _build(self) -> Any:
        async with self._building:
            if self.run is None:
                self.run = await self._make_run()
        return self.run

    async def _make_run(self) -> Any:
        from ..pipeline import build_run
        from ..resources import Resources

        brief = self.brief
        if os.path.isdir(brief.cwd):
            os.chdir(brief.cwd)
        cfg = worker_config(brief.cfg)
        run = build_run(cfg, self.monitor, Resources(cfg, corpus=brief.corpus))
        run.generator.personas = list(brief.personas)
        run.generator.fingerprint = run.fingerprint = brief.fingerprint
        for role, (_, called) in run.roles.items():
            if role in brief.served and hasattr(called, "served_model_id"):
                called.served_model_id = brief.served[role]
        if run.resources is not None:
            await run.resources.aprepare(None)  # the retrieval index, this worker's own copy
        self._share_limits(run)
        return run

    def _share_limits(self, run: Any) -> None:
        """Every call's limiter becomes a stand-in for the coordinator's, so limits are the whole run's."""
        if self.brief.coordinator is None:
            return
        shared = {id(p.limiter) for p in shared_limiters(run.roles).values()}
        unshared = [name for name, lim in self.monitor.limiters.items() if id(lim) not in shared]
        if unshared:  # a limiter no role reaches would multiply its limits by the workers: refuse
            raise RunAborted(f"the Ray executor cannot share the rate limits of {', '.join(unshared)}")
        for key, provider in shared_limiters(run.roles).items():
            provider.limiter = SharedLimiter(self.brief.coordinator, key, self.name)  # type: ignore[assignment]

    async def start(self, items: list[tuple[int, int]]) -> None:
        """Begin (item, attempt) of each; their outcomes come back through `results`."""
        for index, attempt in items:
            task = asyncio.ensure_future(self._run_one(index, attempt))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run_one(self, index: int, attempt: int) -> None:
        outcome = await self.run_item(index, attempt)
        self._finished.append({**outcome, "index": index})
        self._any_finished.set()

    async def results(self) -> list[dict[str, Any]]:
        """The outcomes finished since the last call; waits for at least one."""
        while not self._finished:
            self._any_finished.clear()
            await self._any_finished.wait()
        finished, self._finished = self._finished, []
        return finished

    async def run_item(self, index: int, attempt: int) -> dict[str, Any]:
        """One item's row, or how it failed, with what the worker counted since its last report."""
        usage = Usage()
        outcome: dict[str, Any]
        try:
            run = await self._build()
            outcome = {"row": await run.generator.run_item(index, usage, attempt)}
        except ItemRejected as exc:
            outcome = {"error": {"type": "rejected", "message": str(exc), "cause": exc.cause}}
        except BudgetExceeded as exc:
            outcome = {"error": {"type": "budget", "message": str(exc)}}
        except RunAborted as exc:
            outcome = {"error": {"type": "aborted", "message": str(exc)}}
        except ProviderError as exc:
            outcome = {"error": provider_error(exc)}
        except Exception as exc:  # a bug, shown whole by the driver: it must not pass for an item's failure
            outcome = {"error": {"type": "crash", "message": "".join(traceback.format_exception(exc))}}
        outcome["usage"] = {name: getattr(usage, name) for name in USAGE_FIELDS} | {"unpriced": usage.unpriced}
        outcome["counts"] = self._counts()
        if self.monitor.endpoints:
            outcome["endpoints"] = (self.name, self.monitor.endpoints_summary())
        return outcome

    def _counts(self) -> Counts:
        m, last = self.monitor, self._reported
        now = Counts(
            {name: getattr(m.usage, name) for name in USAGE_FIELDS} | {"unpriced": m.usage.unpriced},
            m.cache_hits,
            m.retries,
            Counter(m.errors),
            Counter(m.regenerated),
            Counter(m.ended_early),
        )
        self._reported = now
        usage = {name: now.usage[name] - last.usage.get(name, 0) for name in USAGE_FIELDS}
        return Counts(
            usage | {"unpriced": now.usage["unpriced"]},
            now.cache_hits - last.cache_hits,
            now.retries - last.retries,
            now.errors - last.errors,
            now.regenerated - last.regenerated,
            now.ended_early - last.ended_early,
        )

    async def aclose(self) -> None:
        if self.run is not None:
            await self.run.aclose()


def provider_error(exc: ProviderError) -> dict[str, Any]:
    """A ProviderError as plain data (its keyword-only constructor does not pickle)."""
    return {
        "type": "provider",
        "message": str(exc),
        "retryable": exc.retryable,
        "kind": exc.kind,
        "status_code": exc.status_code,
    }


def add_counts(monitor: GenerationMonitor, counts: Counts) -> None:
    """Add a worker's report to the driver's monitor."""
    usage = monitor.usage
    for name in USAGE_FIELDS:
        setattr(usage, name, getattr(usage, name) + counts.usage.get(name, 0))
    usage.unpriced = usage.unpriced or bool(counts.usage.get("unpriced"))
    monitor.cache_hits += counts.cache_hits
    monitor.retries += counts.retries
    monitor.errors.update(counts.errors)
    monitor.regenerated.update(counts.regenerated)
    monitor.ended_early.update(counts.ended_early)
