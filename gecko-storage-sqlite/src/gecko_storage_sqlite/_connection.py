"""The SQLite connection: opening it (WAL, schema), transactions, and retrying a busy database."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gecko.errors import StorageError, StorageUnavailableError

T = TypeVar("T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS gecko_kv ("
    " key TEXT PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL, expires_at REAL"
    ") WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS gecko_leases ("
    " name TEXT PRIMARY KEY, owner TEXT NOT NULL, token INTEGER NOT NULL, expires_at REAL NOT NULL"
    ") WITHOUT ROWID",
    # Fencing tokens come from one counter for the whole database, so a lease row can be deleted
    # (on release, or once expired) without a later grant of that name ever reusing a token.
    "CREATE TABLE IF NOT EXISTS gecko_lease_tokens (id INTEGER PRIMARY KEY CHECK (id = 1), token INTEGER NOT NULL)",
    # A database from before the counter starts it above every token already granted.
    "INSERT OR IGNORE INTO gecko_lease_tokens (id, token) SELECT 1, COALESCE(MAX(token), 0) FROM gecko_leases",
)
# A statement's temporary results (RETURNING rows, statement journals) stay in memory: on disk,
# a connection's first such statement created a temporary file (~150-350 µs).
_TEMP_IN_MEMORY = "PRAGMA temp_store = MEMORY"
# Rows that nobody will read again: expired values and expired lease grants.
_PURGE = ("DELETE FROM gecko_kv WHERE expires_at <= ?", "DELETE FROM gecko_leases WHERE expires_at <= ?")


def purge_expired(connection: sqlite3.Connection, now: float) -> None:
    """Delete expired values and expired lease grants."""
    for statement in _PURGE:
        connection.execute(statement, (now,))


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


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED and their extended codes
    message = str(exc)
    return "locked" in message or "busy" in message


class Busy(Exception):
    """The database was busy or locked; the attempt was rolled back and changed nothing."""


def attempt(
    connection: sqlite3.Connection | None, path: Path, operation: Callable[..., T], args: tuple[object, ...]
) -> T:
    """Run `operation(*args)` once.

    Raises:
        Busy: the database is busy or locked (any open transaction is rolled back).
        StorageError: any other database failure.
    """
    try:
        return operation(*args)
    except sqlite3.OperationalError as exc:
        if connection is not None and connection.in_transaction:
            connection.execute("ROLLBACK")
        if not _is_busy(exc):
            raise StorageError(f"sqlite database {str(path)!r} failed: {exc}") from exc
        raise Busy(str(exc)) from exc
    except sqlite3.Error as exc:
        raise StorageError(f"sqlite database {str(path)!r} failed: {exc}") from exc


def _retry_busy(
    connection: sqlite3.Connection | None,
    path: Path,
    retry_for: float,
    operation: Callable[..., T],
    args: tuple[object, ...],
    abandoned: Callable[[], bool] | None = None,
) -> T:
    """Run `operation(*args)`, retrying with jittered backoff while the database is busy or locked.

    Gives up early (with `StorageUnavailableError`) once `abandoned()` says the caller gave up.
    """
    deadline = None
    delay = 0.001
    while True:
        try:
            return attempt(connection, path, operation, args)
        except Busy as exc:
            now = time.monotonic()
            if deadline is None:
                deadline = now + retry_for
            if now >= deadline or (abandoned is not None and abandoned()):
                raise StorageUnavailableError(
                    f"sqlite database {str(path)!r} stayed locked for {retry_for:g}s; another process holds it "
                    "too long, or raise retry_for (e.g. sqlite:///db.sqlite?retry_for=120)"
                ) from exc.__cause__
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.05)


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
        connection.execute(_TEMP_IN_MEMORY)
        with _immediate(connection):
            for statement in _SCHEMA:
                connection.execute(statement)
            purge_expired(connection, time.time())

    try:
        _retry_busy(connection, path, retry_for, prepare, ())
    except BaseException:
        connection.close()
        raise
    return connection


def _connect_for_loop(path: Path) -> sqlite3.Connection:
    """A second connection, for statements run on the event loop itself (see `SQLiteStorage`).

    It never waits: no busy timeout (a locked database fails at once, and the caller hands the
    statement to the worker thread instead), and no automatic WAL checkpoint (a checkpoint syncs
    the files to disk, which only the worker thread does).
    """
    try:
        connection = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open sqlite database {str(path)!r}: {exc}") from exc
    try:
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA wal_autocheckpoint = 0")
        connection.execute(_TEMP_IN_MEMORY)
        # Read the schema and map the WAL index now, as the worker's connection did when it
        # opened, rather than in the first operation on the event loop.
        connection.execute("SELECT 1 FROM gecko_kv LIMIT 0").fetchall()
    except sqlite3.Error as exc:
        connection.close()
        raise StorageError(f"cannot open sqlite database {str(path)!r}: {exc}") from exc
    return connection
