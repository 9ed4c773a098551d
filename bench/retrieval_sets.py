"""The public retrieval sets under bench/data, their metrics, and the embedders the RAG benchmarks compare.

A set is a corpus (`id`, `title`, `text`), queries (`id`, `text`) and relevance judgements
(query id -> relevant document ids); see bench/data/README.md for sources and licences.
Retrieval is judged per document: a ranking of chunks becomes the ranking of the documents
they came from, each document at the rank of its best chunk.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gecko.plugins.models import Embedder

DATA = Path(__file__).resolve().parent / "data"
SETS = ("scifact", "cmrc2018")
EMBEDDERS = ("e5", "minilm")


@dataclass(frozen=True)
class RetrievalSet:
    """One set: documents, queries and, per query id, the ids of its relevant documents."""

    name: str
    documents: list[dict[str, str]]
    queries: list[dict[str, str]]
    relevant: dict[str, frozenset[str]]

    def document_text(self, document: dict[str, str]) -> str:
        """What is ingested for a document: its title, a blank line, its text (BEIR's title + text)."""
        return f"{document['title']}\n\n{document['text']}" if document["title"] else document["text"]


PARTS = ("all", "dev", "test")


def load_set(name: str, *, queries: int | None = None, part: str = "all") -> RetrievalSet:
    """The set `name`; with `queries`, only that many queries, evenly spread over the set.

    `part` splits those queries for tuning: `dev` is every other query from the first, `test`
    the rest, so settings chosen on `dev` can be reported on `test` (queries they never saw).
    """
    folder = DATA / name
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as corpus:
        documents = [json.loads(line) for line in corpus]
    asked = [json.loads(line) for line in (folder / "queries.jsonl").read_text("utf-8").splitlines()]
    if queries is not None and queries < len(asked):
        step = len(asked) / queries
        asked = [asked[int(i * step)] for i in range(queries)]
    if part != "all":
        asked = asked[PARTS.index(part) - 1 :: 2]
    relevant: dict[str, set[str]] = {}
    for line in (folder / "qrels.tsv").read_text("utf-8").splitlines()[1:]:
        query, document, score = line.split("\t")
        if int(score) > 0:
            relevant.setdefault(query, set()).add(document)
    return RetrievalSet(name, documents, asked, {key: frozenset(value) for key, value in relevant.items()})


def documents_in_order(sources: Sequence[str]) -> list[str]:
    """The distinct documents of a chunk ranking, each at the rank of its first chunk."""
    return list(dict.fromkeys(sources))


def recall_at(ranking: Sequence[str], relevant: frozenset[str], k: int) -> float:
    """The share of the relevant documents found in the first `k`."""
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def ndcg_at(ranking: Sequence[str], relevant: frozenset[str], k: int) -> float:
    """Normalised discounted cumulative gain of the first `k` with binary relevance."""
    gain = sum(1.0 / math.log2(rank + 2) for rank, document in enumerate(ranking[:k]) if document in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return gain / ideal


def make_embedder(name: str, threads: int | None = None) -> Embedder:
    """A fresh offline embedder at its defaults: `e5` (multilingual-e5-small) or `minilm` (all-MiniLM-L6-v2, ONNX).

    `threads` sets MiniLM's onnxruntime threads; E5's engine takes its thread count from
    `OMP_NUM_THREADS` in the environment the process started with.
    """
    if name == "e5":
        from gecko_embedders_e5 import E5Embedder

        return E5Embedder()
    if name == "minilm":
        from gecko_embedders_onnx import OnnxEmbedder

        return OnnxEmbedder(threads=threads)
    raise SystemExit(f"unknown embedder {name!r}: use one of {', '.join(EMBEDDERS)}")


class CachedEmbedder(Embedder):
    """`inner` with its vectors kept on disk by text, so repeated quality runs embed each text once.

    Used only where the vectors, not the time, are measured: equal texts get the vectors `inner`
    gave them, so every framework fed through it is held to the same embedder.
    """

    provider: ClassVar[str] = "bench-cache"

    def __init__(self, name: str, folder: Path, threads: int | None = None) -> None:
        self.inner = make_embedder(name, threads)
        self.model = f"{name}:{getattr(self.inner, 'model', '')}"
        self.dimension = self.inner.dimension
        self.calls = 0
        self.embedded = 0
        self._path = folder / f"{name}.npz"
        self._vectors: dict[str, np.ndarray[Any, Any]] = {}
        if self._path.exists():
            with np.load(self._path) as stored:
                self._vectors = {key: stored[key] for key in stored.files}

    @staticmethod
    def _key(kind: str, text: str) -> str:
        return kind + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        missing = list(dict.fromkeys(t for t in texts if self._key("p", t) not in self._vectors))
        if missing:
            self.calls += 1
            self.embedded += len(missing)
            for text, vector in zip(missing, await self.inner.embed(missing), strict=True):
                self._vectors[self._key("p", text)] = np.asarray(vector, dtype=np.float32)
        return [self._vectors[self._key("p", text)].tolist() for text in texts]

    async def embed_query(self, text: str) -> list[float]:
        key = self._key("q", text)
        if key not in self._vectors:
            self.calls += 1
            self.embedded += 1
            self._vectors[key] = np.asarray(await self.inner.embed_query(text), dtype=np.float32)
        return self._vectors[key].tolist()

    def save(self) -> None:
        """Write the vectors to the cache file."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self._path, **self._vectors)


def langchain_embeddings(embedder: Embedder) -> Any:
    """`embedder` behind LangChain's `Embeddings` interface (async methods; the sync ones are not used)."""
    from langchain_core.embeddings import Embeddings

    class SameEmbedder(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            raise NotImplementedError("the benchmark calls the async methods")

        def embed_query(self, text: str) -> list[float]:
            raise NotImplementedError("the benchmark calls the async methods")

        async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
            return await embedder.embed(texts)

        async def aembed_query(self, text: str) -> list[float]:
            return await embedder.embed_query(text)

    return SameEmbedder()


def langchain_default_splitter() -> Any:
    """The splitter of LangChain's RAG tutorial: recursive by characters, 1 000 with 200 overlap."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True)
