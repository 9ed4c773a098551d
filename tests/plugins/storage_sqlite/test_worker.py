"""The worker thread: cancellation, single-statement writes, durability setting."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest
from gecko_storage_sqlite import SQLiteStorage

from gecko.errors import FencingError, VersionConflictError
from gecko.plugins.storage import Versioned
from gecko.plugins.storage.factory import create_storage


async def test_cancelled_write_is_abandoned_and_leaves_no_transaction_open(tmp_path: Path) -> None:
    target = tmp_path / "cancel.db"
    async with await create_storage(f"sqlite:///{target}?busy_timeout=0.05") as store:
        assert isinstance(store, SQLiteStorage)
        blocker = sqlite3.connect(target, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
        with anyio.move_on_after(0.3) as scope:
            await store.set("k", "never written")
        assert scope.cancelled_caught
        # Queued behind the abandoned write, so it returns once the worker has given that up.
        assert await store.get("k") is None
        blocker.execute("ROLLBACK")
        blocker.close()
        assert await store.set("k", "written") == 1
        assert store._connection is not None
        assert not store._connection.in_transaction
        assert await store.get_versioned("k") == Versioned("written", 1)


async def test_conflicting_compare_and_set_names_the_current_version(tmp_path: Path) -> None:
    async with await create_storage(f"sqlite:///{tmp_path}/conflict.db") as store:
        await store.set("k", 1)
        await store.set("k", 2)
        with pytest.raises(VersionConflictError, match="'k' is at version 2, expected 1"):
            await store.compare_and_set("k", 3, expected_version=1)


async def test_stale_fence_cannot_create_an_absent_key(tmp_path: Path) -> None:
    async with await create_storage(f"sqlite:///{tmp_path}/fence.db") as store:
        stale = await store.acquire_lease("job", owner="a", ttl=60)
        assert stale is not None
        await store.release_lease(stale)
        assert await store.acquire_lease("job", owner="b", ttl=60) is not None
        with pytest.raises(FencingError):
            await store.compare_and_set("k", "late", expected_version=None, fence=stale)
        assert await store.get_versioned("k") is None


async def test_current_fence_creates_then_replaces_with_compare_and_set(tmp_path: Path) -> None:
    async with await create_storage(f"sqlite:///{tmp_path}/fenced.db") as store:
        lease = await store.acquire_lease("job", owner="a", ttl=60)
        assert lease is not None
        assert await store.compare_and_set("k", "first", expected_version=None, fence=lease) == 1
        assert await store.compare_and_set("k", "second", expected_version=1, fence=lease) == 2
        assert await store.get_versioned("k") == Versioned("second", 2)


async def test_operations_run_on_one_thread_per_store(tmp_path: Path) -> None:
    async with await create_storage(f"sqlite:///{tmp_path}/one-thread.db") as store:
        assert isinstance(store, SQLiteStorage)
        assert store._connection is not None
        threads: set[int] = set()
        store._connection.set_trace_callback(lambda _sql: threads.add(threading.get_ident()))
        for number in range(20):
            await store.set(f"k{number}", number)
            await store.get(f"k{number}")
    assert len(threads) == 1
