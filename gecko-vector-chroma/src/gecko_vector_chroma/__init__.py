"""`chroma://` and `chroma+http://`: Gecko vector stores over ChromaDB.

- `chroma://./dir` (or `chroma:///abs/dir`) opens a persistent local Chroma in that directory.
- `chroma+http://host:port` talks to a Chroma server (`chroma run`); `?tenant=...&database=...`
  pick a tenant and database that exist on it, `?ssl=true` uses HTTPS.

Every collection is created with cosine distance and no embedding function, so Chroma never
loads (or downloads) its default embedding model: vectors always come from the caller. Gecko's
collections are Chroma collections named `gecko-<name>`. Chroma's client blocks, so every call
runs in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, cast

import anyio.to_thread
import chromadb
import numpy as np
from chromadb.api.client import Client
from chromadb.api.models.Collection import Collection as ChromaCollection
from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT, Settings
from chromadb.errors import NotFoundError

from gecko.errors import InvalidStorageURLError, StorageError, StorageUnavailableError
from gecko.plugins.storage import StorageURL
from gecko.plugins.vector import Metadata, VectorHit, VectorRecord, VectorStore, VectorStoreCapabilities, local_path
from gecko.plugins.vector.filters import AllOf, Condition, Filter, Scalar
from gecko_vector_chroma._version import __version__

__all__ = ("ChromaVectorStore", "ChromaHttpVectorStore", "chroma_where", "__version__")

PREFIX = "gecko-"
DIMENSION_KEY = "gecko_dimension"
_CONFIGURATION: Any = {"hnsw": {"space": "cosine"}}


def _operand(value: Scalar | tuple[Scalar, ...]) -> Any:
    if not isinstance(value, tuple):
        return value
    # Chroma wants one type in a list; ints and floats compare as numbers, so floats carry both.
    if any(isinstance(item, float) for item in value):
        return [float(item) for item in value]
    return list(value)


def _embeddings(records: list[VectorRecord]) -> np.ndarray[Any, np.dtype[np.float32]]:
    # The core hands vectors over as array("d"): their bytes become one matrix, no Python floats.
    flat = np.frombuffer(b"".join(record.vector.tobytes() for record in records), dtype=np.float64)  # type: ignore[attr-defined]
    return flat.reshape(len(records), -1).astype(np.float32)


def _metadata(metadata: Mapping[str, Any] | None) -> Metadata:
    # Chroma gives back what Gecko stored, whose values the core checked on the way in.
    return cast("Metadata", dict(metadata or {}))


def chroma_where(where: Filter) -> dict[str, Any]:
    """Translate a parsed Gecko filter into Chroma's `where` document."""
    if isinstance(where, Condition):
        return {where.field: {f"${where.op}": _operand(where.value)}}
    children = [chroma_where(child) for child in where.children]
    if len(children) == 1:
        return children[0]
    return {"$and" if isinstance(where, AllOf) else "$or": children}


class ChromaVectorStore(VectorStore):
    """A Chroma database reached through one client: local and persistent, or remote over HTTP."""

    scheme = "chroma"
    vector_capabilities = VectorStoreCapabilities(persistent=True)

    def __init__(self, client: Client) -> None:
        super().__init__()
        self._client = client
        self._handles: dict[str, ChromaCollection] = {}
        self._max_batch = client.get_max_batch_size()

    @classmethod
    async def from_url(cls, url: StorageURL) -> ChromaVectorStore:
        path = local_path(url, server_scheme=ChromaHttpVectorStore.scheme)
        if url.query:
            raise InvalidStorageURLError(f"chroma:// takes no options, got {sorted(url.query)} in {url.raw!r}")
        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        try:
            client = await anyio.to_thread.run_sync(partial(chromadb.PersistentClient, path=path, settings=settings))
        except Exception as exc:  # chromadb raises its own types for a path it cannot use (a file, no permission)
            raise StorageError(f"cannot open chroma store {path!r}: {type(exc).__name__}: {exc}") from exc
        return cls(cast(Client, client))  # the factories are typed with the interface, which lacks close()

    async def _handle(self, collection: str) -> ChromaCollection | None:
        handle = self._handles.get(collection)
        if handle is None:
            try:
                handle = await self._blocking(self._client.get_collection, PREFIX + collection, embedding_function=None)
            except NotFoundError:
                return None
            self._handles[collection] = handle
        return handle

    async def _existing(self, collection: str) -> ChromaCollection:
        handle = await self._handle(collection)
        assert handle is not None, "the core calls this only for collections that exist"
        return handle

    async def _raw_dimension(self, collection: str) -> int | None:
        handle = await self._handle(collection)
        if handle is None:
            return None
        return int((handle.metadata or {})[DIMENSION_KEY])

    async def _raw_upsert(self, collection: str, dimension: int, records: list[VectorRecord]) -> None:
        handle = await self._handle(collection)
        if handle is None:
            handle = await self._blocking(
                self._client.get_or_create_collection,
                PREFIX + collection,
                configuration=_CONFIGURATION,
                metadata={DIMENSION_KEY: dimension},
                embedding_function=None,
            )
            self._handles[collection] = handle
        for start in range(0, len(records), self._max_batch):
            batch = records[start : start + self._max_batch]
            ids = [record.id for record in batch]
            # Chroma's upsert merges metadata into what is stored; a key set to None is removed,
            # which makes the upsert replace the metadata as the contract says.
            previous = await self._blocking(handle.get, ids=ids, include=["metadatas"])
            stale = {
                record_id: dict.fromkeys(metadata or ())
                for record_id, metadata in zip(previous["ids"], previous["metadatas"] or [], strict=True)
            }
            await self._blocking(
                handle.upsert,
                ids=ids,
                embeddings=_embeddings(batch),
                documents=[record.text for record in batch],
                metadatas=[{**stale.get(record.id, {}), **record.metadata} or None for record in batch],
            )

    async def _raw_query(
        self, collection: str, vector: list[float], top_k: int, where: Filter | None
    ) -> list[VectorHit]:
        handle = await self._existing(collection)
        result = await self._blocking(
            handle.query,
            query_embeddings=[vector],
            n_results=top_k,
            where=None if where is None else chroma_where(where),
            include=["documents", "metadatas", "distances"],
        )
        ids, texts = result["ids"][0], (result["documents"] or [[]])[0]
        metadatas, distances = (result["metadatas"] or [[]])[0], (result["distances"] or [[]])[0]
        return [
            VectorHit(record_id, 1.0 - float(distance), text or "", _metadata(metadata))
            for record_id, text, metadata, distance in zip(ids, texts, metadatas, distances, strict=True)
        ]

    async def _raw_fetch(self, collection: str, ids: list[str] | None, where: Filter | None) -> list[VectorRecord]:
        handle = await self._existing(collection)
        result = await self._blocking(
            handle.get,
            ids=ids,
            where=None if where is None else chroma_where(where),
            include=["embeddings", "documents", "metadatas"],
        )
        embeddings = result["embeddings"]
        texts, metadatas = result["documents"] or [], result["metadatas"] or []
        return [
            VectorRecord(record_id, [float(x) for x in embedding], text or "", _metadata(metadata))
            for record_id, embedding, text, metadata in zip(
                result["ids"], embeddings if embeddings is not None else [], texts, metadatas, strict=True
            )
        ]

    async def _raw_remove(self, collection: str, ids: list[str] | None, where: Filter | None) -> None:
        handle = await self._existing(collection)
        await self._blocking(handle.delete, ids=ids, where=None if where is None else chroma_where(where))

    async def _raw_count(self, collection: str, where: Filter | None) -> int:
        handle = await self._existing(collection)
        if where is None:
            return await self._blocking(handle.count)
        result = await self._blocking(handle.get, where=chroma_where(where), include=[])
        return len(result["ids"])

    async def _raw_list_collections(self) -> list[str]:
        collections = await self._blocking(self._client.list_collections)
        return [c.name.removeprefix(PREFIX) for c in collections if c.name.startswith(PREFIX)]

    async def _raw_drop_collection(self, collection: str) -> bool:
        self._handles.pop(collection, None)
        try:
            await self._blocking(self._client.delete_collection, PREFIX + collection)
        except NotFoundError:
            return False
        return True

    async def _raw_close(self) -> None:
        self._handles.clear()
        await self._blocking(self._client.close)


class ChromaHttpVectorStore(ChromaVectorStore):
    """`chroma+http://host:port`: a Chroma server over HTTP."""

    scheme = "chroma+http"

    @classmethod
    async def from_url(cls, url: StorageURL) -> ChromaHttpVectorStore:
        options = dict(url.query)
        tenant = options.pop("tenant", DEFAULT_TENANT)
        database = options.pop("database", DEFAULT_DATABASE)
        ssl = options.pop("ssl", "false").lower()
        try:
            host, port = url.netloc.rsplit(":", 1) if ":" in url.netloc else (url.netloc, "8000")
            port_number = int(port)
        except ValueError:
            host, port_number = "", 0
        valid_port = 0 < port_number < 65536
        if not host or not valid_port or url.path not in ("", "/") or options or ssl not in ("true", "false"):
            raise InvalidStorageURLError(
                f"malformed Chroma server URL {url.raw!r}: use chroma+http://host:port, optionally with "
                "?tenant=...&database=...&ssl=true"
            )
        settings = Settings(anonymized_telemetry=False)
        try:
            client = await anyio.to_thread.run_sync(
                partial(
                    chromadb.HttpClient,
                    host=host,
                    port=port_number,
                    ssl=ssl == "true",
                    tenant=tenant,
                    database=database,
                    settings=settings,
                )
            )
        except (ValueError, ConnectionError, NotFoundError) as exc:
            raise StorageUnavailableError(f"cannot reach the Chroma server at {url.raw!r}: {exc}") from exc
        return cls(cast(Client, client))  # the factories are typed with the interface, which lacks close()
