"""How `sqlite://` URLs map to files, and what a malformed one says."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from gecko_storage_sqlite import SQLiteStorage

from gecko.errors import InvalidStorageURLError, StorageError
from gecko.plugins.storage.factory import create_storage

pytestmark = pytest.mark.uvloop  # the store runs on a WorkerThread, which reaches below anyio into the loop


async def test_three_slashes_open_a_path_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with await create_storage("sqlite:///./data/relative.db") as store:
        await store.set("k", 1)
    assert (tmp_path / "data" / "relative.db").is_file()


async def test_four_slashes_open_an_absolute_path(tmp_path: Path) -> None:
    target = tmp_path / "absolute.db"
    assert str(target).startswith("/")
    async with await create_storage(f"sqlite:///{target}") as store:
        assert isinstance(store, SQLiteStorage)
        assert store.path == target
        await store.set("k", 1)
    assert target.is_file()


async def test_missing_parent_folders_are_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c" / "nested.db"
    async with await create_storage(f"sqlite:///{target}") as store:
        await store.set("k", 1)
    assert target.is_file()


async def test_database_uses_wal_journaling(tmp_path: Path) -> None:
    target = tmp_path / "wal.db"
    async with await create_storage(f"sqlite:///{target}"):
        pass
    with sqlite3.connect(target) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///", "sqlite:///folder/", "sqlite://host/x.db", "sqlite:///:memory:"],
)
async def test_url_without_a_database_file_shows_valid_forms(url: str) -> None:
    with pytest.raises(InvalidStorageURLError, match=r"sqlite:///\./"):
        await create_storage(url)


async def test_unknown_url_option_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(InvalidStorageURLError, match="busy_timeout, retry_for"):
        await create_storage(f"sqlite:///{tmp_path}/x.db?timeout=3")


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
async def test_non_positive_busy_timeout_is_rejected(tmp_path: Path, value: str) -> None:
    with pytest.raises(InvalidStorageURLError, match="positive number of seconds"):
        await create_storage(f"sqlite:///{tmp_path}/x.db?busy_timeout={value}")


async def test_busy_timeout_option_reaches_sqlite(tmp_path: Path) -> None:
    async with await create_storage(f"sqlite:///{tmp_path}/x.db?busy_timeout=7.5") as store:
        assert isinstance(store, SQLiteStorage)
        assert store._connection is not None
        assert store._connection.execute("PRAGMA busy_timeout").fetchone()[0] == 7500


async def test_synchronous_defaults_to_normal(tmp_path: Path) -> None:
    async with await create_storage(f"sqlite:///{tmp_path}/x.db") as store:
        assert isinstance(store, SQLiteStorage)
        assert store._connection is not None
        assert store._connection.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


async def test_synchronous_full_option_reaches_sqlite(tmp_path: Path) -> None:
    async with await create_storage(f"sqlite:///{tmp_path}/x.db?synchronous=full") as store:
        assert isinstance(store, SQLiteStorage)
        assert store._connection is not None
        assert store._connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


async def test_unknown_synchronous_value_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(InvalidStorageURLError, match=r"normal .* or full"):
        await create_storage(f"sqlite:///{tmp_path}/x.db?synchronous=off")


async def test_statements_run_on_the_worker_unless_loop_is_asked_for(tmp_path: Path) -> None:
    async with await create_storage(f"sqlite:///{tmp_path}/x.db") as store:
        assert isinstance(store, SQLiteStorage)
        assert store._loop_connection is None
    async with await create_storage(f"sqlite:///{tmp_path}/x.db?statements=LOOP") as store:
        assert isinstance(store, SQLiteStorage)
        assert store._loop_connection is not None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("statements=thread", r"worker .* or loop"),
        ("statements=loop&synchronous=full", r"statements=loop needs synchronous=normal"),
    ],
)
async def test_bad_statements_option_is_refused(tmp_path: Path, query: str, message: str) -> None:
    with pytest.raises(InvalidStorageURLError, match=message):
        await create_storage(f"sqlite:///{tmp_path}/x.db?{query}")
    assert not (tmp_path / "x.db").exists()


async def test_open_refuses_loop_statements_at_full(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="needs synchronous='normal'"):
        await SQLiteStorage.open(tmp_path / "x.db", synchronous="full", statements="loop")


@pytest.mark.parametrize(
    ("location", "name"), [("./a%20b.db", "a b.db"), ("./100%25.db", "100%.db"), ("./%E4%B8%AD.db", "\u4e2d.db")]
)
async def test_the_path_is_percent_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, location: str, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    async with await create_storage(f"sqlite:///{location}") as store:
        await store.set("k", 1)
    assert [file for file in os.listdir(tmp_path) if not file.endswith(("-wal", "-shm"))] == [name]


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("%00x.db", "holds '\\x00'"),
        ("./a%0Ab.db", "holds '\\n'"),
        ("./50%.db", "'%' not followed by two hex digits"),
        ("./%ff.db", "does not percent-decode to UTF-8 text"),
        ("./dir%2F", "names no database file"),
        ("%3Amemory%3A", "asks for an in-memory database"),
    ],
)
async def test_a_path_that_decodes_to_no_usable_file_is_refused_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, location: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidStorageURLError) as caught:
        await create_storage(f"sqlite:///{location}")
    assert message in str(caught.value)
    assert os.listdir(tmp_path) == []
