"""`sqlite://`: Gecko's embedded key-value store, safe across threads, tasks and processes.

    create_storage("sqlite:///./relative.db")      # relative to the working directory
    create_storage("sqlite:////abs/path/gecko.db")  # absolute
    create_storage("sqlite:///./gecko.db?busy_timeout=10&synchronous=full")
    create_storage("sqlite:///./gecko.db?statements=loop")  # faster; blocks the loop per statement

One connection per store is owned by one long-lived worker thread that runs the store's
operations in order, a single hop to that thread and back, so the event loop never waits on disk.
With statements=loop (synchronous=normal only: no sync to disk on commit) a second connection
runs on the event loop itself the operations that can finish at once (see `SQLiteStorage._run`). The database runs in
WAL mode with a busy timeout. Compare-and-set is one atomic
statement (`UPDATE ... WHERE version = ? RETURNING version`); writes that must check a lease
first run in `BEGIN IMMEDIATE` transactions. A busy database is retried with backoff inside the
backend, so "database is locked" never reaches the caller (after `retry_for` seconds of contention
it becomes `StorageUnavailableError`).
"""

from __future__ import annotations

from gecko_storage_sqlite._store import SQLiteStorage
from gecko_storage_sqlite._version import __version__

__all__ = ("SQLiteStorage", "__version__")
