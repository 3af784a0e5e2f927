"""Warnings go to stderr through one function, so stdout stays data."""

from __future__ import annotations

import sys

_seen: set[str] = set()


def warn(message: str, *, once: bool = True) -> None:
    """Print a warning on stderr (each distinct message once by default)."""
    if once:
        if message in _seen:
            return
        _seen.add(message)
    print(f"warning: {message}", file=sys.stderr, flush=True)
