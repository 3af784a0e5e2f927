"""SmartKeyPool: spread requests over several API keys, cool down rate-limited ones, drop rejected ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import MissingCredentialsError
from .logging import warn


@dataclass
class ApiKey:
    """One key, known by the environment variable it came from (the value is never printed)."""

    env_name: str
    value: str
    cooling_until: float = 0.0
    disabled: bool = False
    uses: int = 0


class SmartKeyPool:
    """Round-robin over usable keys; waits (never fails) while every live key is cooling down."""

    def __init__(
        self, keys: list[ApiKey], *, cooldown: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not keys:
            raise ValueError("SmartKeyPool needs at least one key")
        self.keys = keys
        self.cooldown = cooldown
        self.clock = clock
        self._next = 0

    @classmethod
    def from_env(cls, names: list[str], environ: dict[str, str], model: str) -> SmartKeyPool:
        """Build from variable names; every name must be set."""
        missing = [n for n in names if not environ.get(n)]
        if missing:
            raise MissingCredentialsError(
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: export "
                f"{'it' if len(missing) == 1 else 'them'} with your API key for {model} "
                "(or point --api-base at a local OpenAI-compatible server)"
            )
        return cls([ApiKey(n, environ[n]) for n in names])

    def has_live_keys(self) -> bool:
        """Whether any key has not been rejected."""
        return any(not k.disabled for k in self.keys)

    def _live(self) -> list[ApiKey]:

        live = [k for k in self.keys if not k.disabled]
        if not live:
            names = ", ".join(k.env_name for k in self.keys)
            raise MissingCredentialsError(f"every API key was rejected by the provider ({names}): set valid keys")
        return live

    def try_acquire(self) -> ApiKey | float:
        """The next usable key, or the seconds until the first cooling one is usable again."""
        live = self._live()
        now = self.clock()
        for _ in range(len(self.keys)):
            key = self.keys[self._next % len(self.keys)]
            self._next += 1
            if not key.disabled and key.cooling_until <= now:
                key.uses += 1
                return key
        return min(k.cooling_until for k in live) - now

    async def acquire(self) -> ApiKey:
        """The next usable key, waiting for the earliest cool-down to end if all are cooling."""
        while not isinstance(key := self.try_acquire(), ApiKey):
            await asyncio.sleep(max(0.01, key))
        return key

    def report_error(self, key: ApiKey, status_code: int | None = None, retry_after: float | None = None) -> None:
        """429 cools the key down (for Retry-After if given); 401/403 disables it with a warning."""
        if status_code in (401, 403):
            if not key.disabled:
                key.disabled = True
                warn(f"API key from {key.env_name} was rejected ({status_code}); it is no longer used")
        elif status_code == 429 and len(self.keys) > 1:
            key.cooling_until = self.clock() + (retry_after if retry_after else self.cooldown)
