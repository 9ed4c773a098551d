"""A namespace holding glob characters lists its own keys only: SCAN's pattern escapes the
namespace as well as the prefix."""

from __future__ import annotations

import uuid

import pytest

from gecko.plugins.storage.factory import create_storage


@pytest.mark.parametrize("pattern", ["*", "?", "[b]", "\\b"])
async def test_a_namespace_with_glob_characters_lists_only_its_own_keys(redis_base_url: str, pattern: str) -> None:
    base = f"test-{uuid.uuid4().hex}"
    separator = "&" if "?" in redis_base_url else "?"
    globbed, other = (f"{redis_base_url}{separator}namespace={base}{name}" for name in (pattern, "b"))
    async with await create_storage(other) as neighbour, await create_storage(globbed) as store:
        await neighbour.set("theirs", 1)
        await store.set("mine", 2)
        try:
            assert await store.list_keys("") == ["mine"]
            assert await neighbour.list_keys("") == ["theirs"]
        finally:
            await neighbour.delete("theirs")
            await store.delete("mine")
