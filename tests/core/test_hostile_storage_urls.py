"""Hostile storage URLs: every malformed URL, unknown option or unusable location opened through
`create_storage` ends in a typed storage error naming the problem, never a raw exception or a store
that silently ignores what it was asked for."""

from __future__ import annotations

from typing import Any

import pytest

from gecko.errors import InvalidStorageURLError, PluginNotFoundError
from gecko.plugins.storage.factory import create_storage
from gecko.plugins.storage.memory import MemoryStorage


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("memory://?size=10", InvalidStorageURLError, "memory:// takes no location or options, got"),
        ("memory://shared", InvalidStorageURLError, "memory:// takes no location or options, got"),
        ("memory:///a/b", InvalidStorageURLError, "memory:// takes no location or options, got"),
        ("memory://#x", InvalidStorageURLError, "a storage URL takes no '#fragment'"),
        ("memory:", InvalidStorageURLError, "expected 'scheme://location'"),
        ("MEMORY://", InvalidStorageURLError, "scheme 'MEMORY' must be lowercase"),
        ("://", InvalidStorageURLError, "scheme '' must be lowercase"),
        ("memory://\n", InvalidStorageURLError, "control character"),
        ("memory://[::1", InvalidStorageURLError, "Invalid IPv6 URL"),
        ("no-such-scheme-zz://x", PluginNotFoundError, "scheme 'no-such-scheme-zz'"),
        (b"memory://", InvalidStorageURLError, "expected a string, got bytes"),
        (None, InvalidStorageURLError, "expected a string, got NoneType"),
    ],
)
@pytest.mark.parametrize("kind", [None, "kv", "vector"])
async def test_hostile_urls_are_typed_errors(url: Any, error: type[Exception], message: str, kind: Any) -> None:
    with pytest.raises(error) as caught:
        await create_storage(url, kind=kind)
    assert message in str(caught.value)


@pytest.mark.parametrize("url", ["memory://", "memory:///"])
async def test_memory_urls_open_a_new_empty_store(url: str) -> None:
    async with await create_storage(url) as store:
        assert isinstance(store, MemoryStorage)
        assert await store.list_keys("") == []
