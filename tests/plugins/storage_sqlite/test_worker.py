"""The worker thread: cancellation, single-statement writes, durability setting."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from gecko_storage_sqlite import SQLiteStorage

from gecko.errors import FencingError, StorageClosedError, VersionConflictError
from gecko.plugins.storage import Versioned
from gecko.plugins.storage.factory import create_storage

pytestmark = pytest.mark.uvloop  # the store runs on a WorkerThread, which reaches below anyio into the loop


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


def _hold_first_write(store: SQLiteStorage) -> tuple[threading.Event, threading.Event]:
    """Make the store's first write to `gecko_kv` wait, mid-statement on the worker thread, until released.

    Returns (running, release): `running` is set once that statement has started.
    """
    assert store._connection is not None
    running, release = threading.Event(), threading.Event()

    def trace(statement: str) -> None:
        if statement.startswith(("INSERT INTO gecko_kv", "UPDATE gecko_kv")) and not running.is_set():
            running.set()
            release.wait(10)

    store._connection.set_trace_callback(trace)
    return running, release


async def _until(event: threading.Event) -> None:
    assert await anyio.to_thread.run_sync(event.wait, 10)


async def test_a_write_cancelled_while_its_statement_runs_completes_whole_and_the_next_call_sees_it(
    tmp_path: Path,
) -> None:
    async with await create_storage(f"sqlite:///{tmp_path}/cancel-running.db") as store:
        assert isinstance(store, SQLiteStorage)
        assert await store.set("k", {"n": 0}) == 1
        running, release = _hold_first_write(store)

        async def write() -> None:
            await store.compare_and_set("k", {"n": 1, "text": "x" * 10_000}, expected_version=1)
            pytest.fail("the cancelled caller returned")

        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(write)
                await _until(running)
                scope.cancel()
        assert scope.cancelled_caught
        release.set()
        # The statement finished on the thread: the next call, queued behind it, sees the whole
        # write (value and version together), and no transaction is left open.
        assert await store.get_versioned("k") == Versioned({"n": 1, "text": "x" * 10_000}, 2)
        assert store._connection is not None
        assert not store._connection.in_transaction
        assert await store.compare_and_set("k", {"n": 2}, expected_version=2) == 3


async def test_close_with_writes_in_flight_finishes_them_and_refuses_later_ones(tmp_path: Path) -> None:
    target = tmp_path / "close-in-flight.db"
    store = await create_storage(f"sqlite:///{target}")
    assert isinstance(store, SQLiteStorage)
    running, release = _hold_first_write(store)
    outcomes: dict[str, int | str] = {}

    async def write(key: str) -> None:
        try:
            outcomes[key] = await store.set(key, key)
        except StorageClosedError:
            outcomes[key] = "refused"

    async with anyio.create_task_group() as group:
        for number in range(4):
            group.start_soon(write, f"k{number}")
        await _until(running)  # one write runs, the others are queued behind it
        await anyio.sleep(0.05)
        group.start_soon(store.close)
        await anyio.sleep(0.05)
        group.start_soon(write, "late")
        await anyio.sleep(0.05)
        release.set()
    assert outcomes == {"k0": 1, "k1": 1, "k2": 1, "k3": 1, "late": "refused"}
    assert store.closed
    async with await create_storage(f"sqlite:///{target}") as reopened:
        assert {key: await reopened.get_versioned(key) for key in ("k0", "k1", "k2", "k3", "late")} == {
            "k0": Versioned("k0", 1),
            "k1": Versioned("k1", 1),
            "k2": Versioned("k2", 1),
            "k3": Versioned("k3", 1),
            "late": None,
        }


async def test_close_returns_once_the_thread_has_closed_the_connection(tmp_path: Path) -> None:
    target = tmp_path / "closed.db"
    store = await create_storage(f"sqlite:///{target}")
    assert isinstance(store, SQLiteStorage)
    await store.set("k", "v")
    wal = target.with_name("closed.db-wal")
    assert wal.exists()
    await store.close()  # woken by the worker thread itself, after its on_stop
    with pytest.raises(sqlite3.ProgrammingError):
        store._connection.execute("SELECT 1")
    assert not wal.exists()  # the last connection's close checkpointed the log and removed it
