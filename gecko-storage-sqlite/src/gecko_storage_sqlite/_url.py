"""Reading `sqlite:///...` URLs: the database path and the query options."""

from __future__ import annotations

from pathlib import Path

from gecko.errors import InvalidStorageURLError
from gecko.plugins.storage import StorageURL, decode_path

_VALID_FORMS = (
    "sqlite:///./relative/path.db (three slashes, then a path relative to the working directory) or "
    "sqlite:////absolute/path.db (four slashes)"
)
_QUERY_OPTIONS = ("busy_timeout", "retry_for", "synchronous", "statements")
SYNCHRONOUS = ("normal", "full")
STATEMENTS = ("worker", "loop")


def _database_path(url: StorageURL) -> Path:
    if url.netloc:
        raise InvalidStorageURLError(
            f"sqlite URL {url.raw!r} has a host part {url.netloc!r}, but SQLite opens a local file; use {_VALID_FORMS}"
        )
    path = decode_path(url, url.path[1:] if url.path.startswith("/") else url.path)
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
            "(busy_timeout and retry_for in seconds, synchronous=normal|full, statements=worker|loop), "
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
    if raw.lower() not in SYNCHRONOUS:
        raise InvalidStorageURLError(
            f"sqlite URL option synchronous={raw!r} must be normal (the default: commits survive a process "
            "crash) or full (commits also survive power loss; slower), e.g. synchronous=full"
        )
    return raw.lower()


def _statements_option(url: StorageURL, synchronous: str) -> str:
    raw = url.query.get("statements", "worker")
    if raw.lower() not in STATEMENTS:
        raise InvalidStorageURLError(
            f"sqlite URL option statements={raw!r} must be worker (the default: every statement runs on the "
            "store's thread) or loop (at synchronous=normal, statements that can finish at once run on the "
            "event loop; faster, but they block it while they run)"
        )
    if raw.lower() == "loop" and synchronous != "normal":
        raise InvalidStorageURLError(
            f"sqlite URL {url.raw!r}: statements=loop needs synchronous=normal "
            "(at full every commit waits for the disk)"
        )
    return raw.lower()
