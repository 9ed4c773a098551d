"""`jsonfile://`: a store kept in one JSON file, rewritten atomically after every write.

An example of a third-party storage plugin: it depends only on `gecko-ai-core` and is found through
its `gecko.storage` entry point. One process at a time; no TTL, no leases.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import anyio
import anyio.to_thread

from gecko.errors import InvalidStorageURLError, StorageError, VersionConflictError
from gecko.plugins.storage import Lease, Storage, StorageCapabilities, StorageURL, decode_path

__all__ = ("JSONFileStorage",)


class JSONFileStorage(Storage):
    """Keys, JSON texts and versions in one file; reads are served from memory."""

    scheme = "jsonfile"
    capabilities = StorageCapabilities(persistent=True)

    def __init__(self, path: Path, items: dict[str, tuple[str, int]]) -> None:
        self._path = path
        self._items = items
        self._lock = anyio.Lock()

    @classmethod
    async def from_url(cls, url: StorageURL) -> JSONFileStorage:
        path = decode_path(url, url.path[1:] if url.path.startswith("/") else url.path)
        if url.netloc or not path or path.endswith("/"):
            raise InvalidStorageURLError(
                f"jsonfile URL {url.raw!r} names no file; use jsonfile:///./relative.json or jsonfile:////abs/file.json"
            )
        return cls(Path(path), await anyio.to_thread.run_sync(_load, Path(path)))

    async def _raw_get(self, key: str) -> tuple[str, int] | None:
        return self._items.get(key)

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
        if fence is not None:
            raise StorageError("jsonfile:// does not support leases, so it cannot check a fence")
        async with self._lock:
            current = self._items.get(key, ("", 0))[1]
            if check_version and current != (expected_version or 0):
                raise VersionConflictError(f"{key!r} is at version {current}, expected {expected_version}")
            self._items[key] = (text, current + 1)
            await self._save()
            return current + 1

    async def _raw_delete(self, key: str, fence: Lease | None) -> bool:
        if fence is not None:
            raise StorageError("jsonfile:// does not support leases, so it cannot check a fence")
        async with self._lock:
            existed = self._items.pop(key, None) is not None
            if existed:
                await self._save()
            return existed

    async def _raw_list(self, prefix: str) -> list[str]:
        return [key for key in self._items if key.startswith(prefix)]

    async def _raw_close(self) -> None:
        self._items = {}

    async def _save(self) -> None:
        snapshot = {key: [text, version] for key, (text, version) in self._items.items()}
        await anyio.to_thread.run_sync(_write_atomically, self._path, snapshot)


def _load(path: Path) -> dict[str, tuple[str, int]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read jsonfile store {str(path)!r}: {exc}") from exc
    return {key: (text, int(version)) for key, (text, version) in raw.items()}


def _write_atomically(path: Path, snapshot: Mapping[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(snapshot, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)
