"""Concurrent jobs whose first failure is raised as it is, not wrapped in an exception group."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

__all__ = ("run_all",)


async def run_all(jobs: list[Callable[[], Awaitable[None]]]) -> None:
    """Run `jobs` concurrently; the first failure cancels the others and is raised as it is."""
    failures: list[Exception] = []

    async def guarded(job: Callable[[], Awaitable[None]], scope: anyio.CancelScope) -> None:
        try:
            await job()
        except Exception as exc:
            failures.append(exc)
            scope.cancel()

    async with anyio.create_task_group() as group:
        for job in jobs:
            group.start_soon(guarded, job, group.cancel_scope)
    if failures:
        raise failures[0]
