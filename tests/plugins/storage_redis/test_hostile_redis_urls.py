"""Hostile Redis URLs fail when the store is opened, with a typed error, not at the first command
with a raw TypeError (no server is needed: nothing here connects)."""

from __future__ import annotations

import pytest

from gecko.errors import InvalidStorageURLError, StorageError
from gecko.plugins.storage.factory import create_storage


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("redis://127.0.0.1:6379/0?colour=red", InvalidStorageURLError, "an option is not a Redis connection setting"),
        ("redis://127.0.0.1:6379/0?ttl=5", InvalidStorageURLError, "unexpected keyword argument 'ttl'"),
        ("unix:///run/redis.sock?db=0&x=1", InvalidStorageURLError, "unexpected keyword argument 'x'"),
        ("rediss://127.0.0.1:6380/0?colour=red", InvalidStorageURLError, "an option is not a Redis connection setting"),
        ("redis://127.0.0.1:6379/0?socket_timeout=soon", StorageError, "Invalid value for 'socket_timeout'"),
        ("redis://127.0.0.1:99999/0", StorageError, "Port out of range"),
        ("redis://127.0.0.1:6379/zero", StorageError, "the path must be a database number"),
        ("redis://127.0.0.1:6379/0?namespace=", StorageError, "namespace must not be empty"),
        ("redis://:secret@127.0.0.1:6379/0?colour=red", InvalidStorageURLError, "redis://[REDACTED]@127.0.0.1"),
    ],
)
async def test_hostile_redis_urls_are_typed_errors_at_open(url: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        await create_storage(url)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


async def test_known_options_still_open() -> None:
    async with await create_storage("redis://127.0.0.1:6379/0?socket_timeout=3&health_check_interval=5"):
        pass
