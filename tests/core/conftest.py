"""Fixtures shared by the core tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gecko.core._stored import SEAL_FIELD, Sealer
from gecko.plugins.storage import Storage

Reseal = Callable[..., Awaitable[None]]


@pytest.fixture
def reseal() -> Reseal:
    """`await reseal(storage, key, record, key=None)`: store `record` at `key` with a valid seal.

    This is what someone who knows the sealing scheme (and the key, if one is set) can do: the
    record's shape is then all that stands between it and the engine.
    """

    async def write(storage: Storage, where: str, record: dict[str, Any], key: bytes | None = None) -> None:
        found = await storage.get_versioned(where)
        version = 1 if found is None else found.version + 1
        body = {name: value for name, value in record.items() if name != SEAL_FIELD}
        await storage.set(where, Sealer(key).seal(body, where=where, version=version))

    return write
