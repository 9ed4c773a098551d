"""Redis for event loops other than asyncio: the synchronous client on the core's `WorkerThread`.

`redis.asyncio` runs on asyncio only. On trio the store talks to Redis through `ThreadedRedis`,
which offers the few `redis.asyncio.Redis` methods the store uses and runs each call of the
synchronous `redis.Redis` client on one worker thread, so the event loop never blocks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any

import redis

from gecko.errors import StorageClosedError
from gecko.plugins.threads import WorkerThread


class ThreadedRedis:
    """The subset of `redis.asyncio.Redis` the store uses, served by a synchronous client on a thread."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._worker = WorkerThread(
            "gecko-redis",
            closed_error=partial(StorageClosedError, "a Redis store was used after close()"),
            on_stop=client.close,
        )

    async def hmget(self, name: str, keys: Sequence[str]) -> list[Any]:
        found: list[Any] = await self._worker.run(partial(self._client.hmget, name, keys))
        return found

    async def hget(self, name: str, key: str) -> Any:
        return await self._worker.run(partial(self._client.hget, name, key))

    def register_script(self, script: str) -> ThreadedScript:
        return ThreadedScript(self._client.register_script(script), self._worker)

    async def scan_iter(self, *, match: str, count: int) -> AsyncIterator[bytes]:
        # One hop for the whole scan: the thread walks every SCAN page.
        for key in await self._worker.run(lambda: list(self._client.scan_iter(match=match, count=count))):
            yield key

    async def aclose(self) -> None:
        await self._worker.aclose()


class ThreadedScript:
    """A registered Lua script whose calls run on the store's worker thread."""

    def __init__(self, script: Any, worker: WorkerThread) -> None:
        self._script = script
        self._worker = worker

    async def __call__(self, *, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return await self._worker.run(partial(self._script, keys=keys, args=args))
