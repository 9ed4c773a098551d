"""`SQLiteStorage`: the storage contract as SQL over one connection owned by a worker thread."""

from __future__ import annotations

import sqlite3
import time
import weakref
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import TypeVar

import anyio.lowlevel
import anyio.to_thread

from gecko.errors import FencingError, StorageClosedError, StorageError, VersionConflictError
from gecko.plugins.storage import Lease, Storage, StorageCapabilities, StorageURL, checked_version
from gecko.plugins.threads import WorkerThread
from gecko_storage_sqlite._connection import (
    Busy,
    _connect,
    _connect_for_loop,
    _immediate,
    _retry_busy,
    attempt,
    purge_expired,
)
from gecko_storage_sqlite._url import (
    STATEMENTS,
    SYNCHRONOUS,
    _database_path,
    _seconds_option,
    _statements_option,
    _synchronous_option,
)

T = TypeVar("T")

_PURGE_EVERY = 1024
# Statements on the event loop's own connection (statements=loop): at most this many in a row
# before other tasks get a turn, none writing more than this many pages, and at most this many
# pages in all before the worker thread checkpoints the WAL (SQLite's own automatic threshold).
_LOOP_RUN = 64
_LOOP_MAX_PAGES = 16
_CHECKPOINT_PAGES = 1000
_PAGE = 4096
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_GET = f"SELECT value, version FROM gecko_kv WHERE key = ? AND {_LIVE}"
# Writes are single statements, atomic on their own. Parameters: ?1 key, ?2 JSON text, ?3 expiry
# (0: none), ?4 now, ?5 expected version (0: none), ?6 fence lease name ('': no fence; lease names
# are never empty), ?7 fence token. None is never bound: `sqlite3` looks up an adapter for every
# None parameter, and the failed lookup builds and drops an AttributeError (~2,000 instructions).
# No row changes (and `_SET` returns none) when the fence or the expected version does not hold. A
# compare-and-set knows the version it writes, so it reads back no row (RETURNING costs about a
# fifth of the write).
_FENCE_HOLDS = "(?6 = '' OR EXISTS (SELECT 1 FROM gecko_leases WHERE name = ?6 AND token = ?7 AND expires_at > ?4))"
_EXPIRY = "NULLIF(?3, 0)"
_SET = (
    f"INSERT INTO gecko_kv (key, value, version, expires_at) SELECT ?1, ?2, 1, {_EXPIRY} WHERE {_FENCE_HOLDS} "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, "
    "version = CASE WHEN gecko_kv.expires_at <= ?4 THEN 1 ELSE gecko_kv.version + 1 END "
    "RETURNING version"
)
_REPLACE_IF_AT = (
    f"UPDATE gecko_kv SET value = ?2, version = version + 1, expires_at = {_EXPIRY} "
    f"WHERE key = ?1 AND version = ?5 AND (expires_at IS NULL OR expires_at > ?4) AND {_FENCE_HOLDS}"
)
_CREATE_IF_ABSENT = (
    f"INSERT INTO gecko_kv (key, value, version, expires_at) SELECT ?1, ?2, 1, {_EXPIRY} WHERE {_FENCE_HOLDS} "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = 1, expires_at = excluded.expires_at "
    "WHERE gecko_kv.expires_at <= ?4"
)


class SQLiteStorage(Storage):
    """A key-value store in one SQLite file, shared safely by every process that opens it.

    Open it with `create_storage("sqlite:///...")` or `await SQLiteStorage.open(path)`.
    """

    scheme = "sqlite"
    capabilities = StorageCapabilities(ttl=True, persistent=True, leases=True, cross_process=True)

    def __init__(
        self,
        connection: sqlite3.Connection,
        path: Path,
        *,
        retry_for: float,
        loop_connection: sqlite3.Connection | None = None,
    ) -> None:
        """Wrap open connections and start the worker thread; use `open` or `from_url` rather than this.

        `loop_connection` (from `_connect_for_loop`), when given, runs statements on the event loop.
        """
        self._connection = connection
        self._loop_connection = loop_connection
        self._path = path
        self._retry_for = retry_for
        self._writes = 0
        self._purged_at = 0
        # Statements the loop connection may still run before the worker's turn, and the WAL
        # pages it wrote since the worker last checkpointed.
        self._loop_run = _LOOP_RUN
        self._wal_pages = 0
        self._worker = WorkerThread(
            f"gecko-sqlite {path.name}",
            closed_error=partial(StorageClosedError, f"SQLiteStorage({str(path)!r}) was used after close()"),
            on_stop=connection.close,
        )
        # A store dropped without close() still stops its thread and closes its connection.
        weakref.finalize(self, self._worker.stop)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        busy_timeout: float = 5.0,
        retry_for: float = 60.0,
        synchronous: str = "normal",
        statements: str = "worker",
    ) -> SQLiteStorage:
        """Open (creating it and its parent folder if needed) the database at `path`.

        Args:
            path: the database file.
            busy_timeout: seconds SQLite itself waits for a lock before reporting busy.
            retry_for: seconds the backend keeps retrying a busy database before giving up.
            synchronous: "normal" (commits survive a crash of the process; the last ones may be lost
                on power loss) or "full" (every commit is flushed to disk before it returns; slower).
            statements: "worker" (every statement runs on the store's worker thread; the event loop
                never waits on the database) or "loop" (needs synchronous="normal": a statement that
                can finish at once runs on the event loop itself, which it blocks while it runs; see
                `_run`).
        """
        if synchronous not in SYNCHRONOUS:
            raise StorageError(f"synchronous must be 'normal' or 'full', got {synchronous!r}")
        if statements not in STATEMENTS:
            raise StorageError(f"statements must be 'worker' or 'loop', got {statements!r}")
        if statements == "loop" and synchronous != "normal":
            raise StorageError("statements='loop' needs synchronous='normal' (at full every commit waits for the disk)")
        resolved = Path(path)
        connection = await anyio.to_thread.run_sync(_connect, resolved, busy_timeout, retry_for, synchronous)
        loop_connection = None
        if statements == "loop":
            try:
                loop_connection = await anyio.to_thread.run_sync(_connect_for_loop, resolved)
            except BaseException:
                connection.close()
                raise
        return cls(connection, resolved, retry_for=retry_for, loop_connection=loop_connection)

    @classmethod
    async def from_url(cls, url: StorageURL) -> SQLiteStorage:
        """Open the database a `sqlite:///...` URL names."""
        path = _database_path(url)
        busy_timeout = _seconds_option(url, "busy_timeout", 5.0)
        retry_for = _seconds_option(url, "retry_for", 60.0)
        synchronous = _synchronous_option(url)
        statements = _statements_option(url, synchronous)
        return await cls.open(
            path, busy_timeout=busy_timeout, retry_for=retry_for, synchronous=synchronous, statements=statements
        )

    # --- the raw contract ------------------------------------------------------------

    async def _raw_get(self, key: str) -> tuple[str, int] | None:
        return await self._run(self._get, key, pages=0)

    def _raw_put(
        self,
        key: str,
        text: str,
        *,
        ttl: float | None,
        fence: Lease | None,
        expected_version: int | None,
        check_version: bool,
    ) -> Coroutine[object, object, int]:
        # `_run`'s coroutine itself, to await: no coroutine of its own (durable workflows write every step).
        # A row's pages, and the b-tree page above them.
        pages = 2 + len(text) // _PAGE
        return self._run(self._put, key, text, ttl, fence, expected_version, check_version, pages=pages)

    async def _raw_delete(self, key: str, fence: Lease | None) -> bool:
        return await self._run(self._delete, key, fence, pages=2)

    async def _raw_list(self, prefix: str) -> list[str]:
        return await self._run(self._list, prefix, pages=0)

    async def _raw_acquire_lease(self, name: str, owner: str, ttl: float) -> Lease | None:
        return await self._run(self._acquire, name, owner, ttl, owner, pages=3)

    async def _raw_take_over_lease(self, name: str, owner: str, ttl: float, replacing: str) -> Lease | None:
        return await self._run(self._acquire, name, owner, ttl, replacing, pages=3)

    async def _raw_lease_owner(self, name: str) -> str | None:
        return await self._run(self._lease_owner, name, pages=0)

    async def _raw_renew_lease(self, lease: Lease, ttl: float) -> Lease:
        return await self._run(self._renew, lease, ttl, pages=2)

    async def _raw_release_lease(self, lease: Lease) -> None:
        await self._run(self._release, lease, pages=2)

    async def _raw_close(self) -> None:
        if self._loop_connection is not None:
            # Never the last connection (the worker's closes after it), so closing it does not
            # checkpoint the WAL here.
            self._loop_connection.close()
        await self._worker.aclose()

    async def _run(self, operation: Callable[..., T], *args: object, pages: int) -> T:
        """Run `operation(connection, *args)`, writing about `pages` pages, and return its result.

        With statements="loop" (synchronous=normal: a commit writes the WAL without syncing it to
        disk), a statement that can run at once runs on the event loop's own connection: it never waits (no busy
        timeout) and never checkpoints, and every `_LOOP_RUN`th one first lets other tasks run.
        Everything else goes, in order, through the worker thread, which retries while the
        database is busy: a statement while the worker has calls queued or running, a locked
        database, a large value, and the WAL checkpoint and purge of expired rows the loop
        connection's writes call for.
        """
        loop_connection = self._loop_connection
        if loop_connection is not None:
            if not self._loop_run:
                self._loop_run = _LOOP_RUN
                await anyio.lowlevel.checkpoint()
            if not self._worker.idle:
                pass  # calls queued before this one run first
            elif self._wal_pages >= _CHECKPOINT_PAGES or self._writes - self._purged_at >= _PURGE_EVERY:
                await self._worker.run(self._retrying(self._maintain, ()))
            elif pages <= _LOOP_MAX_PAGES:
                try:
                    result = attempt(loop_connection, self._path, operation, (loop_connection, *args))
                except Busy:
                    pass  # another connection holds the database: the worker thread waits for it
                else:
                    self._loop_run -= 1
                    self._wal_pages += pages
                    return result
        return await self._worker.run(self._retrying(operation, args))

    def _retrying(self, operation: Callable[..., T], args: tuple[object, ...]) -> Callable[[], T]:
        """The call for the store's thread: `operation(connection, *args)`, retried while the database is busy.

        Built here rather than awaited in a coroutine of its own: one coroutine frame fewer to
        suspend and resume around every hop to the thread.
        """
        connection = self._connection
        return partial(
            _retry_busy, connection, self._path, self._retry_for, operation, (connection, *args), self._worker.abandoned
        )

    # --- worker-thread side ----------------------------------------------------------

    def _get(self, connection: sqlite3.Connection, key: str) -> tuple[str, int] | None:
        rows = connection.execute(_GET, (key, time.time())).fetchall()
        return (rows[0][0], rows[0][1]) if rows else None

    def _put(
        self,
        connection: sqlite3.Connection,
        key: str,
        text: str,
        ttl: float | None,
        fence: Lease | None,
        expected_version: int | None,
        check_version: bool,
    ) -> int:
        now = time.time()
        expiry = 0 if ttl is None else now + ttl
        if fence is None:
            parameters = (key, text, expiry, now, expected_version or 0, "", 0)
        else:
            parameters = (key, text, expiry, now, expected_version or 0, fence.name, fence.token)
        version: int | None
        if not check_version:
            rows = connection.execute(_SET, parameters).fetchall()
            version = rows[0][0] if rows else None
        elif expected_version:
            version = expected_version + 1 if connection.execute(_REPLACE_IF_AT, parameters).rowcount == 1 else None
        else:
            version = 1 if connection.execute(_CREATE_IF_ABSENT, parameters).rowcount == 1 else None
        if version is None:
            # The fence or the version did not hold a moment ago: decide again in one transaction,
            # which raises the exact error (or writes, if the key moved back in the meantime).
            return self._checked_put(connection, key, text, ttl, fence, expected_version, check_version)
        self._after_write(connection, now)
        return version

    def _checked_put(
        self,
        connection: sqlite3.Connection,
        key: str,
        text: str,
        ttl: float | None,
        fence: Lease | None,
        expected_version: int | None,
        check_version: bool,
    ) -> int:
        with _immediate(connection):
            now = time.time()
            _check_fence(connection, fence, now)
            row = connection.execute(f"SELECT version FROM gecko_kv WHERE key = ? AND {_LIVE}", (key, now)).fetchone()
            current = 0 if row is None else checked_version(row[0], key)
            if check_version and current != (expected_version or 0):
                raise VersionConflictError(
                    f"{key!r} is at version {current or 'absent'}, expected {expected_version or 'absent'}; "
                    "read it again and retry"
                )
            connection.execute(
                "INSERT INTO gecko_kv (key, value, version, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, "
                "expires_at = excluded.expires_at",
                (key, text, current + 1, None if ttl is None else now + ttl),
            )
        self._after_write(connection, now)
        return current + 1

    def _delete(self, connection: sqlite3.Connection, key: str, fence: Lease | None) -> bool:
        with _immediate(connection):
            now = time.time()
            _check_fence(connection, fence, now)
            rows = connection.execute("DELETE FROM gecko_kv WHERE key = ? RETURNING expires_at", (key,)).fetchall()
        return bool(rows) and (rows[0][0] is None or rows[0][0] > now)

    def _list(self, connection: sqlite3.Connection, prefix: str) -> list[str]:
        now = time.time()
        upper = _prefix_successor(prefix)
        if upper is None:
            cursor = connection.execute(f"SELECT key FROM gecko_kv WHERE key >= ? AND {_LIVE}", (prefix, now))
        else:
            cursor = connection.execute(
                f"SELECT key FROM gecko_kv WHERE key >= ? AND key < ? AND {_LIVE}", (prefix, upper, now)
            )
        return [row[0] for row in cursor.fetchall()]

    def _acquire(
        self, connection: sqlite3.Connection, name: str, owner: str, ttl: float, replacing: str
    ) -> Lease | None:
        with _immediate(connection):
            now = time.time()
            row = connection.execute(
                "SELECT owner, token, expires_at FROM gecko_leases WHERE name = ?", (name,)
            ).fetchone()
            if row is not None and row[2] > now and row[0] not in (owner, replacing):
                return None
            token = int(
                connection.execute("UPDATE gecko_lease_tokens SET token = token + 1 RETURNING token").fetchone()[0]
            )
            connection.execute(
                "INSERT INTO gecko_leases (name, owner, token, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, token = excluded.token, "
                "expires_at = excluded.expires_at",
                (name, owner, token, now + ttl),
            )
        self._after_write(connection, now)
        return Lease(name=name, owner=owner, token=token, expires_at=now + ttl)

    def _lease_owner(self, connection: sqlite3.Connection, name: str) -> str | None:
        row = connection.execute(
            "SELECT owner FROM gecko_leases WHERE name = ? AND expires_at > ?", (name, time.time())
        ).fetchone()
        return None if row is None else str(row[0])

    def _renew(self, connection: sqlite3.Connection, lease: Lease, ttl: float) -> Lease:
        with _immediate(connection):
            now = time.time()
            _check_fence(connection, lease, now)
            connection.execute(
                "UPDATE gecko_leases SET expires_at = ? WHERE name = ? AND token = ?",
                (now + ttl, lease.name, lease.token),
            )
        return Lease(name=lease.name, owner=lease.owner, token=lease.token, expires_at=now + ttl)

    def _release(self, connection: sqlite3.Connection, lease: Lease) -> None:
        # Tokens come from the database-wide counter, so the owner removes its row outright.
        connection.execute("DELETE FROM gecko_leases WHERE name = ? AND token = ?", (lease.name, lease.token))

    def _after_write(self, connection: sqlite3.Connection, now: float) -> None:
        self._writes += 1
        if connection is self._connection and self._writes - self._purged_at >= _PURGE_EVERY:
            self._purge(connection, now)

    def _purge(self, connection: sqlite3.Connection, now: float) -> None:
        purge_expired(connection, now)
        self._purged_at = self._writes

    def _maintain(self, connection: sqlite3.Connection) -> None:
        """Checkpoint the WAL the loop connection wrote, and purge expired rows when due (worker thread)."""
        if self._wal_pages >= _CHECKPOINT_PAGES:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self._wal_pages = 0
        if self._writes - self._purged_at >= _PURGE_EVERY:
            self._purge(connection, time.time())


def _check_fence(connection: sqlite3.Connection, fence: Lease | None, now: float) -> None:
    if fence is None:
        return
    row = connection.execute("SELECT token, expires_at FROM gecko_leases WHERE name = ?", (fence.name,)).fetchone()
    if row is None or row[0] != fence.token or row[1] <= now:
        raise FencingError(
            f"lease {fence.name!r} token {fence.token} is no longer the current grant; "
            "stop writing and acquire the lease again"
        )


def _prefix_successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None: no bound).

    SQLite compares TEXT as UTF-8 bytes, which orders like code points.
    """
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            following = last + 1 if last + 1 != 0xD800 else 0xE000
            return prefix[:-1] + chr(following)
        prefix = prefix[:-1]
    return None
