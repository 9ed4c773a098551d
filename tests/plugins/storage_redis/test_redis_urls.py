"""Redis URLs: namespaces isolate stores; bad URLs say what a valid one looks like."""

from __future__ import annotations

import pytest

from gecko.errors import StorageError
from gecko.plugins.storage.factory import create_storage


async def test_namespaces_isolate_keys_on_one_server(redis_base_url: str) -> None:
    separator = "&" if "?" in redis_base_url else "?"
    async with (
        await create_storage(f"{redis_base_url}{separator}namespace=gecko-test-a") as first,
        await create_storage(f"{redis_base_url}{separator}namespace=gecko-test-b") as second,
    ):
        await first.set("shared-name", "a")
        try:
            assert await second.get("shared-name") is None
        finally:
            await first.delete("shared-name")


async def test_glob_characters_in_a_prefix_match_literally(redis_url: str) -> None:
    async with await create_storage(redis_url) as storage:
        await storage.set("a*b", 1)
        await storage.set("axb", 2)
        assert await storage.list_keys("a*") == ["a*b"]


async def test_an_empty_namespace_is_rejected(redis_base_url: str) -> None:
    separator = "&" if "?" in redis_base_url else "?"
    with pytest.raises(StorageError, match="namespace"):
        await create_storage(f"{redis_base_url}{separator}namespace=")


async def test_an_invalid_url_names_valid_forms() -> None:
    with pytest.raises(StorageError, match=r"redis://localhost:6379/0"):
        await create_storage("redis://localhost:6379/notanumber")
