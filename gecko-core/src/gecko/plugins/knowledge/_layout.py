"""Where a knowledge base keeps its parts in a vector store, shared by ingestion and retrieval.

A knowledge base named `kb` is three collections of one store:
- `kb`: the chunks (id, embedding, text, metadata with `source`);
- `kb__lexical`: one record per chunk, same id and metadata, whose text is the chunk's lexical
  tokens joined by spaces (the persisted BM25 index; its vectors are a constant `[1.0]`);
- `kb__sources`: one record per ingested source (its digest and chunk count, written last, so a
  source is complete exactly when its record matches), and the `~generation` record that every
  change to the base renews, so retrievers know to reload their BM25 index.
"""

from __future__ import annotations

import hashlib
import uuid

from gecko.errors import ConfigurationError
from gecko.plugins.vector import Collection, VectorRecord, VectorStore, validate_collection_name

__all__ = ("KnowledgeLayout", "DEFAULT_COLLECTION", "CONSTANT_VECTOR")

DEFAULT_COLLECTION = "knowledge"
"""The collection a knowledge base uses unless told otherwise."""

CONSTANT_VECTOR = (1.0,)
"""The vector of the bookkeeping records (lexical tokens, source manifests): they are never searched by vector."""

_GENERATION_ID = "~generation"
_SUFFIX_LENGTH = len("__sources")


class KnowledgeLayout:
    """The three collections of the knowledge base `name` in `store`."""

    def __init__(self, store: VectorStore, name: str = DEFAULT_COLLECTION) -> None:
        validate_collection_name(name)
        if len(name) > 63 - _SUFFIX_LENGTH:
            raise ConfigurationError(
                f"knowledge collection name {name!r} is too long: at most {63 - _SUFFIX_LENGTH} characters"
            )
        self.store = store
        self.name = name
        self.chunks: Collection = store.collection(name)
        self.lexical: Collection = store.collection(f"{name}__lexical", dimension=1)
        self.sources: Collection = store.collection(f"{name}__sources", dimension=1)

    @staticmethod
    def source_id(source: str) -> str:
        """The id of `source`'s manifest record."""
        return "source:" + hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()

    async def generation(self) -> str | None:
        """The token of the base's latest change, or None before any."""
        found = await self.sources.get([_GENERATION_ID])
        if not found:
            return None
        token = found[0].metadata.get("token")
        return token if isinstance(token, str) else None

    async def renew_generation(self) -> None:
        """Mark the base changed: retrievers reload their lexical index on their next search."""
        await self.sources.upsert([VectorRecord(_GENERATION_ID, CONSTANT_VECTOR, "", {"token": uuid.uuid4().hex})])
