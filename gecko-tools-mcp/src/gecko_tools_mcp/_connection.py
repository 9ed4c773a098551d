"""One live MCP client session, kept by a task of its own so that any task may use or close it.

An MCP client is an async context manager holding a task group: it must be entered and left by
the same task. Agents run in workflow branches and team members, tasks that end long before the
agent is closed, so the session cannot belong to whichever task happened to connect first. It
lives in a background task (an asyncio task, or a trio system task) that enters the client,
signals readiness, and leaves it when asked to or when the transport breaks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from mcp import Client

    from gecko_tools_mcp._guard import ProtocolGuard

__all__ = ("CLOSE_BOUND", "Connection")

CLOSE_BOUND = 10.0
"""Seconds a session may take to close gracefully before it is cancelled."""

_background: set[asyncio.Task[None]] = set()  # strong references: asyncio keeps only weak ones


def _spawn(function: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `function` in a task that belongs to no caller's task group."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: anyio's other backend is trio
        import trio

        trio.lowlevel.spawn_system_task(function)
        return
    task = loop.create_task(function())
    _background.add(task)
    task.add_done_callback(_background.discard)


class Connection:
    """A client session entered by a background task; `client` is usable between `start` and `stop`.

    `open_client(guard)` makes the client, its transport watched by `guard` (see `ProtocolGuard.watch`).
    """

    def __init__(self, open_client: Callable[[ProtocolGuard], AbstractAsyncContextManager[Client]]) -> None:
        from gecko_tools_mcp._guard import ProtocolGuard  # imports the SDK: only once a server connects

        self._open_client = open_client
        self.guard = ProtocolGuard()
        self._client: Client | None = None
        self._error: Exception | None = None
        self._ready = anyio.Event()
        self._stop = anyio.Event()
        self._done = anyio.Event()
        self._scope = anyio.CancelScope()  # the background task's: cancelled when stopping cannot wait

    @property
    def alive(self) -> bool:
        """Whether the session is up: started, not stopped, its transport not broken, the protocol kept."""
        return self._client is not None and not self._done.is_set() and self.guard.violation is None

    @property
    def client(self) -> Client:
        """The entered client.

        Raises:
            RuntimeError: The connection is not alive.
        """
        if self._client is None or self._done.is_set():
            raise RuntimeError("the MCP connection is not open")
        return self._client

    async def start(self) -> None:
        """Connect; returns once the session is up.

        Raises:
            Exception: Whatever connecting raised (the process could not start, the URL refused, ...).
        """
        _spawn(self._own)
        await self._ready.wait()
        if self._client is None:
            raise self._error or ConnectionError("the MCP connection was stopped while connecting")

    async def stop(self) -> None:
        """Leave the session and wait until the transport is closed (the server process gone).

        A session still connecting (a server that never answers the handshake) is cancelled, and
        so is a graceful close that takes longer than `CLOSE_BOUND` seconds; the SDK's shielded
        shutdown still stops the server process.
        """
        self._stop.set()
        if self._client is None:
            self._scope.cancel()
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(CLOSE_BOUND):
                await self._done.wait()
            self._scope.cancel()
            await self._done.wait()

    async def _own(self) -> None:
        try:
            with self._scope:
                async with self._open_client(self.guard) as client:
                    self._client = client
                    self._ready.set()
                    await self._stop.wait()
        except Exception as exc:  # the transport broke or never came up: callers see it through `alive`
            self._error = exc
        finally:
            self._ready.set()
            self._done.set()
