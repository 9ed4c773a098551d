"""With statements=loop, statements that cannot wait run on the event loop's own connection.

What must hold: a statement on the loop never waits for a lock (a locked database hands it to the
worker thread), never jumps ahead of calls the worker still has, never checkpoints the WAL (that
syncs to disk; the worker does it), and a long series of them still lets other tasks run.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest
from gecko_storage_sqlite import SQLiteStorage, _store

from gecko.plugins.storage.factory import create_storage

pytestmark = pytest.mark.uvloop  # the store runs on a WorkerThread, which reaches below anyio into the loop


async def _open(path: Path) -> SQLiteStorage:
    store = await create_storage(f"sqlite:///{path}?busy_timeout=0.05&statements=loop")
    assert isinstance(store, SQLiteStorage)
    return store


def _threads_running(connection: sqlite3.Connection | None) -> set[int]:
    assert connection is not None
    threads: set[int] = set()
    connection.set_trace_callback(lambda _sql: threads.add(threading.get_ident()))
    return threads


async def test_uncontended_statements_run_on_the_loop_connection(tmp_path: Path) -> None:
    async with await _open(tmp_path / "loop.db") as store:
        on_loop = _threads_running(store._loop_connection)
        on_worker = _threads_running(store._connection)
        await store.set("k", {"v": 1})
        assert await store.compare_and_set("k", {"v": 2}, expected_version=1) == 2
        assert await store.get("k") == {"v": 2}
        lease = await store.acquire_lease("l", owner="me", ttl=10)
        assert lease is not None
        await store.release_lease(lease)
        assert on_loop == {threading.get_ident()}
        assert not on_worker
        assert store._loop_connection is not None
        assert store._loop_connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0


async def test_locked_database_hands_the_write_to_the_worker_and_the_loop_keeps_running(tmp_path: Path) -> None:
    target = tmp_path / "locked.db"
    async with await _open(target) as store:
        on_worker = _threads_running(store._connection)
        blocker = sqlite3.connect(target, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
        ticks = 0
        written = anyio.Event()

        async def write() -> None:
            await store.set("k", "written")
            written.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            while ticks < 20:  # the loop runs other tasks while the write waits on the worker
                await anyio.sleep(0.001)
                ticks += 1
            assert not written.is_set()
            blocker.execute("ROLLBACK")
            blocker.close()
        assert on_worker
        assert threading.get_ident() not in on_worker
        assert await store.get("k") == "written"


async def test_a_statement_never_overtakes_a_call_the_worker_still_has(tmp_path: Path) -> None:
    target = tmp_path / "order.db"
    async with await _open(target) as store:
        blocker = sqlite3.connect(target, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        read: list[object] = []

        async def write() -> None:
            await store.set("k", "first")

        async def read_after() -> None:
            read.append(await store.get("k"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            await anyio.sleep(0.02)  # the write is on the worker, retrying
            tg.start_soon(read_after)
            await anyio.sleep(0.02)
            assert read == []  # queued behind the write, not answered on the loop with nothing
            blocker.execute("ROLLBACK")
            blocker.close()
        assert read == ["first"]


async def test_a_long_series_of_statements_gives_other_tasks_turns(tmp_path: Path) -> None:
    async with await _open(tmp_path / "turns.db") as store:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                await anyio.lowlevel.checkpoint()
                ticks += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            await anyio.lowlevel.checkpoint()  # the ticker starts
            ticks = 0
            for number in range(4 * _store._LOOP_RUN):
                await store.set("k", number)
            done = True
        assert ticks >= 3


async def test_the_worker_checkpoints_the_wal_the_loop_connection_writes(tmp_path: Path) -> None:
    target = tmp_path / "wal.db"
    async with await _open(target) as store:
        on_worker: list[str] = []
        assert store._connection is not None
        store._connection.set_trace_callback(on_worker.append)
        value = "x" * (_store._LOOP_MAX_PAGES - 4) * _store._PAGE  # written on the loop
        writes = 4 * _store._CHECKPOINT_PAGES // _store._LOOP_MAX_PAGES
        for number in range(writes):
            await store.set(f"k{number % 8}", value)
        checkpoints = [sql for sql in on_worker if "wal_checkpoint" in sql]
        assert len(checkpoints) >= 3
        # Without them the WAL would hold every write; with them it is reused from its start.
        wal = target.with_name(target.name + "-wal")
        assert wal.stat().st_size < 2 * _store._CHECKPOINT_PAGES * _store._PAGE
        assert await store.get("k0") == value
