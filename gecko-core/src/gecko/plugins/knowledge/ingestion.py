"""`IngestionPipeline`: files or documents loaded, split, embedded and stored, idempotently.

Every chunk's id is a hash of the embedder, the source, the chunk's text and metadata (and
which repeat of that text it is), so a chunk that did not change keeps its id and its vector.
Sources are taken in rounds of up to 256:

1. per source (`concurrency` at once): hash the file's bytes (or the documents' content) and
   compare the digest, the splitter and the embedder with the source's manifest record (a match
   means done, with no embedding call); else load and split it in a worker thread;
2. for the round's changed sources together: store their lexical records, ask the store which
   chunk ids it already holds, and embed the others in batches of `batch_size`, at most
   `concurrency` batches at once, each batch stored as soon as it is embedded;
3. delete the stored chunks those sources no longer produce, then write their manifests.

Store calls are per round, not per source, so many small files cost few writes.

The manifest record is written last, so a run killed at any point (even SIGKILL) leaves a
source without a matching record; the next run redoes it, embedding only the chunks that never
reached the store and removing leftovers, and ends with the same store contents as an
uninterrupted run. The lexical (BM25) records are written and deleted with the chunks.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.to_thread

from gecko._tasks import run_all
from gecko.errors import ConfigurationError, DocumentLoadError
from gecko.plugins.knowledge._layout import CONSTANT_VECTOR, DEFAULT_COLLECTION, KnowledgeLayout
from gecko.plugins.knowledge.documents import Document, checked_document
from gecko.plugins.knowledge.lexical import LexicalTokenizer, lexical_tokens, terms, tokenizer_name
from gecko.plugins.knowledge.loaders import LOADERS, load_bytes
from gecko.plugins.knowledge.splitters import AutoSplitter, Splitter
from gecko.plugins.models import Embedder, RetryPolicy, checked_vectors
from gecko.plugins.vector import VectorRecord, VectorStore
from gecko.plugins.vector.filters import MetadataValue

__all__ = ("IngestionPipeline", "IngestionSummary", "embedder_key")

_SOURCES_PER_ROUND = 256
"""Sources planned together: their missing chunks share embedding batches (and are held in memory)."""


@dataclass(frozen=True)
class IngestionSummary:
    """What one `run` did.

    Attributes:
        files: sources looked at (files, or distinct `source` names of the documents given).
        chunks: chunks the sources consist of now (written or already stored).
        skipped: sources unchanged since their last ingestion (nothing read beyond the hash).
        seconds: wall time of the run.
        embedded: chunks embedded in this run (texts sent to the embedder).
        removed: stale chunks deleted (from changed sources, or by `delete`).
        sources: the source names, in the order given.
    """

    files: int
    chunks: int
    skipped: int
    seconds: float
    embedded: int = 0
    removed: int = 0
    sources: tuple[str, ...] = field(default_factory=tuple)


def embedder_key(embedder: Embedder) -> str:
    """Names the embedder's vectors: its class, model and dimension (a change re-embeds)."""
    kind = type(embedder)
    return f"{kind.__module__}.{kind.__qualname__}:{getattr(embedder, 'model', '')}:{embedder.dimension}"


class _ProgressBar(Protocol):
    def update(self, n: int) -> Any: ...
    def set_postfix(self, *, refresh: bool, **values: int) -> Any: ...
    def close(self) -> Any: ...


@dataclass
class _Source:
    name: str
    path: Path | None = None
    documents: list[Document] | None = None


@dataclass
class _Tally:
    chunks: int = 0
    skipped: int = 0
    embedded: int = 0
    removed: int = 0


@dataclass(frozen=True)
class _Prepared:
    id: str
    text: str
    metadata: dict[str, MetadataValue]
    terms: str


@dataclass(frozen=True)
class _Plan:
    """A changed source: its manifest, to write last, and its chunks."""

    source: str
    manifest: dict[str, MetadataValue]
    chunks: list[_Prepared]


def _digest(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _documents_digest(documents: Sequence[Document]) -> str:
    return _digest(
        json.dumps([d.text, dict(d.metadata), d.format], ensure_ascii=False, sort_keys=True).encode(
            "utf-8", "surrogatepass"
        )
        for d in documents
    )


class IngestionPipeline:
    """Loads, splits, embeds and stores documents in a vector store, skipping what is already there.

    Example: `await IngestionPipeline(store, embedder).run(["policy.pdf", "docs/"])`.

    Args:
        vector_store: where chunks go (`create_storage("chroma://./kb")`, `lancedb://`, `memory://`).
        embedder: turns chunk texts into vectors; queries must use the same one.
        splitter: cuts documents into chunks; by default `AutoSplitter()` (Markdown by headings,
            CJK text by sentences, the rest recursively).
        collection: the knowledge base's collection name (retrievers must use the same).
        batch_size: texts per embedding call.
        concurrency: embedding calls in flight at once.
        retry: wraps each embedding call in this `RetryPolicy`; None leaves retries to the
            embedder (`LiteLLMEmbedder` retries through its own policy).
        tokenizer: the BM25 terms of a text (`lexical_tokens`: words and CJK bigrams); retrievers
            of this knowledge base must use the same.
        progress: a progress bar on stderr (tqdm): None shows it when stderr is a terminal and
            tqdm is installed, True requires it, False never shows it.
    """

    def __init__(
        self,
        vector_store: VectorStore,
        embedder: Embedder,
        splitter: Splitter | None = None,
        *,
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = 64,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        tokenizer: LexicalTokenizer = lexical_tokens,
        progress: bool | None = None,
    ) -> None:
        if batch_size < 1 or concurrency < 1:
            raise ConfigurationError(f"batch_size and concurrency must be at least 1, got {batch_size}, {concurrency}")
        self.layout = KnowledgeLayout(vector_store, collection)
        self.embedder = embedder
        self.splitter: Splitter = splitter or AutoSplitter()
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.retry = retry
        self.tokenizer = tokenizer
        self.progress = progress
        self._embedder_key = embedder_key(embedder)

    # --- public API ------------------------------------------------------------------

    async def run(self, inputs: Iterable[str | os.PathLike[str] | Document]) -> IngestionSummary:
        """Ingest files, directories (every supported file below them) and `Document`s.

        Everything is checked before anything is written: paths must exist and have a supported
        suffix. Each source is complete once the call returns.

        Raises:
            DocumentLoadError: a path is missing or unsupported, or a file is malformed (sources
                finished before it stay ingested; run again after fixing it).
            ConfigurationError: a format needs a library that is not installed (PDF: pypdf).
        """
        started = time.perf_counter()
        sources = await anyio.to_thread.run_sync(_collect, list(inputs))
        tally = _Tally()
        bar = self._progress_bar(len(sources))
        try:
            for start in range(0, len(sources), _SOURCES_PER_ROUND):
                await self._round(sources[start : start + _SOURCES_PER_ROUND], tally, bar)
        finally:
            if bar is not None:
                bar.close()
        return IngestionSummary(
            files=len(sources),
            chunks=tally.chunks,
            skipped=tally.skipped,
            seconds=time.perf_counter() - started,
            embedded=tally.embedded,
            removed=tally.removed,
            sources=tuple(source.name for source in sources),
        )

    async def delete(self, source: str) -> int:
        """Remove everything ingested from `source` (chunks, lexical records, manifest); the count of chunks."""
        layout = self.layout
        stale = sorted((await self._stored_ids([source])).get(source, set()))
        if stale:
            await layout.lexical.delete(stale)
            await layout.chunks.delete(stale)
        await layout.sources.delete([KnowledgeLayout.source_id(source)])
        await layout.renew_generation(tokenizer_name(self.tokenizer))
        return len(stale)

    # --- one round of sources -------------------------------------------------------

    async def _round(self, sources: list[_Source], tally: _Tally, bar: _ProgressBar | None) -> None:
        """Ingest `sources` with a few large store calls: plan, store lexical records, embed, commit."""
        layout = self.layout
        ids = [KnowledgeLayout.source_id(source.name) for source in sources]
        manifests = {record.id: record for record in await layout.sources.get(ids)}
        plans: list[_Plan | None] = [None] * len(sources)
        limiter = anyio.CapacityLimiter(self.concurrency)

        async def plan(index: int) -> None:
            async with limiter:
                plans[index] = await self._plan(sources[index], manifests.get(ids[index]))

        await run_all([partial(plan, index) for index in range(len(sources))])
        changed = [found for found in plans if found is not None]
        prepared = [chunk for found in changed for chunk in found.chunks]
        if prepared:
            stored = {record.id for record in await layout.chunks.get(chunk.id for chunk in prepared)}
            await layout.lexical.upsert(VectorRecord(c.id, CONSTANT_VECTOR, c.terms, c.metadata) for c in prepared)
            missing = [chunk for chunk in prepared if chunk.id not in stored]
            await run_all(
                [
                    partial(self._embed_and_store, missing[start : start + self.batch_size], limiter)
                    for start in range(0, len(missing), self.batch_size)
                ]
            )
            tally.embedded += len(missing)
        if changed:
            tally.removed += await self._commit(changed)
            await layout.renew_generation(tokenizer_name(self.tokenizer))
        for source_id, found in zip(ids, plans, strict=True):
            count = len(found.chunks) if found is not None else manifests[source_id].metadata.get("chunks")
            tally.skipped += found is None
            tally.chunks += count if isinstance(count, int) else 0
            if bar is not None:
                bar.update(1)
                bar.set_postfix(chunks=tally.chunks, embedded=tally.embedded, refresh=False)

    async def _plan(self, source: _Source, manifest: VectorRecord | None) -> _Plan | None:
        """`source`'s chunks and manifest, or None when its manifest says it is unchanged."""
        data = await anyio.to_thread.run_sync(source.path.read_bytes) if source.path is not None else None
        digest = _digest([data]) if data is not None else _documents_digest(source.documents or [])
        fingerprint = self._fingerprint(digest)
        if manifest is not None and all(manifest.metadata.get(key) == value for key, value in fingerprint.items()):
            return None
        prepared = await anyio.to_thread.run_sync(self._prepare, source, data)
        return _Plan(source.name, {**fingerprint, "source": source.name, "chunks": len(prepared)}, prepared)

    async def _commit(self, plans: list[_Plan]) -> int:
        """Delete the stored chunks the sources no longer produce, then write their manifests; the count deleted."""
        layout = self.layout
        stored = await self._stored_ids([plan.source for plan in plans])
        stale = sorted(
            {record_id for plan in plans for record_id in stored.get(plan.source, set())}
            - {chunk.id for plan in plans for chunk in plan.chunks}
        )
        if stale:
            await layout.lexical.delete(stale)
            await layout.chunks.delete(stale)
        await layout.sources.upsert(
            VectorRecord(KnowledgeLayout.source_id(plan.source), CONSTANT_VECTOR, "", plan.manifest) for plan in plans
        )
        return len(stale)

    def _fingerprint(self, digest: str) -> dict[str, MetadataValue]:
        return {
            "sha256": digest,
            "splitter": self.splitter.fingerprint,
            "embedder": self._embedder_key,
            "tokenizer": tokenizer_name(self.tokenizer),
        }

    def _prepare(self, source: _Source, data: bytes | None) -> list[_Prepared]:
        """The source's chunks with their ids (runs in a worker thread)."""
        documents = load_bytes(source.name, data) if data is not None else source.documents or []
        prepared: list[_Prepared] = []
        seen: dict[str, int] = {}
        for document in documents:
            for chunk in self.splitter.split(document):
                metadata: dict[str, MetadataValue] = {**chunk.metadata, "source": source.name}
                identity = json.dumps(
                    [self._embedder_key, source.name, chunk.text, metadata], ensure_ascii=False, sort_keys=True
                )
                repeat = seen.get(identity, 0)
                seen[identity] = repeat + 1
                chunk_id = _digest([identity.encode("utf-8", "surrogatepass"), str(repeat).encode()])[:32]
                tokens = " ".join(terms(self.tokenizer, chunk.text))
                prepared.append(_Prepared(chunk_id, chunk.text, metadata, tokens))
        return prepared

    async def _stored_ids(self, sources: list[str]) -> dict[str, set[str]]:
        """The ids of the chunks and lexical records stored for each of `sources` (one query per collection)."""
        found: dict[str, set[str]] = {}
        if not sources:
            return found
        where = {"source": {"$in": sources}}
        for collection in (self.layout.chunks, self.layout.lexical):
            for record in await collection.get(where=where):
                source = record.metadata.get("source")
                if isinstance(source, str):
                    found.setdefault(source, set()).add(record.id)
        return found

    async def _embed_and_store(self, batch: list[_Prepared], limiter: anyio.CapacityLimiter) -> None:
        texts = [chunk.text for chunk in batch]
        async with limiter:
            if self.retry is None:
                answer = await self.embedder.embed(texts)
            else:

                async def attempt(remaining: float | None) -> list[list[float]]:
                    return await self.embedder.embed(texts)

                answer = await self.retry.run(attempt)
        records = zip(batch, checked_vectors(self.embedder, answer, len(batch)), strict=True)
        await self.layout.chunks.upsert(VectorRecord(c.id, vector, c.text, c.metadata) for c, vector in records)

    def _progress_bar(self, total: int) -> _ProgressBar | None:
        wanted = self.progress
        if wanted is False or (wanted is None and not sys.stderr.isatty()):
            return None
        try:
            from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
        except ImportError as exc:
            if wanted:
                raise ConfigurationError("progress=True needs tqdm: `pip install 'gecko-ai-core[knowledge]'`") from exc
            return None
        bar: _ProgressBar = tqdm(total=total, unit="source", desc="ingesting", file=sys.stderr, dynamic_ncols=True)
        return bar


def _collect(inputs: list[str | os.PathLike[str] | Document]) -> list[_Source]:
    """The sources named by `inputs`, every path checked (runs in a worker thread)."""
    sources: dict[str, _Source] = {}
    for item in inputs:
        if isinstance(item, Document):
            checked_document(item)
            entry = sources.setdefault(item.source, _Source(item.source, documents=[]))
            if entry.documents is None:
                raise DocumentLoadError(f"{item.source!r} is given both as a file and as documents")
            entry.documents.append(item)
            continue
        if not isinstance(item, (str, os.PathLike)):
            raise DocumentLoadError(f"run() takes paths and Documents, got {type(item).__name__}")
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in LOADERS)
        elif path.is_file():
            if path.suffix.lower() not in LOADERS:
                raise DocumentLoadError(
                    f"{str(path)!r}: unsupported file type {path.suffix or '(no suffix)'!r}; "
                    f"supported: {', '.join(LOADERS)}"
                )
            files = [path]
        else:
            raise DocumentLoadError(f"{str(path)!r} does not exist")
        for file in files:
            name = str(file)
            if name in sources and sources[name].path is None:
                raise DocumentLoadError(f"{name!r} is given both as a file and as documents")
            sources[name] = _Source(name, path=file)
    return list(sources.values())
