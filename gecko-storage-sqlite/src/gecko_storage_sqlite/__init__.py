"""`sqlite://`: Gecko's embedded key-value store, safe across threads, tasks and processes.

    create_storage("sqlite:///./relative.db")      # relative to the working directory
    create_storage("sqlite:////abs/path/gecko.db")  # absolute
    create_storage("sqlite:///./gecko.db?busy_timeout=10&synchronous=full")

One connection per store, owned by one long-lived worker thread that runs the store's operations
in order: every operation is a single hop to that thread and back, so the event loop never waits
on disk. The database runs in WAL mode with a busy timeout. Compare-and-set is one atomic
statement (`UPDATE ... WHERE version = ? RETURNING version`); writes that must check a lease
first run in `BEGIN IMMEDIATE` transactions. A busy database is retried with backoff inside the
backend, so "database is locked" never reaches the caller (after `retry_for` seconds of contention
it becomes `StorageUnavailableError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import sqlite3
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio.to_thread

from gecko.errors import (
    FencingError,
    InvalidStorageURLError,
    StorageClosedError,
    StorageError,
    StorageUnavailableError,
    VersionConflictError,
)
from gecko.plugins.storage import Lease, Storage, StorageCapabilities, StorageURL
from gecko_storage_sqlite._version import __version__

if TYPE_CHECKING:
    import trio

__all__ = ("SQLiteStorage", "__version__")

T = TypeVar("T")

_VALID_FORMS = (
    "sqlite:///./relative/path.db (three slashes, then a path relative to the working directory) or "
    "sqlite:////absolute/path.db (four slashes)"
)
_QUERY_OPTIONS = ("busy_timeout", "retry_for", "synchronous")
_SYNCHRONOUS = ("normal", "full")
_PURGE_EVERY = 1024
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS gecko_kv ("
    " key TEXT PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL, expires_at REAL"
    ") WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS gecko_leases ("
    " name TEXT PRIMARY KEY, owner TEXT NOT NULL, token INTEGER NOT NULL, expires_at REAL NOT NULL"
    ") WITHOUT ROWID",
)
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_GET = f"SELECT value, version FROM gecko_kv WHERE key = ? AND {_LIVE}"
# Writes are single statements, atomic on their own. Parameters: ?1 key, ?2 JSON text, ?3 expiry,
# ?4 now, ?5 expected version, ?6 fence lease name (NULL: no fence), ?7 fence token. No row comes
# back when the fence or the expected version does not hold, and nothing is written.
_FENCE_HOLDS = "(?6 IS NULL OR EXISTS (SELECT 1 FROM gecko_leases WHERE name = ?6 AND token = ?7 AND expires_at > ?4))"
_SET = (
    f"INSERT INTO gecko_kv (key, value, version, expires_at) SELECT ?1, ?2, 1, ?3 WHERE {_FENCE_HOLDS} "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, "
    "version = CASE WHEN gecko_kv.expires_at <= ?4 THEN 1 ELSE gecko_kv.version + 1 END "
    "RETURNING version"
)
_REPLACE_IF_AT = (
    "UPDATE gecko_kv SET value = ?2, version = version + 1, expires_at = ?3 "
    f"WHERE key = ?1 AND version = ?5 AND (expires_at IS NULL OR expires_at > ?4) AND {_FENCE_HOLDS} "
    "RETURNING version"
)
_CREATE_IF_ABSENT = (
    f"INSERT INTO gecko_kv (key, value, version, expires_at) SELECT ?1, ?2, 1, ?3 WHERE {_FENCE_HOLDS} "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = 1, expires_at = excluded.expires_at "
    "WHERE gecko_kv.expires_at <= ?4 "
    "RETURNING version"
)


class SQLiteStorage(Storage):
    """A key-value store in one SQLite file, shared safely by every process that opens it.

    Open it with `create_storage("sqlite:///...")` or `await SQLiteStorage.open(path)`.
    """

    scheme = "sqlite"
    capabilities = StorageCapabilities(ttl=True, persistent=True, leases=True, cross_process=True)

    def __init__(self, connection: sqlite3.Connection, path: Path, *, retry_for: float) -> None:
        """Wrap an open connection and start its worker thread; use `open` or `from_url` rather than this."""
        self._connection = connection
        self._path = path
        self._writes = 0
        self._worker = _Worker(connection, path, retry_for)
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
    ) -> SQLiteStorage:
        """Open (creating it and its parent folder if needed) the database at `path`.

        Args:
            path: the database file.
            busy_timeout: seconds SQLite itself waits for a lock before reporting busy.
            retry_for: seconds the backend keeps retrying a busy database before giving up.
            synchronous: "normal" (commits survive a crash of the process; the last ones may be lost
                on power loss) or "full" (every commit is flushed to disk before it returns; slower).
        """
        if synchronous not in _SYNCHRONOUS:
            raise StorageError(f"synchronous must be 'normal' or 'full', got {synchronous!r}")
        resolved = Path(path)
        connection = await anyio.to_thread.run_sync(_connect, resolved, busy_timeout, retry_for, synchronous)
        return cls(connection, resolved, retry_for=retry_for)

    @classmethod
    async def from_url(cls, url: StorageURL) -> SQLiteStorage:
        """Open the database a `sqlite:///...` URL names."""
        path = _database_path(url)
        busy_timeout = _seconds_option(url, "busy_timeout", 5.0)
        retry_for = _seconds_option(url, "retry_for", 60.0)
        synchronous = _synchronous_option(url)
        return await cls.open(path, busy_timeout=busy_timeout, retry_for=retry_for, synchronous=synchronous)

    # --- the raw contract ------------------------------------------------------------

    async def _raw_get(self, key: str) -> tuple[str, int] | None:
        return await self._worker.run(self._get, (key,))

    async def _raw_put(
        self,
        key: str,
        text: str,
        *,
        ttl: float | None,
        fence: Lease | None,
        expected_version: int | None,
        check_version: bool,
    ) -> int:
        return await self._worker.run(self._put, (key, text, ttl, fence, expected_version, check_version))

    async def _raw_delete(self, key: str, fence: Lease | None) -> bool:
        return await self._worker.run(self._delete, (key, fence))

    async def _raw_list(self, prefix: str) -> list[str]:
        return await self._worker.run(self._list, (prefix,))

    async def _raw_acquire_lease(self, name: str, owner: str, ttl: float) -> Lease | None:
        return await self._worker.run(self._acquire, (name, owner, ttl, owner))

    async def _raw_take_over_lease(self, name: str, owner: str, ttl: float, replacing: str) -> Lease | None:
        return await self._worker.run(self._acquire, (name, owner, ttl, replacing))

    async def _raw_lease_owner(self, name: str) -> str | None:
        return await self._worker.run(self._lease_owner, (name,))

    async def _raw_renew_lease(self, lease: Lease, ttl: float) -> Lease:
        return await self._worker.run(self._renew, (lease, ttl))

    async def _raw_release_lease(self, lease: Lease) -> None:
        await self._worker.run(self._release, (lease,))

    async def _raw_close(self) -> None:
        await self._worker.close()

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
        parameters = (
            key,
            text,
            None if ttl is None else now + ttl,
            now,
            expected_version,
            None if fence is None else fence.name,
            None if fence is None else fence.token,
        )
        if not check_version:
            statement = _SET
        elif expected_version:
            statement = _REPLACE_IF_AT
        else:
            statement = _CREATE_IF_ABSENT
        rows = connection.execute(statement, parameters).fetchall()
        if not rows:
            # The fence or the version did not hold a moment ago: decide again in one transaction,
            # which raises the exact error (or writes, if the key moved back in the meantime).
            return self._checked_put(connection, key, text, ttl, fence, expected_version, check_version)
        self._after_write(connection, now)
        version: int = rows[0][0]
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
            current = 0 if row is None else int(row[0])
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
            token = 1 if row is None else int(row[1]) + 1
            connection.execute(
                "INSERT INTO gecko_leases (name, owner, token, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, token = excluded.token, "
                "expires_at = excluded.expires_at",
                (name, owner, token, now + ttl),
            )
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
        # The row stays (expired) so the next grant's token keeps growing.
        connection.execute(
            "UPDATE gecko_leases SET expires_at = 0 WHERE name = ? AND token = ?", (lease.name, lease.token)
        )

    def _after_write(self, connection: sqlite3.Connection, now: float) -> None:
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0:
            connection.execute("DELETE FROM gecko_kv WHERE expires_at <= ?", (now,))


class _immediate:
    """`BEGIN IMMEDIATE` … `COMMIT`, rolled back on any exception."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __enter__(self) -> None:
        self._connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        if exc_type is None:
            self._connection.execute("COMMIT")
        elif self._connection.in_transaction:
            self._connection.execute("ROLLBACK")


def _check_fence(connection: sqlite3.Connection, fence: Lease | None, now: float) -> None:
    if fence is None:
        return
    row = connection.execute("SELECT token, expires_at FROM gecko_leases WHERE name = ?", (fence.name,)).fetchone()
    if row is None or row[0] != fence.token or row[1] <= now:
        raise FencingError(
            f"lease {fence.name!r} token {fence.token} is no longer the current grant; "
            "stop writing and acquire the lease again"
        )


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED and their extended codes
    message = str(exc)
    return "locked" in message or "busy" in message


def _retry_busy(
    connection: sqlite3.Connection | None,
    path: Path,
    retry_for: float,
    operation: Callable[..., T],
    args: tuple[object, ...],
    job: _Job[Any] | None = None,
) -> T:
    """Run `operation(*args)`, retrying with jittered backoff while the database is busy or locked.

    Gives up early (with `StorageUnavailableError`) once `job` is abandoned by its caller.
    """
    deadline = None
    delay = 0.001
    while True:
        try:
            return operation(*args)
        except sqlite3.OperationalError as exc:
            if connection is not None and connection.in_transaction:
                connection.execute("ROLLBACK")
            if not _is_busy(exc):
                raise StorageError(f"sqlite database {str(path)!r} failed: {exc}") from exc
            now = time.monotonic()
            if deadline is None:
                deadline = now + retry_for
            if now >= deadline or (job is not None and job.abandoned):
                raise StorageUnavailableError(
                    f"sqlite database {str(path)!r} stayed locked for {retry_for:g}s; another process holds it "
                    "too long, or raise retry_for (e.g. sqlite:///db.sqlite?retry_for=120)"
                ) from exc
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite database {str(path)!r} failed: {exc}") from exc
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.05)


class _Job(ABC, Generic[T]):
    """One operation for the worker thread: what to run, what came of it, and whom to wake."""

    __slots__ = ("abandoned", "args", "error", "operation", "result")

    def __init__(self, operation: Callable[..., T], args: tuple[object, ...]) -> None:
        self.operation = operation
        self.args = args
        self.result: T | None = None
        self.error: BaseException | None = None
        self.abandoned = False  # the caller was cancelled: skip the job, or stop retrying it

    @abstractmethod
    def wake(self) -> None:
        """Wake the waiting task (called on the worker thread once `result` or `error` is set)."""

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class _AsyncioJob(_Job[T]):
    __slots__ = ("future", "loop")

    def __init__(self, operation: Callable[..., T], args: tuple[object, ...], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(operation, args)
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if not self.future.done():  # a cancelled waiter leaves a cancelled future
            self.future.set_result(None)


class _TrioJob(_Job[T]):
    __slots__ = ("task", "token")

    def __init__(
        self,
        operation: Callable[..., T],
        args: tuple[object, ...],
        token: trio.lowlevel.TrioToken,
        task: trio.lowlevel.Task,
    ) -> None:
        super().__init__(operation, args)
        self.token = token
        self.task = task

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # trio.RunFinishedError: nobody waits any more
            self.token.run_sync_soon(self._settle)

    def _settle(self) -> None:
        import outcome
        import trio

        if not self.abandoned:
            trio.lowlevel.reschedule(self.task, outcome.Value(None))

    def abort(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        import trio

        self.abandoned = True
        return trio.lowlevel.Abort.SUCCEEDED


class _Worker:
    """The one thread that owns a store's connection and runs its operations in order."""

    def __init__(self, connection: sqlite3.Connection, path: Path, retry_for: float) -> None:
        self._jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopped = False
        self._path = path
        self._thread = threading.Thread(
            target=_serve,
            args=(self._jobs, connection, path, retry_for),
            name=f"gecko-sqlite {path.name}",
            daemon=True,
        )
        self._thread.start()

    async def run(self, operation: Callable[..., T], args: tuple[object, ...]) -> T:
        """Run `operation(connection, *args)` on the worker thread; a cancelled caller abandons it.

        An abandoned operation that has not started never runs; one already running finishes
        (or rolls back) on its own, so the connection is never left inside a transaction.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return await self._run_trio(operation, args)
        job = _AsyncioJob(operation, args, loop)
        self._submit(job)
        try:
            await job.future
        except BaseException:
            job.abandoned = True
            raise
        return job.outcome()

    async def _run_trio(self, operation: Callable[..., T], args: tuple[object, ...]) -> T:
        import trio

        job = _TrioJob(operation, args, trio.lowlevel.current_trio_token(), trio.lowlevel.current_task())
        self._submit(job)
        await trio.lowlevel.wait_task_rescheduled(job.abort)
        return job.outcome()

    def _submit(self, job: _Job[Any]) -> None:
        with self._lock:
            if self._stopped:
                raise StorageClosedError(f"SQLiteStorage({str(self._path)!r}) was used after close()")
            self._jobs.put(job)

    def stop(self) -> None:
        """Let the thread finish the queued operations, close the connection and exit."""
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self._jobs.put(None)

    async def close(self) -> None:
        """`stop`, then wait (off the event loop) until the connection is closed."""
        self.stop()
        await anyio.to_thread.run_sync(self._thread.join)


def _serve(
    jobs: queue.SimpleQueue[_Job[Any] | None], connection: sqlite3.Connection, path: Path, retry_for: float
) -> None:
    """The worker thread's loop; holds no reference to the store, so a dropped store can be collected."""
    try:
        while (job := jobs.get()) is not None:
            if not job.abandoned:
                try:
                    job.result = _retry_busy(connection, path, retry_for, job.operation, (connection, *job.args), job)
                except BaseException as exc:  # handed to the waiting task, which raises it
                    job.error = exc
            job.wake()
            del job
    finally:
        connection.close()


def _connect(path: Path, busy_timeout: float, retry_for: float, synchronous: str) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the folder of sqlite database {str(path)!r}: {exc}") from exc
    try:
        connection = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open sqlite database {str(path)!r}: {exc}") from exc

    def prepare() -> None:
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"sqlite database {str(path)!r} cannot use WAL journaling (got {mode!r})")
        connection.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        with _immediate(connection):
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.execute("DELETE FROM gecko_kv WHERE expires_at <= ?", (time.time(),))

    try:
        _retry_busy(connection, path, retry_for, prepare, ())
    except BaseException:
        connection.close()
        raise
    return connection


def _database_path(url: StorageURL) -> Path:
    if url.netloc:
        raise InvalidStorageURLError(
            f"sqlite URL {url.raw!r} has a host part {url.netloc!r}, but SQLite opens a local file; use {_VALID_FORMS}"
        )
    path = url.path[1:] if url.path.startswith("/") else url.path
    if not path or path.endswith("/"):
        raise InvalidStorageURLError(f"sqlite URL {url.raw!r} names no database file; use {_VALID_FORMS}")
    if path == ":memory:":
        raise InvalidStorageURLError(
            f"sqlite URL {url.raw!r} asks for an in-memory database; use memory:// for that, or {_VALID_FORMS}"
        )
    unknown = sorted(set(url.query) - set(_QUERY_OPTIONS))
    if unknown:
        raise InvalidStorageURLError(
            f"sqlite URL {url.raw!r} has unknown options {unknown}; the options are {', '.join(_QUERY_OPTIONS)} "
            "(busy_timeout and retry_for in seconds, synchronous=normal|full), "
            "e.g. sqlite:///./gecko.db?busy_timeout=10"
        )
    return Path(path)


def _seconds_option(url: StorageURL, name: str, default: float) -> float:
    raw = url.query.get(name)
    if raw is None:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise InvalidStorageURLError(
            f"sqlite URL option {name}={raw!r} must be a positive number of seconds, e.g. {name}=10"
        )
    return seconds


def _synchronous_option(url: StorageURL) -> str:
    raw = url.query.get("synchronous", "normal")
    if raw.lower() not in _SYNCHRONOUS:
        raise InvalidStorageURLError(
            f"sqlite URL option synchronous={raw!r} must be normal (the default: commits survive a process "
            "crash) or full (commits also survive power loss; slower), e.g. synchronous=full"
        )
    return raw.lower()


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
