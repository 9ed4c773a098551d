"""Lease rows have an owner that removes them or an expiry that purges them, and tokens never repeat."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anyio
import pytest

from gecko.errors import FencingError
from gecko.plugins.storage.factory import create_storage

pytestmark = pytest.mark.uvloop  # the store runs on a WorkerThread, which reaches below anyio into the loop


def _lease_rows(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT name, token FROM gecko_leases ORDER BY name").fetchall()


async def test_a_released_lease_leaves_no_row_and_the_next_grant_has_a_larger_token(tmp_path: Path) -> None:
    path = tmp_path / "release.db"
    async with await create_storage(f"sqlite:///{path}") as store:
        first = await store.acquire_lease("session", owner="a", ttl=60)
        assert first is not None
        assert _lease_rows(path) == [("session", first.token)]
        await store.release_lease(first)
        assert _lease_rows(path) == []
        second = await store.acquire_lease("session", owner="b", ttl=60)
        assert second is not None
        assert second.token > first.token
        with pytest.raises(FencingError):
            await store.set("k", "stale writer", fence=first)


async def test_expired_lease_rows_are_purged_and_a_stale_holder_stays_fenced_out(tmp_path: Path) -> None:
    path = tmp_path / "expire.db"
    async with await create_storage(f"sqlite:///{path}") as store:
        stale = await store.acquire_lease("session", owner="crashed", ttl=0.05)
        other = await store.acquire_lease("other", owner="crashed", ttl=0.05)
        assert stale is not None
        assert other is not None
    await anyio.sleep(0.1)
    # Opening the database purges what has expired, as every 1024th write does while it is open.
    async with await create_storage(f"sqlite:///{path}") as store:
        assert _lease_rows(path) == []
        fresh = await store.acquire_lease("session", owner="new", ttl=60)
        assert fresh is not None
        assert fresh.token > max(stale.token, other.token)
        with pytest.raises(FencingError):
            await store.set("k", "stale writer", fence=stale)
        assert await store.set("k", "current writer", fence=fresh) == 1


async def test_writes_purge_expired_lease_rows_while_the_store_stays_open(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    async with await create_storage(f"sqlite:///{path}") as store:
        for number in range(10):
            assert await store.acquire_lease(f"gone-{number}", owner="a", ttl=0.05) is not None
        await anyio.sleep(0.1)
        for number in range(1024):
            await store.set(f"k{number % 8}", number)
        assert _lease_rows(path) == []


def test_a_database_from_before_the_token_counter_continues_above_its_tokens(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE gecko_leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, token INTEGER NOT NULL, "
            "expires_at REAL NOT NULL) WITHOUT ROWID"
        )
        connection.execute("INSERT INTO gecko_leases VALUES ('session', 'old', 7, ?)", (time.time() + 60,))
        connection.execute("INSERT INTO gecko_leases VALUES ('released', 'old', 41, 0)")

    async def main() -> int:
        async with await create_storage(f"sqlite:///{path}") as store:
            lease = await store.acquire_lease("fresh", owner="new", ttl=60)
            assert lease is not None
            return lease.token

    assert anyio.run(main) == 42
    assert _lease_rows(path) == [("fresh", 42), ("session", 7)]
