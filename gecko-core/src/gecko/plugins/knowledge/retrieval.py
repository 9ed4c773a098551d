"""`Retriever`: dense, lexical (BM25) or hybrid search over a knowledge base.

- `dense`: the query's embedding against the chunks' vectors (cosine, the store's own search).
- `lexical`: BM25 over the lexical tokens the pipeline stored beside the vectors; the index is
  built in memory on first use and rebuilt when the base's generation changes (any ingestion or
  deletion, from any process).
- `hybrid` (default): both lists fused by weighted reciprocal rank fusion,
  `score = Σ weight / (rrf_k + rank)`, which needs no score calibration between cosine and BM25.
  The dense list weighs 1; the lexical list `lexical_weight`, by default chosen by the query's
  script: `CJK_LEXICAL_WEIGHT` for a mostly Chinese, Japanese or Korean query, whose character
  bigrams match passages far more reliably than a small embedding model does, and 1 otherwise.

Filters use the vector filter language and apply to every mode before top-k is taken.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import anyio

from gecko._tasks import run_all
from gecko.errors import ConfigurationError
from gecko.plugins.knowledge._layout import DEFAULT_COLLECTION, KnowledgeLayout
from gecko.plugins.knowledge.lexical import BM25Index, LexicalTokenizer, lexical_tokens, terms, tokenizer_name
from gecko.plugins.knowledge.splitters import cjk_ratio
from gecko.plugins.models import Embedder, checked_vectors
from gecko.plugins.vector import MAX_TOP_K, VectorStore
from gecko.plugins.vector.filters import MetadataValue, parse_filter

__all__ = ("Retriever", "RetrievedChunk", "SearchMode", "SEARCH_MODES", "CJK_LEXICAL_WEIGHT", "lexical_weight_for")

SearchMode = Literal["hybrid", "dense", "lexical"]
SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "lexical")

CJK_LEXICAL_WEIGHT = 6.0
"""The lexical list's fusion weight for a mostly CJK query (the dense list weighs 1)."""


def lexical_weight_for(query: str) -> float:
    """The default fusion weight of the lexical list for `query`: by its script."""
    return CJK_LEXICAL_WEIGHT if cjk_ratio(query) > 0.3 else 1.0


@dataclass(frozen=True)
class RetrievedChunk:
    """A retrieved chunk: cite it by `source` and `id`.

    `score` is the mode's: cosine similarity (dense), BM25 (lexical) or the fused reciprocal-rank
    score (hybrid); higher is better within one result list.
    """

    id: str
    text: str
    source: str
    score: float
    metadata: Mapping[str, MetadataValue]


class Retriever:
    """Searches the knowledge base the `IngestionPipeline` built in `vector_store`.

    Args:
        vector_store: the store the pipeline wrote to.
        embedder: the pipeline's embedder (needed by the dense and hybrid modes).
        collection: the knowledge base's collection name.
        top_k: results per search unless a search asks for another number.
        filter: a metadata filter applied to every search (vector filter language).
        mode: `"hybrid"`, `"dense"` or `"lexical"`.
        candidates: results each side contributes to the fusion (at least `top_k`).
        rrf_k: the rank offset of reciprocal rank fusion (60 is the usual constant).
        lexical_weight: the lexical list's weight in the fusion (the dense list's is 1); None
            chooses it per query by script (`lexical_weight_for`).
        tokenizer: the BM25 terms of a query: the tokenizer the pipeline used.
    """

    def __init__(
        self,
        vector_store: VectorStore,
        embedder: Embedder | None = None,
        *,
        collection: str = DEFAULT_COLLECTION,
        top_k: int = 5,
        filter: Mapping[str, object] | None = None,
        mode: SearchMode = "hybrid",
        candidates: int = 50,
        rrf_k: int = 60,
        lexical_weight: float | None = None,
        tokenizer: LexicalTokenizer = lexical_tokens,
    ) -> None:
        self.layout = KnowledgeLayout(vector_store, collection)
        self.embedder = embedder
        self.top_k = self._checked_top_k(top_k)
        parse_filter(filter)
        self.filter = filter
        self.mode = self._checked_mode(mode)
        if candidates < 1 or rrf_k < 0:
            raise ConfigurationError(f"candidates must be positive and rrf_k non-negative, got {candidates}, {rrf_k}")
        if lexical_weight is not None and not (math.isfinite(lexical_weight) and lexical_weight >= 0):
            raise ConfigurationError(f"lexical_weight must be a finite number >= 0 or None, got {lexical_weight!r}")
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.lexical_weight = lexical_weight
        self.tokenizer = tokenizer
        self._index: BM25Index | None = None
        self._generation: tuple[str, str] | None = None
        self._reload = anyio.Lock()

    async def search(
        self,
        query: str,
        top_k: int | None = None,
        *,
        mode: SearchMode | None = None,
        filter: Mapping[str, object] | None = None,
    ) -> list[RetrievedChunk]:
        """The best `top_k` chunks for `query`, best first.

        Raises:
            ConfigurationError: the mode is unknown, or needs an embedder and none was given.
            InvalidFilterError: `filter` is not valid in the filter language.
        """
        limit = self._checked_top_k(self.top_k if top_k is None else top_k)
        chosen = self._checked_mode(self.mode if mode is None else mode)
        where = self.filter if filter is None else filter
        if chosen == "dense":
            return await self._dense(query, limit, where)
        if chosen == "lexical":
            return await self._lexical(query, limit, where)
        if self.embedder is None:
            raise ConfigurationError("dense and hybrid search need the embedder the pipeline used: pass embedder=")
        pool = max(self.candidates, limit)
        found: dict[str, list[RetrievedChunk]] = {}

        async def dense() -> None:
            found["dense"] = await self._dense(query, pool, where)

        async def lexical() -> None:
            found["lexical"] = await self._lexical(query, pool, where)

        # Dense first: while its query embedding runs (a worker thread or a remote call), BM25 runs here.
        await run_all([dense, lexical])
        weight = lexical_weight_for(query) if self.lexical_weight is None else self.lexical_weight
        return self._fuse([(found["dense"], 1.0), (found["lexical"], weight)], limit)

    # --- the modes ---------------------------------------------------------------------

    async def _dense(self, query: str, limit: int, where: Mapping[str, object] | None) -> list[RetrievedChunk]:
        if self.embedder is None:
            raise ConfigurationError("dense and hybrid search need the embedder the pipeline used: pass embedder=")
        [vector] = checked_vectors(self.embedder, [await self.embedder.embed_query(query)], 1)
        hits = await self.layout.chunks.query(vector, top_k=limit, where=where)
        return [RetrievedChunk(hit.id, hit.text, _source(hit.metadata), hit.score, hit.metadata) for hit in hits]

    async def _lexical(self, query: str, limit: int, where: Mapping[str, object] | None) -> list[RetrievedChunk]:
        index = await self._current_index()
        hits = index.search(terms(self.tokenizer, query), limit, parse_filter(where))
        if not hits:
            return []
        records = {record.id: record for record in await self.layout.chunks.get([hit.id for hit in hits])}
        return [
            RetrievedChunk(hit.id, record.text, _source(record.metadata), hit.score, record.metadata)
            for hit in hits
            if (record := records.get(hit.id)) is not None
        ]

    def _fuse(self, rankings: list[tuple[list[RetrievedChunk], float]], limit: int) -> list[RetrievedChunk]:
        scores: dict[str, float] = {}
        chunks: dict[str, RetrievedChunk] = {}
        for ranking, weight in rankings:
            for rank, chunk in enumerate(ranking, start=1):
                scores[chunk.id] = scores.get(chunk.id, 0.0) + weight / (self.rrf_k + rank)
                chunks.setdefault(chunk.id, chunk)
        best = sorted(scores, key=lambda chunk_id: (-scores[chunk_id], chunk_id))[:limit]
        return [RetrievedChunk(c.id, c.text, c.source, scores[c.id], c.metadata) for c in (chunks[i] for i in best)]

    async def _current_index(self) -> BM25Index:
        generation = await self.layout.generation()
        if generation is not None and generation[1] != tokenizer_name(self.tokenizer):
            raise ConfigurationError(
                f"this knowledge base was tokenized by {generation[1]}, this retriever tokenizes queries with "
                f"{tokenizer_name(self.tokenizer)}: pass the pipeline's tokenizer= to the retriever"
            )
        async with self._reload:
            if self._index is None or generation != self._generation:
                index = BM25Index()
                for record in await self.layout.lexical.get():
                    index.add(record.id, record.text.split(), record.metadata)
                self._index, self._generation = index, generation
            return self._index

    # --- checks ------------------------------------------------------------------------

    @staticmethod
    def _checked_top_k(top_k: object) -> int:
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
            raise ConfigurationError(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")
        return top_k

    @staticmethod
    def _checked_mode(mode: object) -> SearchMode:
        for known in SEARCH_MODES:
            if mode == known:
                return known
        raise ConfigurationError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")


def _source(metadata: Mapping[str, MetadataValue]) -> str:
    source = metadata.get("source")
    return source if isinstance(source, str) else ""
