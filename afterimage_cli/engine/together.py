"""Calls of one item made at once (candidate answers, both orders of a comparison): all of them finish, or the
first failure cancels the others and is raised as itself (not as an exception group), as a lone call's would be."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def together(*calls: Awaitable[T]) -> list[T]:
    """The results of `calls` in their order; in batch mode they join the same round."""
    tasks: list[asyncio.Task[T]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_run(call)) for call in calls]
    except* Exception as failures:
        first: BaseException = failures
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [task.result() for task in tasks]


async def _run(call: Awaitable[T]) -> T:
    return await call
