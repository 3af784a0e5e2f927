"""GenerationMonitor: counts what a run does and shows it on stderr (Rich), with a summary at the end."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .providers.base import LLMResponse
from .providers.replicas import merge_summaries

DisplayMode = Literal["progress", "quiet"]
REFRESH_SECONDS = 0.25
LOG_SECONDS = 10.0


@dataclass
class Usage:
    """Tokens, calls and cost of one unit of work (an item, or the whole run)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0  # of prompt_tokens, read from the provider's prompt cache (priced lower)
    cache_creation_tokens: int = 0  # of prompt_tokens, written to it (Anthropic)
    cost: float = 0.0
    unpriced: bool = False
    models: set[str] = field(default_factory=set)

    def add(self, response: LLMResponse) -> None:
        self.calls += 1
        self.prompt_tokens += response.prompt_token_count
        self.completion_tokens += response.completion_token_count
        self.cached_prompt_tokens += response.cached_prompt_tokens
        self.cache_creation_tokens += response.cache_creation_tokens
        if response.cost is None:
            self.unpriced = True
        else:
            self.cost += response.cost
        if response.model_name:
            self.models.add(response.model_name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "cache_creation_tokens": self.cache_creation_tokens,
            "cost_usd": None if self.unpriced else round(self.cost, 6),
        }


# The usage of the item the current task works on; set per item by the engine.
current_usage: ContextVar[Usage | None] = ContextVar("current_usage", default=None)


class GenerationMonitor:
    """Counters for rows, calls, tokens, cost, retries and errors, and their live display."""

    def __init__(self, target: int = 0, console: Console | None = None) -> None:
        self.target = target
        self.console = console or Console(stderr=True)
        self.usage = Usage()
        self.rows_written = 0
        self.rows_resumed = 0
        self.items_failed = 0
        self.rejected: Counter[str] = Counter()
        self.regenerated: Counter[str] = Counter()  # turns generated again, by the hygiene check they failed
        self.ended_early: Counter[str] = Counter()  # dialogs ended before a turn no regeneration fixed, by check
        self.retries = 0
        self.errors: Counter[str] = Counter()
        self.started = time.monotonic()
        self.limiters: dict[str, Any] = {}
        self.outage_gates: dict[str, Any] = {}  # OutageGate by server, for "down" in the status line
        self.endpoints: dict[str, Any] = {}  # ReplicaSet by model: models served by several endpoints
        # Under --executor ray each worker routes on its own: its latest endpoints_summary(), by worker name.
        self.worker_endpoints: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.cache_hits = 0
        self.batches: Any = None  # batch mode's rounds (engine/rounds.py): round and batches in the status line
        self.pairs: Any = None  # a preference run's judged pairs (evaluation/pair_stats.py), in the summary
        self._progress: Progress | None = None
        self._next_refresh = 0.0
        self._task: Any = None
        self._logging = False

    def record_response(self, response: LLMResponse) -> None:
        """One answered LLM call: a success, or an answer rejected as unusable (its tokens were billed)."""
        self.usage.add(response)
        item = current_usage.get()
        if item is not None:
            item.add(response)

    def record_cache_hit(self, response: LLMResponse) -> None:
        """A call answered from the cache: no request, no cost; the item still owns its tokens."""
        self.cache_hits += 1
        item = current_usage.get()
        if item is not None:
            item.add(response)

    def record_error(self, kind: str, *, will_retry: bool) -> None:
        """One failed attempt."""
        self.errors[kind] += 1
        if will_retry:
            self.retries += 1

    def record_row(self) -> None:
        self.rows_written += 1
        self._refresh()

    def record_rejected(self, cause: str) -> None:
        """An item rejected (it makes no row; another item number takes its place)."""
        self.rejected[cause] += 1
        self._refresh()

    def record_regeneration(self, check: str) -> None:
        """A turn that failed a hygiene check, asked for again."""
        self.regenerated[check] += 1

    def record_ended_early(self, check: str) -> None:
        """A dialog that ended at its last good turn, before a turn that kept failing `check`."""
        self.ended_early[check] += 1

    def record_item_failed(self) -> None:
        self.items_failed += 1
        self._refresh()

    @property
    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def cost_text(self) -> str:
        return "unpriced" if self.usage.unpriced else f"${self.usage.cost:.4f}"

    def status_line(self) -> str:
        u = self.usage
        errors = sum(self.errors.values())
        return (
            f"{u.calls / self.elapsed:.1f} calls/s · tok {_short(u.prompt_tokens)} in/{_short(u.completion_tokens)} out"
            f" · {self.cost_text()} · retries {self.retries} · errors {errors}{self._limits_text()}"
            + (f" · cached {self.cache_hits}" if self.cache_hits else "")
            + (f" · rejected {sum(self.rejected.values())}" if self.rejected else "")
            + self._outage_text()
            + self._endpoints_text()
            + (self.batches.status_text() if self.batches is not None else "")
        )

    def _endpoints_text(self) -> str:
        """' · endpoints 1/2 up' while an endpoint of a model served by several is out."""
        if self.worker_endpoints:  # under Ray: the states the workers last reported, merged
            merged = merge_summaries(list(self.worker_endpoints.values())).values()
            states = [[entry["state"] for entry in entries] for entries in merged]
            texts = [f"{each.count('up')}/{len(each)} up" for each in states if each.count("up") < len(each)]
        else:
            texts = [s.status_text() for s in self.endpoints.values() if any(r.state != "up" for r in s.replicas)]
        return f" · endpoints {', '.join(texts)}" if texts else ""

    def endpoint_lines(self) -> list[str]:
        """One line per endpoint of each model served by several: calls, errors, p50/p95 answer time."""
        lines = []
        for model, entries in self.endpoints_summary().items():
            for entry in entries:
                state = "" if entry["state"] == "up" else f" · {entry['state'].upper()}"
                lines.append(
                    f"  {model} @ {entry['endpoint']}: {entry['calls']} calls · errors {entry['errors']} · "
                    f"p50 {_ms(entry['p50_ms'])} · p95 {_ms(entry['p95_ms'])}{state}"
                )
        return lines

    def _outage_text(self) -> str:
        """' · server down 12s, probing' while a server is waited out, so a stalled bar explains itself."""
        down = [gate for gate in self.outage_gates.values() if gate.down]
        if not down:
            return ""
        silent = max(gate.max_outage_s - gate.remaining() for gate in down)
        return f" · server down {silent:.0f}s, probing"

    def _limits_text(self) -> str:
        """' · limit 12' when 429s have cut a model's concurrency."""
        cut = [f"{round(lim.limit)}" for lim in self.limiters.values() if lim.cuts]
        return f" · concurrency limit {'/'.join(cut)}" if cut else ""

    def _refresh(self, force: bool = False) -> None:
        """Push counters to the display, at most every REFRESH_SECONDS (the hot path calls this per row)."""
        now = time.monotonic()
        if self._progress is not None and (force or now >= self._next_refresh):
            self._next_refresh = now + REFRESH_SECONDS
            done = self.rows_resumed + self.rows_written
            self._progress.update(self._task, completed=done)

    @contextmanager
    def display(self, mode: DisplayMode = "progress") -> Iterator[GenerationMonitor]:
        """Show live progress on stderr while the body runs (nothing in quiet mode)."""
        self.started = time.monotonic()
        if mode == "quiet":
            yield self
            return
        if not self.console.is_terminal:
            self._logging = True
            try:
                with self._log_lines():
                    yield self
            finally:
                self._logging = False
            return
        progress = _TwoLineProgress(
            self,
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            _EtaColumn(self),
            console=self.console,
            transient=False,
            refresh_per_second=4,
        )
        self._progress = progress
        self._task = progress.add_task("generate", total=self.target, completed=self.rows_resumed)
        with progress:
            try:
                yield self
            finally:
                self._refresh(force=True)
                self._progress = None

    def batch_polled(self) -> None:
        """Batch mode asked how its batches stand: refresh the display; in a log, one line per poll."""
        if self._progress is not None:
            self._refresh(force=True)
        elif self._logging:
            self.console.print(self.log_line(), highlight=False)

    def eta_text(self) -> str:
        """'eta H:MM:SS' from this run's own rate (resumed rows excluded)."""
        remaining = self.target - self.rows_resumed - self.rows_written
        if self.rows_written == 0 or remaining <= 0:
            return "eta -:--:--"
        seconds = int(remaining * self.elapsed / self.rows_written)
        return f"eta {seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

    def log_line(self) -> str:
        """The progress as one plain line, for logs."""
        done = self.rows_resumed + self.rows_written
        line = f"progress: {done}/{self.target} rows · {self.eta_text()} · {self.status_line()}"
        return "\n".join([line, *self.endpoint_lines()])

    @contextmanager
    def _log_lines(self) -> Iterator[None]:
        """When stderr is a log file or pipe (no live display), print a progress line every LOG_SECONDS.

        A thread, not the event loop, keeps the beat, so a run stuck on a dead server still reports.
        """
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(LOG_SECONDS):
                self.console.print(self.log_line(), highlight=False)

        thread = threading.Thread(target=beat, name="afterimage-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=1)

    def summary(self) -> dict[str, Any]:
        """The run's totals, as printed at the end (or as JSON with --json)."""
        return {
            "target": self.target,
            "rows_written": self.rows_written,
            "rows_resumed": self.rows_resumed,
            "rows_total": self.rows_written + self.rows_resumed,
            "items_failed": self.items_failed,
            "items_rejected": sum(self.rejected.values()),
            "rejected_by_cause": dict(self.rejected),
            "regenerated_by_check": dict(self.regenerated),
            "ended_early_by_check": dict(self.ended_early),
            **self.usage.as_dict(),
            "retries": self.retries,
            "errors": dict(self.errors),
            "cache_hits": self.cache_hits,
            "concurrency_cuts": sum(lim.cuts for lim in self.limiters.values()),
            "outages": sum(gate.outages for gate in self.outage_gates.values()),
            "elapsed_s": round(self.elapsed, 3),
            "calls_per_s": round(self.usage.calls / self.elapsed, 2),
            "models": sorted(self.usage.models),
            **({"endpoints": self.endpoints_summary()} if self.endpoints else {}),
            **({"batch": self.batches.summary()} if self.batches is not None else {}),
            **({"preference": self.pairs.summary()} if self.pairs is not None else {}),
        }

    def ledger_usage(self) -> dict[str, Any]:
        """The run's usage as the ledger's checkpoints record it (with the endpoints', for `status`)."""
        usage = self.usage.as_dict()
        return {**usage, "endpoints": self.endpoints_summary()} if self.endpoints else usage

    def endpoints_summary(self) -> dict[str, list[dict[str, Any]]]:
        """Per model served by several endpoints: each endpoint's calls, errors, p50/p95 (ms) and state (under
        Ray, the workers' reports merged)."""
        if self.worker_endpoints:
            return merge_summaries(list(self.worker_endpoints.values()))
        return {model: endpoints.summary() for model, endpoints in self.endpoints.items()}

    def print_summary(self, headline: str = "done") -> None:
        s = self.summary()
        self.console.print(
            f"[bold]{headline}[/]: {s['rows_total']}/{s['target']} rows ({s['rows_written']} new, "
            f"{s['rows_resumed']} resumed) in {s['elapsed_s']:.1f}s · {s['calls']} calls · tokens "
            f"{s['prompt_tokens']:,} in{self._cached_text()} / {s['completion_tokens']:,} out · "
            f"cost {self.cost_text()} · "
            f"retries {s['retries']} · errors {sum(self.errors.values())}"
            + (f" · {self.cache_hits} answered from the cache" if self.cache_hits else "")
            + (f" · rejected {self._rejected_text()}" if self.rejected else "")
            + (f" · regenerated {_counts_text(self.regenerated, 'turn')}" if self.regenerated else "")
            + (f" · ended early {_counts_text(self.ended_early, 'dialog')}" if self.ended_early else ""),
            highlight=False,
        )
        for line in self.endpoint_lines():
            self.console.print(line, highlight=False, markup=False)
        if self.pairs is not None:
            self.console.print(self.pairs.line(), highlight=False, markup=False)

    def _cached_text(self) -> str:
        """' (1,200 cached)': the prompt tokens the provider read from its prompt cache, priced lower."""
        cached = self.usage.cached_prompt_tokens
        return f" ({cached:,} cached)" if cached else ""

    def _rejected_text(self) -> str:
        """'3 items (context_limit 2, content_filter 1)'."""
        return _counts_text(self.rejected, "item")


def _counts_text(counts: Counter[str], unit: str) -> str:
    """'3 items (context_limit 2, content_filter 1)'."""
    total = sum(counts.values())
    causes = ", ".join(f"{cause} {n}" for cause, n in counts.most_common())
    return f"{total} {unit}{'' if total == 1 else 's'} ({causes})"


def _ms(value: float | None) -> str:
    """12.3 → '12ms', 1534 → '1.53s', None → '-'."""
    if value is None:
        return "-"
    return f"{value:.0f}ms" if value < 1000 else f"{value / 1000:.2f}s"


def _short(count: int) -> str:
    """1234567 → '1.2M'."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


class _TwoLineProgress(Progress):
    """The bar on one line and the counters on the next, so neither is squeezed on a narrow terminal."""

    def __init__(self, monitor: GenerationMonitor, *columns: Any, **options: Any) -> None:
        self.monitor = monitor  # before Progress starts rendering
        super().__init__(*columns, **options)

    def get_renderables(self) -> Any:
        from rich.text import Text

        yield self.make_tasks_table(self.tasks)
        yield Text(self.monitor.status_line(), overflow="ellipsis", no_wrap=True)
        for line in self.monitor.endpoint_lines():
            yield Text(line, overflow="ellipsis", no_wrap=True)


class _EtaColumn(TextColumn):
    """ETA from this run's own rate (resumed rows excluded)."""

    def __init__(self, monitor: GenerationMonitor) -> None:
        super().__init__("")
        self.monitor = monitor

    def render(self, task: Any) -> Any:
        from rich.text import Text

        return Text(self.monitor.eta_text())
