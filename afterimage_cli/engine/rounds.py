"""The batch scheduler: items advance in rounds, one call each per round, through the providers' batch APIs.

Each item runs the same code as online (generators make their calls one after another); in batch mode a
call does not go out at once but waits. When every item in flight is waiting, the round is complete: its
requests go out as batches (one set per model, split at the API's limits), the scheduler polls them, and
each item gets its answer and goes on to its next call, which joins the next round. An item that ends
leaves the rounds; the item loop starts another in its place, whose first call joins the next round.

Every batch and every answer is recorded in the run ledger (engine/batch_state.py) before an item sees
it, so a re-run replays each item's dialog from the ledger and picks up the batches still running."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import BudgetExceeded, ProviderError, RunAborted
from ..providers.batch import BatchAPI, BatchInfo, BatchRequest
from .batch_state import BatchState, Outcome, SubmittedBatch

if TYPE_CHECKING:
    from ..monitor import GenerationMonitor
    from .ledger import RunLedger
    from .spend import SpendLimit

Sleep = Callable[[float], Awaitable[None]]


class RoundClient(Protocol):
    """A model in batch mode, as the rounds see it: its batch API and its online path for a round's tail."""

    model_name: str
    api: BatchAPI

    async def online(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]: ...


@dataclass
class Waiting:
    """A call waiting for its round."""

    client: RoundClient
    custom_id: str
    body: dict[str, Any]
    future: asyncio.Future[Outcome]


class BatchRounds:
    """The rounds of one run (generate or evaluate), shared by every model the run calls in batch mode."""

    def __init__(
        self,
        state: BatchState,
        monitor: GenerationMonitor,
        *,
        run_tag: str = "",
        items_in_flight: int = 50_000,
        poll_interval: float = 30.0,
        finish_online_below: int = 0,
        max_requests: int | None = None,
        spend: SpendLimit | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.state = state
        self.monitor = monitor
        self.run_tag = run_tag
        self.items_in_flight = items_in_flight
        self.poll_interval = poll_interval
        self.finish_online_below = finish_online_below
        self.max_requests = max_requests
        self.spend = spend
        self.sleep = sleep
        self.round = state.rounds
        self.active = 0
        self.waiting: list[Waiting] = []
        self.in_flight: dict[str, BatchInfo] = {}  # batch id → its last known state, for the display
        self.online_requests = 0
        self.clients: dict[str, RoundClient] = {}
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._adopted = False

    def resume(self, ledger: RunLedger, finished: Callable[[int], bool], run_tag: str) -> None:
        """At the start of a session: what earlier ones recorded (see BatchState.load); `run_tag` marks this
        run's batches at the provider (their metadata), so a lost submission can be found again."""
        self.state.load(ledger, finished)
        self.round = self.state.rounds
        self.run_tag = run_tag

    def register(self, client: RoundClient) -> None:
        self.clients[client.model_name] = client

    # --- the items' side ------------------------------------------------------------------------------

    @contextmanager
    def item(self) -> Iterator[None]:
        """An item in flight: a round waits for it to reach its next call (or to end)."""
        self.enter()
        try:
            yield
        finally:
            self.leave()

    def enter(self) -> None:
        """One more participant the next round waits for (an item, or evaluate's reader while it reads)."""
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
        self._poke()

    async def call(self, client: RoundClient, custom_id: str, body: dict[str, Any]) -> Outcome:
        """The outcome of one request: recorded by an earlier session, or answered by the next round."""
        recorded = self.state.take(custom_id)
        if recorded is not None:
            return recorded
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.waiting.append(Waiting(client, custom_id, body, future))
        self._poke()
        return await future

    def _poke(self) -> None:
        if self._runner is None or self._runner.done():
            if not self.waiting:
                return
            self._wake = asyncio.Event()
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="afterimage-batch-rounds")
        assert self._wake is not None
        self._wake.set()

    async def aclose(self) -> None:
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            try:
                await self._runner
            except (asyncio.CancelledError, Exception):
                pass
        self._cancel_waiting()
        for client in self.clients.values():
            await client.api.aclose()

    # --- the rounds -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            for _ in range(3):  # items just answered run on to their next call before the round is judged
                await asyncio.sleep(0)
            if not self.waiting or len(self.waiting) < self.active:
                continue
            calls, self.waiting = self.waiting, []
            try:
                await self._round(calls)
            except BaseException as exc:
                for call in calls:
                    if not call.future.done():
                        call.future.set_exception(
                            exc if isinstance(exc, Exception) else RunAborted("stopping: interrupted")
                        )
                if not isinstance(exc, Exception):
                    raise

    async def _round(self, calls: list[Waiting]) -> None:
        if self.spend is not None and (reason := self.spend.exhausted):
            raise BudgetExceeded(f"{reason}; no further batch round is submitted")
        await self._adopt_unconfirmed()
        self.round += 1
        if len(calls) < self.finish_online_below:
            await self._online(calls)
            return
        running: dict[str, tuple[RoundClient, list[Waiting]]] = {}
        new: dict[str, list[Waiting]] = defaultdict(list)
        for call in calls:
            batch_id = self.state.batch_of(call.custom_id)
            if batch_id is not None:  # submitted by an earlier session and still running: wait for it
                running.setdefault(batch_id, (call.client, []))[1].append(call)
            else:
                new[call.client.model_name].append(call)
        for model, group in new.items():
            client = self.clients.get(model) or group[0].client
            for part, chunk in enumerate(split_requests(client.api, group, self.max_requests)):
                try:
                    running[await self._submit(client, part, chunk)] = (client, chunk)
                except ProviderError as error:  # outlasted the client's own retries: asked again next round
                    for call in chunk:
                        call.future.set_result(Outcome(None, {}, error))
        await self._await_batches(running)

    async def _submit(self, client: RoundClient, part: int, chunk: list[Waiting]) -> str:
        metadata = {
            "afterimage_run": self.run_tag,
            "round": str(self.round),
            "part": str(part),
            "model": client.model_name,
        }
        custom_ids = [call.custom_id for call in chunk]
        self.state.submitting(client.model_name, self.round, metadata, custom_ids)
        try:
            batch_id = await client.api.submit([BatchRequest(call.custom_id, call.body) for call in chunk], metadata)
        except ProviderError as error:
            if error.retryable:
                raise
            # A refused submission (a bad request in the file, a rejected key) is no one item's fault.
            hint = " (this server offers no batch API: run with --mode online)" if error.status_code == 404 else ""
            raise RunAborted(f"stopping: the provider refused a batch of {client.model_name}: {error}{hint}") from error
        self.state.submitted(SubmittedBatch(batch_id, client.model_name, self.round, custom_ids, metadata))
        return batch_id

    async def _adopt_unconfirmed(self) -> None:
        """Once per session: a submission cut by a crash before its id was recorded may exist at the
        provider; found by its metadata, it is waited for instead of being submitted again."""
        if self._adopted:
            return
        self._adopted = True
        for batch in self.state.unconfirmed:
            client = self.clients.get(batch.model)
            try:
                found = await client.api.find(batch.metadata) if client is not None else None
            except ProviderError:  # cannot look: the submission below says what is wrong, if anything
                found = None
            if found is not None:
                self.state.submitted(
                    SubmittedBatch(found, batch.model, batch.round, batch.custom_ids, batch.metadata), adopted=True
                )
        self.state.unconfirmed = []

    async def _await_batches(self, running: dict[str, tuple[RoundClient, list[Waiting]]]) -> None:
        """Poll every batch of the round until each has ended; hand each call its answer as its batch ends."""
        while running:
            for batch_id in list(running):
                client, calls = running[batch_id]
                info = await client.api.retrieve(batch_id)
                if info.status != getattr(self.in_flight.get(batch_id), "status", None) and not info.done:
                    self.state.status(info)  # `afterimage status` shows where each batch stands
                self.in_flight[batch_id] = info
                if not info.done:
                    continue
                del running[batch_id]
                self.in_flight.pop(batch_id, None)
                if info.error is not None and not info.retry_later:
                    self.state.ended(batch_id, info, {})  # a re-run submits its requests again
                    raise RunAborted(f"stopping: batch {batch_id} of {client.model_name} failed: {info.error}")
                if info.error is not None:  # refused for now (the enqueued-token quota is full): back-pressure
                    self.state.ended(batch_id, info, {})
                    for call in calls:
                        call.future.set_result(_refused_for_now(batch_id, info.error, self.poll_interval))
                    continue
                self.state.ended(batch_id, info, await client.api.results(batch_id))
                for call in calls:
                    outcome = self.state.take(call.custom_id) or _unanswered(batch_id, info)
                    call.future.set_result(outcome)
            self.monitor.batch_polled()
            if running:
                await self.sleep(self.poll_interval)

    async def _online(self, calls: Sequence[Waiting]) -> None:
        """A round too small for a batch (`batch.finish_online_below`): its requests go out online."""

        async def one(call: Waiting) -> None:
            try:
                body, headers = await call.client.online(call.body)
                outcome = Outcome(body, headers, None, online=True)
            except ProviderError as error:
                outcome = Outcome(None, {}, error, online=True)
            self.online_requests += 1
            self.state.answered_online(call.custom_id, outcome.body, outcome.headers, outcome.error)
            call.future.set_result(outcome)

        await asyncio.gather(*(one(call) for call in calls))

    def _cancel_waiting(self) -> None:
        for call in self.waiting:
            if not call.future.done():
                call.future.cancel()
        self.waiting = []

    # --- what the display and the summary show --------------------------------------------------------

    def status_text(self) -> str:
        """' · round 3 · 2 batches (1,200 req) in_progress' while batches run."""
        if not self.in_flight:
            return f" · round {self.round}" if self.round else ""
        requests = sum(info.total for info in self.in_flight.values())
        done = sum(info.completed + info.failed for info in self.in_flight.values())
        states = "/".join(sorted({info.status for info in self.in_flight.values()}))
        return f" · round {self.round} · {len(self.in_flight)} batches ({done:,}/{requests:,} req) {states}"

    def summary(self) -> dict[str, Any]:
        return {
            "rounds": self.round,
            "batches_submitted": self.state.batches_submitted,
            "requests_submitted": self.state.requests_submitted,
            "requests_online": self.online_requests,
        }


def split_requests(api: BatchAPI, calls: list[Waiting], max_requests: int | None = None) -> Iterator[list[Waiting]]:
    """The calls cut into batches no larger than the API takes (requests per batch, bytes per file) and
    `max_requests` allows."""
    limit = min(api.max_requests, max_requests or api.max_requests)
    chunk: list[Waiting] = []
    size = 0
    for call in calls:
        line = len(api.encode(BatchRequest(call.custom_id, call.body)))
        if chunk and (len(chunk) >= limit or size + line > api.max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(call)
        size += line
    if chunk:
        yield chunk


def _unanswered(batch_id: str, info: BatchInfo) -> Outcome:
    """A request its batch ended without answering (expired, cancelled): asked again in the next round."""
    error = ProviderError(
        f"batch {batch_id} ended {info.status} without answering this request",
        retryable=True,
        kind="batch_unanswered",
    )
    return Outcome(None, {}, error)


def _refused_for_now(batch_id: str, message: str, wait: float) -> Outcome:
    """A batch refused until running ones finish: its requests wait like a 429 and join a later round."""
    error = ProviderError(
        f"batch {batch_id} was refused for now: {message}", retryable=True, kind="rate_limit", retry_after=wait
    )
    return Outcome(None, {}, error)
