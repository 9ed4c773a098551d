"""A Redis that dies and comes back: typed errors while it is gone, nothing committed is lost."""

from __future__ import annotations

import pytest

from gecko.errors import StorageUnavailableError
from gecko.plugins.storage.factory import create_storage


async def test_committed_writes_survive_a_server_crash_and_the_client_recovers_by_itself(redis_server) -> None:
    storage = await create_storage(redis_server.url)
    try:
        for step in range(50):
            await storage.set(f"checkpoint:{step:03d}", {"step": step})
        redis_server.kill()
        with pytest.raises(StorageUnavailableError):
            await storage.set("checkpoint:lost", {"step": -1})
        redis_server.start()
        await storage.set("checkpoint:050", {"step": 50})
        keys = await storage.list_keys("checkpoint:")
        assert keys == [f"checkpoint:{step:03d}" for step in range(51)]
        assert await storage.get("checkpoint:049") == {"step": 49}
    finally:
        await storage.close()


async def test_an_unreachable_server_is_a_typed_error_not_a_hang(redis_server) -> None:
    url = redis_server.url
    redis_server.kill()
    storage = await create_storage(url)
    try:
        with pytest.raises(StorageUnavailableError, match="unreachable"):
            await storage.get("anything")
    finally:
        await storage.close()


async def test_unix_socket_urls_reach_the_same_server(redis_server) -> None:
    async with await create_storage(redis_server.url) as over_tcp:
        await over_tcp.set("greeting", "你好")
    async with await create_storage(f"unix://{redis_server.socket_path}?db=0") as over_socket:
        assert await over_socket.get("greeting") == "你好"


async def test_a_write_resent_after_a_lost_reply_returns_its_version_instead_of_a_conflict(redis_url: str) -> None:
    async with await create_storage(redis_url) as storage:
        key = storage._data_key("k")  # type: ignore[attr-defined]
        args = ['"v"', "", "1", 0, "", "write-1"]
        # The client's retry layer sends the same script again when a reply is lost.
        first = await storage._put(keys=[key, key], args=args)  # type: ignore[attr-defined]
        again = await storage._put(keys=[key, key], args=args)  # type: ignore[attr-defined]
        assert [int(n) for n in first] == [int(n) for n in again] == [1, 0]
        assert await storage.get_versioned("k") == ("v", 1)
        other = await storage._put(keys=[key, key], args=[*args[:5], "write-2"])  # type: ignore[attr-defined]
        assert int(other[0]) == -1  # a different write expecting version 0 is still a conflict
