"""A turn that fails a hygiene check is generated again before the dialog goes on, so a bad turn never
becomes the context of the next one. Each regeneration is a fresh sample: it is sent with a seed of its
own (and, below `hygiene.regeneration_temperature`, hotter), so neither the response cache nor a
deterministic server can hand back the same answer. After `hygiene.max_regenerations` the turn is given
up (TurnFailed): the generator ends the dialog before it, or rejects the item.

`generation.on_truncated` is the `cut` check's policy: `retry` regenerates like any check, `keep` keeps
the turn (listed in metadata.cut_off_turns), `reject` rejects the item at once.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ItemRejected
from ..hygiene import Finding, TurnChecker
from ..providers.base import LLMResponse


class TurnFailed(Exception):
    """A turn still failed a check after its regenerations."""

    def __init__(self, message: str, check: str) -> None:
        super().__init__(message)
        self.check = check


@dataclass
class TurnPlace:
    """Where a turn goes: which role's model writes it, at which index of `conversations`, in which item."""

    role: str  # "assistant" (the respondent) or "user" (the simulated user)
    position: int
    item: int
    model: str
    setting: str  # the max_tokens to raise when the token limit cuts it
    variant: int = 0  # a preference branch's candidates at one place: each regenerates with seeds of its own


@dataclass
class DialogHygiene:
    """What hygiene did in one dialog: written to the row's metadata."""

    regenerations: Counter[str] = field(default_factory=Counter)
    cut_off: list[int] = field(default_factory=list)
    ended_by_check: str | None = None

    def metadata(self) -> dict[str, Any]:
        """metadata.hygiene: regenerations by check, and the check that ended the dialog early, if one did."""
        data: dict[str, Any] = {"regenerations": dict(sorted(self.regenerations.items()))}
        if self.ended_by_check is not None:
            data["ended_by_check"] = self.ended_by_check
        return data


class TurnHygiene:
    """The run's checks and how a failing turn is handled."""

    def __init__(
        self,
        checker: TurnChecker | None,
        *,
        max_regenerations: int = 2,
        on_truncated: str = "retry",
        seed: int = 0,
        hotter: Mapping[str, dict[str, Any]] | None = None,
        on_regeneration: Callable[[str], None] | None = None,
    ) -> None:
        self.checker = checker
        self.max_regenerations = max_regenerations if checker is not None else 0
        self.on_truncated = on_truncated
        self.seed = seed
        self.hotter = dict(hotter or {})  # role → parameters that make a regeneration a fresh sample
        self.on_regeneration = on_regeneration

    def params(self, place: TurnPlace, attempt: int) -> dict[str, Any]:
        """Request parameters of attempt `attempt` (0: as configured; later ones a seed of their own, derived
        from the run's seed and the turn's place, so a resumed run asks exactly what it asked before)."""
        if attempt == 0:
            return {}
        key = f"{self.seed}:{place.item}:{place.position}:{place.role}:{attempt}"
        key += f":{place.variant}" if place.variant else ""
        seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") & 0x7FFFFFFF
        return {**self.hotter.get(place.role, {}), "seed": seed}

    async def produce(
        self,
        ask: Callable[[dict[str, Any]], Awaitable[LLMResponse]],
        inspect: Callable[[LLMResponse], list[Finding]],
        discard: Callable[[], None],
        place: TurnPlace,
        record: DialogHygiene,
    ) -> LLMResponse:
        """A turn that passes the checks; `discard` undoes a failed one (the chat must not keep it)."""
        attempt = 0
        while True:
            response = await ask(self.params(place, attempt))
            findings = inspect(response) if self.checker is not None else []
            attempt += 1
            failed = self._failure(findings, place, attempts=attempt)
            if failed is None:
                if response.finish_reason == "length" or any(f.check == "cut" for f in findings):
                    record.cut_off.append(place.position)
                return response
            discard()
            if attempt > self.max_regenerations:
                raise TurnFailed(self._describe(failed, place, attempt), failed.check)
            record.regenerations[failed.check] += 1
            if self.on_regeneration is not None:
                self.on_regeneration(failed.check)

    def _failure(self, findings: list[Finding], place: TurnPlace, attempts: int) -> Finding | None:
        """The finding that fails the turn, after `on_truncated` had its say about `cut`."""
        cut = next((f for f in findings if f.check == "cut"), None)
        if cut is not None and self.on_truncated == "reject":
            raise ItemRejected(self._describe(cut, place, attempts), cause="cut")
        if cut is not None and self.on_truncated == "keep":
            findings = [f for f in findings if f.check != "cut"]
        return findings[0] if findings else None

    @staticmethod
    def _describe(finding: Finding, place: TurnPlace, attempts: int) -> str:
        """What the ledger says of a turn given up: what failed, how often, and which setting to change."""
        who = "the answer" if place.role == "assistant" else "the simulated user's turn"
        if finding.detail.startswith("cut off by the token limit"):
            return (
                f"{place.model}: {who} was cut off by the token limit {attempts} time(s) (finish_reason: length);"
                f" raise {place.setting}, or set generation.on_truncated: keep"
            )
        check = finding.check
        allow = "generation.on_truncated: keep" if check == "cut" else f"hygiene.checks: {{{check}: false}}"
        return (
            f"{place.model}: {who} failed the {finding.check} check {attempts} time(s): {finding.detail};"
            f" to allow such turns, set {allow}"
        )
