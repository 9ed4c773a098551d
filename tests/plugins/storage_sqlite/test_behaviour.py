"""SQLite-specific behaviour: threads, corrupt data, errors that say what to do."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from gecko_storage_sqlite import SQLiteStorage

from gecko.errors import StorageError
from gecko.plugins.storage.factory import create_storage

pytestmark = pytest.mark.uvloop  # the store runs on a WorkerThread, which reaches below anyio into the loop


@pytest.mark.parametrize("options", ["", "?synchronous=full"])
async def test_no_statement_runs_on_the_event_loop_thread_by_default(tmp_path: Path, options: str) -> None:
    store = await create_storage(f"sqlite:///{tmp_path}/threads.db{options}")
    assert isinstance(store, SQLiteStorage)
    assert store._connection is not None
    threads: set[int] = set()
    store._connection.set_trace_callback(lambda _sql: threads.add(threading.get_ident()))
    async with store:
        await store.set("k", {"v": 1})
        await store.compare_and_set("k", {"v": 2}, expected_version=1)
        await store.get("k")
        await store.list_keys()
        lease = await store.acquire_lease("l", owner="me", ttl=10)
        assert lease is not None
        await store.release_lease(lease)
        await store.delete("k")
        assert store._loop_connection is None
    assert threads
    assert threading.get_ident() not in threads


async def test_stored_text_that_is_not_json_is_a_storage_error_naming_the_key(tmp_path: Path) -> None:
    target = tmp_path / "corrupt.db"
    async with await create_storage(f"sqlite:///{target}") as store:
        await store.set("broken", 1)
    with sqlite3.connect(target) as connection:
        connection.execute("UPDATE gecko_kv SET value = 'cos\nsystem\n(S''echo pwned''\ntR.' WHERE key = 'broken'")
    async with await create_storage(f"sqlite:///{target}") as store:
        with pytest.raises(StorageError, match="'broken' is not valid JSON"):
            await store.get("broken")


async def test_file_that_is_not_a_database_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    target = tmp_path / "not-a-db.db"
    target.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=r"not-a-db\.db"):
        await create_storage(f"sqlite:///{target}")


async def test_folder_path_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(StorageError, match="cannot create the folder"):
        await create_storage(f"sqlite:///{blocker}/sub/x.db")


async def test_two_handles_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    async with await create_storage(url) as first, await create_storage(url) as second:
        await first.set("k", "from first")
        assert await second.get("k") == "from first"
        await second.compare_and_set("k", "from second", expected_version=1)
        assert await first.get_versioned("k") == ("from second", 2)
