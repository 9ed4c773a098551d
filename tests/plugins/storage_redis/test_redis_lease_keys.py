"""Lease keys: a released or expired lease leaves only the namespace's one token counter behind."""

from __future__ import annotations

import redis

from gecko.plugins.storage import StorageURL
from gecko.plugins.storage.factory import create_storage


def _namespace_keys(url: str) -> list[str]:
    parsed = StorageURL.parse(url)
    namespace = parsed.query["namespace"]
    client = redis.Redis.from_url(f"{parsed.scheme}://{parsed.netloc}{parsed.path}")
    try:
        return sorted(key.decode() for key in client.scan_iter(match=f"{namespace}:*"))
    finally:
        client.close()


async def test_released_leases_of_many_names_leave_one_counter_and_tokens_keep_growing(redis_url: str) -> None:
    namespace = StorageURL.parse(redis_url).query["namespace"]
    tokens = []
    async with await create_storage(redis_url) as storage:
        for number in range(20):
            lease = await storage.acquire_lease(f"session-{number}", owner="worker", ttl=30)
            assert lease is not None
            tokens.append(lease.token)
            await storage.release_lease(lease)
    assert tokens == sorted(set(tokens))
    assert _namespace_keys(redis_url) == [f"{namespace}:lease-tokens"]


async def test_a_name_counter_from_an_earlier_version_is_folded_in_and_removed(redis_url: str) -> None:
    parsed = StorageURL.parse(redis_url)
    namespace = parsed.query["namespace"]
    client = redis.Redis.from_url(f"{parsed.scheme}://{parsed.netloc}{parsed.path}")
    try:
        client.set(f"{namespace}:lease-token:old-session", 41)
    finally:
        client.close()
    async with await create_storage(redis_url) as storage:
        lease = await storage.acquire_lease("old-session", owner="worker", ttl=30)
        assert lease is not None
        assert lease.token == 42
        await storage.release_lease(lease)
        other = await storage.acquire_lease("new-session", owner="worker", ttl=30)
        assert other is not None
        assert other.token == 43
        await storage.release_lease(other)
    assert _namespace_keys(redis_url) == [f"{namespace}:lease-tokens"]
