"""`memory://`: an in-process store, the builtin default for tests and ephemeral sessions.

One `memory://` store serves both contracts, key-value and vector: the seed opens a RAG store and
a workflow store with the same `create_storage("memory://")` call, and one in-process object
answering both needs no choice between the `gecko.storage` and `gecko.vector` groups.
"""

from __future__ import annotations

import time

from gecko.errors import FencingError, InvalidStorageURLError, VersionConflictError
from gecko.plugins.storage import Lease, Storage, StorageCapabilities, StorageURL
from gecko.plugins.vector.memory import MemoryVectorStore

__all__ = ("MemoryStorage",)


class MemoryStorage(Storage, MemoryVectorStore):
    """Keys and vector collections live in this process only; every operation is atomic on the event loop."""

    scheme = "memory"
    capabilities = StorageCapabilities(ttl=True, leases=True)

    def __init__(self) -> None:
        super().__init__()
        self._items: dict[str, tuple[str, int, float | None]] = {}
        self._leases: dict[str, Lease] = {}
        self._tokens: dict[str, int] = {}

    @classmethod
    async def from_url(cls, url: StorageURL) -> MemoryStorage:
        if url.netloc or url.path not in ("", "/") or url.query:
            raise InvalidStorageURLError(
                f"{url.scheme}:// takes no location or options, got {url.redacted!r}; each such store is new and empty"
            )
        return cls()

    def _live(self, key: str) -> tuple[str, int, float | None] | None:
        item = self._items.get(key)
        if item is not None and item[2] is not None and item[2] <= time.monotonic():
            del self._items[key]
            return None
        return item

    def _check_fence(self, fence: Lease | None) -> None:
        if fence is None:
            return
        current = self._leases.get(fence.name)
        if current is None or current.token != fence.token or current.expires_at <= time.time():
            raise FencingError(f"lease {fence.name!r} token {fence.token} is no longer the current grant")

    async def _raw_get(self, key: str) -> tuple[str, int] | None:
        item = self._live(key)
        return None if item is None else (item[0], item[1])

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
        self._check_fence(fence)
        item = self._live(key)
        version = 0 if item is None else item[1]
        if check_version and version != (expected_version or 0):
            raise VersionConflictError(f"{key!r} is at version {version}, expected {expected_version}")
        self._items[key] = (text, version + 1, None if ttl is None else time.monotonic() + ttl)
        return version + 1

    async def _raw_delete(self, key: str, fence: Lease | None) -> bool:
        self._check_fence(fence)
        return self._live(key) is not None and self._items.pop(key, None) is not None

    async def _raw_list(self, prefix: str) -> list[str]:
        return [key for key in list(self._items) if key.startswith(prefix) and self._live(key) is not None]

    async def _raw_acquire_lease(self, name: str, owner: str, ttl: float) -> Lease | None:
        return await self._raw_take_over_lease(name, owner, ttl, owner)

    async def _raw_take_over_lease(self, name: str, owner: str, ttl: float, replacing: str) -> Lease | None:
        now = time.time()
        current = self._leases.get(name)
        if current is not None and current.expires_at > now and current.owner not in (owner, replacing):
            return None
        token = self._tokens.get(name, 0) + 1
        self._tokens[name] = token
        lease = Lease(name=name, owner=owner, token=token, expires_at=now + ttl)
        self._leases[name] = lease
        return lease

    async def _raw_lease_owner(self, name: str) -> str | None:
        current = self._leases.get(name)
        return current.owner if current is not None and current.expires_at > time.time() else None

    async def _raw_renew_lease(self, lease: Lease, ttl: float) -> Lease:
        self._check_fence(lease)
        renewed = Lease(name=lease.name, owner=lease.owner, token=lease.token, expires_at=time.time() + ttl)
        self._leases[lease.name] = renewed
        return renewed

    async def _raw_release_lease(self, lease: Lease) -> None:
        current = self._leases.get(lease.name)
        if current is not None and current.token == lease.token:
            del self._leases[lease.name]

    async def _raw_close(self) -> None:
        self._items.clear()
        self._leases.clear()
        self._collections.clear()
