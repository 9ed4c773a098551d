"""The in-process vector store behind `memory://`: exact cosine search over records kept in a dict."""

from __future__ import annotations

import array
import heapq
import math
import operator
from abc import ABC
from collections.abc import Sequence
from dataclasses import dataclass

from gecko.plugins.vector import VectorHit, VectorRecord, VectorStore
from gecko.plugins.vector.filters import Filter, matches

__all__ = ("MemoryVectorStore",)


@dataclass
class _Stored:
    record: VectorRecord
    unit: array.array[float]


def _unit(vector: Sequence[float]) -> array.array[float]:
    norm = math.sqrt(sum(map(operator.mul, vector, vector)))
    return array.array("d", (component / norm for component in vector))


class MemoryVectorStore(VectorStore, ABC):
    """Collections live in this process only; every operation is atomic on the event loop.

    `memory://` opens `MemoryStorage`, which is this store and the key-value store in one.
    """

    def __init__(self) -> None:
        super().__init__()
        self._collections: dict[str, tuple[int, dict[str, _Stored]]] = {}

    def _records(self, collection: str) -> dict[str, _Stored]:
        return self._collections[collection][1]

    def _selected(self, collection: str, ids: list[str] | None, where: Filter | None) -> list[_Stored]:
        records = self._records(collection)
        candidates = records.values() if ids is None else (records[i] for i in ids if i in records)
        return [stored for stored in candidates if matches(where, stored.record.metadata)]

    async def _raw_dimension(self, collection: str) -> int | None:
        found = self._collections.get(collection)
        return None if found is None else found[0]

    async def _raw_upsert(self, collection: str, dimension: int, records: list[VectorRecord]) -> None:
        stored = self._collections.setdefault(collection, (dimension, {}))[1]
        for record in records:
            stored[record.id] = _Stored(record, _unit(record.vector))

    async def _raw_query(
        self, collection: str, vector: list[float], top_k: int, where: Filter | None
    ) -> list[VectorHit]:
        query = _unit(vector)
        scored = (
            (sum(map(operator.mul, query, stored.unit)), stored.record)
            for stored in self._selected(collection, None, where)
        )
        best = heapq.nlargest(top_k, scored, key=operator.itemgetter(0))
        return [VectorHit(record.id, score, record.text, record.metadata) for score, record in best]

    async def _raw_fetch(self, collection: str, ids: list[str] | None, where: Filter | None) -> list[VectorRecord]:
        return [
            VectorRecord(s.record.id, list(s.record.vector), s.record.text, s.record.metadata)
            for s in self._selected(collection, ids, where)
        ]

    async def _raw_remove(self, collection: str, ids: list[str] | None, where: Filter | None) -> None:
        records = self._records(collection)
        for stored in self._selected(collection, ids, where):
            del records[stored.record.id]

    async def _raw_count(self, collection: str, where: Filter | None) -> int:
        if where is None:
            return len(self._records(collection))
        return len(self._selected(collection, None, where))

    async def _raw_list_collections(self) -> list[str]:
        return list(self._collections)

    async def _raw_drop_collection(self, collection: str) -> bool:
        return self._collections.pop(collection, None) is not None
