"""`jsonvectors://`: a vector store kept in one JSON file, rewritten atomically after every write.

An example of a third-party vector store plugin, found through its `gecko.vector` entry point. It
reuses Gecko's in-process store for search (exact cosine, filters evaluated by the store itself
before top-k) and adds persistence; one process at a time, sized for small collections.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio.to_thread

from acme_gecko_jsonfile import _write_atomically
from gecko.errors import StorageError
from gecko.plugins.storage import StorageURL
from gecko.plugins.vector import VectorRecord, VectorStoreCapabilities, local_path
from gecko.plugins.vector.filters import Filter
from gecko.plugins.vector.memory import MemoryVectorStore

__all__ = ("JSONFileVectorStore",)


class JSONFileVectorStore(MemoryVectorStore):
    """Collections in memory, saved to one JSON file after each write and loaded when opened."""

    scheme = "jsonvectors"
    vector_capabilities = VectorStoreCapabilities(persistent=True)

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = path

    @classmethod
    async def from_url(cls, url: StorageURL) -> JSONFileVectorStore:
        store = cls(Path(local_path(url)))
        for name, saved in (await anyio.to_thread.run_sync(_load, store._path)).items():
            records = [VectorRecord(r["id"], r["vector"], r["text"], r["metadata"]) for r in saved["records"]]
            await MemoryVectorStore._raw_upsert(store, name, saved["dimension"], records)
        return store

    async def _raw_upsert(self, collection: str, dimension: int, records: list[VectorRecord]) -> None:
        await super()._raw_upsert(collection, dimension, records)
        await self._save()

    async def _raw_remove(self, collection: str, ids: list[str] | None, where: Filter | None) -> None:
        await super()._raw_remove(collection, ids, where)
        await self._save()

    async def _raw_drop_collection(self, collection: str) -> bool:
        existed = await super()._raw_drop_collection(collection)
        await self._save()
        return existed

    async def _raw_close(self) -> None:
        for name in await self._raw_list_collections():
            await super()._raw_drop_collection(name)

    async def _save(self) -> None:
        snapshot: dict[str, object] = {}
        for name in await self._raw_list_collections():
            records = await self._raw_fetch(name, None, None)
            snapshot[name] = {
                "dimension": await self._raw_dimension(name),
                "records": [
                    {"id": r.id, "vector": list(r.vector), "text": r.text, "metadata": dict(r.metadata)}
                    for r in records
                ],
            }
        await anyio.to_thread.run_sync(_write_atomically, self._path, snapshot)


def _load(path: Path) -> dict[str, dict[str, Any]]:
    try:
        loaded: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read jsonvectors store {str(path)!r}: {exc}") from exc
    return loaded
