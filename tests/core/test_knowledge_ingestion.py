"""IngestionPipeline over memory://: idempotence, replacement, deletion, batching, retries, errors."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from gecko.errors import ConfigurationError, DocumentLoadError, ModelServerError
from gecko.plugins.knowledge import Document, IngestionPipeline, RecursiveSplitter, Retriever
from gecko.plugins.models import RetryPolicy
from gecko.plugins.storage.memory import MemoryStorage
from gecko.plugins.vector import VectorRecord
from gecko.testing.embedders import HashingEmbedder


def write_corpus(root: Path) -> Path:
    (root / "docs").mkdir()
    (root / "docs" / "travel.md").write_text(
        "# Travel\n\n## Reimbursement\n\nTravel costs are reimbursed within 30 days of the trip.\n\n"
        "## Hotels\n\nHotels are paid up to 200 EUR per night.\n",
        encoding="utf-8",
    )
    (root / "docs" / "policy.txt").write_text(
        "公司的报销政策：员工出差费用在三十天内报销。需要提供发票。午餐不报销。", encoding="utf-8"
    )
    (root / "docs" / "faq.jsonl").write_text(
        '{"text": "The office opens at 9 am.", "topic": "office"}\n'
        '{"text": "Parking is free for staff.", "topic": "office"}\n',
        encoding="utf-8",
    )
    (root / "docs" / "ignored.png").write_bytes(b"\x89PNG")
    return root / "docs"


async def store_contents(store: MemoryStorage, name: str = "knowledge") -> dict[str, list[tuple[object, ...]]]:
    contents = {}
    for suffix in ("", "__lexical", "__sources"):
        records = await store.collection(name + suffix).get()
        contents[suffix or "chunks"] = [
            (r.id, r.text, sorted(r.metadata.items()), [round(x, 6) for x in r.vector])
            for r in records
            if r.id != "~generation"
        ]
    return contents


async def test_ingestion_reports_files_chunks_and_embeds_each_chunk_once(tmp_path: Path) -> None:
    store, embedder = MemoryStorage(), HashingEmbedder()
    summary = await IngestionPipeline(store, embedder).run([write_corpus(tmp_path)])
    assert (summary.files, summary.skipped, summary.removed) == (3, 0, 0)
    assert summary.chunks == summary.embedded == embedder.texts == await store.collection("knowledge").count()
    assert summary.chunks == 5
    assert summary.seconds > 0
    assert await store.collection("knowledge__lexical").count() == summary.chunks


async def test_reingesting_an_unchanged_corpus_makes_no_embedding_call(tmp_path: Path) -> None:
    store, embedder = MemoryStorage(), HashingEmbedder()
    corpus = write_corpus(tmp_path)
    first = await IngestionPipeline(store, embedder).run([corpus])
    before, calls = await store_contents(store), embedder.calls
    again = await IngestionPipeline(store, embedder).run([corpus])
    assert embedder.calls == calls
    assert (again.skipped, again.embedded, again.chunks) == (3, 0, first.chunks)
    assert await store_contents(store) == before


async def test_a_changed_file_replaces_exactly_its_old_chunks(tmp_path: Path) -> None:
    store, embedder = MemoryStorage(), HashingEmbedder()
    corpus = write_corpus(tmp_path)
    pipeline = IngestionPipeline(store, embedder)
    await pipeline.run([corpus])
    chunks = store.collection("knowledge")
    others = {r.id for r in await chunks.get() if not r.metadata["source"].endswith("travel.md")}
    (corpus / "travel.md").write_text(
        "# Travel\n\n## Reimbursement\n\nTravel costs are reimbursed within 30 days of the trip.\n\n"
        "## Meals\n\nMeals are paid up to 40 EUR per day.\n",
        encoding="utf-8",
    )
    texts = embedder.texts
    summary = await pipeline.run([corpus])
    assert (summary.skipped, summary.embedded, summary.removed) == (2, 1, 1)
    assert embedder.texts == texts + 1
    travel = sorted(r.text for r in await chunks.get(where={"source": str(corpus / "travel.md")}))
    assert travel == [
        "Travel > Meals\nMeals are paid up to 40 EUR per day.",
        "Travel > Reimbursement\nTravel costs are reimbursed within 30 days of the trip.",
    ]
    assert others <= {r.id for r in await chunks.get()}
    assert {r.id for r in await chunks.get()} == {r.id for r in await store.collection("knowledge__lexical").get()}


async def test_delete_removes_a_source_from_vectors_lexical_index_and_manifest(tmp_path: Path) -> None:
    store, embedder = MemoryStorage(), HashingEmbedder()
    corpus = write_corpus(tmp_path)
    pipeline = IngestionPipeline(store, embedder)
    await pipeline.run([corpus])
    retriever = Retriever(store, embedder, mode="lexical")
    assert (await retriever.search("报销政策", 1))[0].source == str(corpus / "policy.txt")
    assert await pipeline.delete(str(corpus / "policy.txt")) == 1
    assert [c.source for c in await retriever.search("报销政策", 3)] == []
    assert await store.collection("knowledge__lexical").count(where={"source": str(corpus / "policy.txt")}) == 0
    summary = await pipeline.run([corpus])
    assert (summary.skipped, summary.embedded) == (2, 1)


async def test_documents_can_be_ingested_without_files() -> None:
    store, embedder = MemoryStorage(), HashingEmbedder()
    documents = [Document("wiki/gecko", "Geckos are lizards.", {"lang": "en"}), Document("wiki/gecko", "They climb.")]
    pipeline = IngestionPipeline(store, embedder)
    assert (await pipeline.run(documents)).chunks == 2
    assert (await pipeline.run(documents)).skipped == 1
    assert embedder.texts == 2
    [hit] = await Retriever(store, embedder, filter={"lang": "en"}).search("lizards", 5)
    assert (hit.text, hit.source) == ("Geckos are lizards.", "wiki/gecko")


async def test_a_different_embedder_or_splitter_reingests(tmp_path: Path) -> None:
    store = MemoryStorage()
    corpus = write_corpus(tmp_path)
    await IngestionPipeline(store, HashingEmbedder(64), collection="kb").run([corpus])
    other = HashingEmbedder(64)
    other.model = "hashing-64-v2"
    summary = await IngestionPipeline(store, other, collection="kb").run([corpus])
    assert summary.skipped == 0
    assert summary.embedded == summary.removed == summary.chunks
    resplit = await IngestionPipeline(store, other, RecursiveSplitter(30, 0), collection="kb").run([corpus])
    assert resplit.skipped == 0
    assert await store.collection("kb").count() == resplit.chunks


class CountingEmbedder(HashingEmbedder):
    """Records how many embed calls run at once and fails the first `failures` calls."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__(64)
        self.failures = failures
        self.running = 0
        self.most_running = 0
        self.batch_sizes: list[int] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await anyio.sleep(0.01)
            if self.failures:
                self.failures -= 1
                raise ModelServerError("scripted 503")
            self.batch_sizes.append(len(texts))
            return await super().embed(texts)
        finally:
            self.running -= 1


async def test_embedding_runs_in_batches_under_the_concurrency_limit() -> None:
    store, embedder = MemoryStorage(), CountingEmbedder()
    documents = [Document(f"doc-{i}", f"text number {i} about topic {i % 7}") for i in range(40)]
    await IngestionPipeline(store, embedder, batch_size=3, concurrency=2).run(documents)
    assert embedder.most_running == 2
    assert sum(embedder.batch_sizes) == 40
    assert max(embedder.batch_sizes) <= 3


async def test_failed_embedding_calls_are_retried_through_the_retry_policy() -> None:
    store, embedder = MemoryStorage(), CountingEmbedder(failures=2)
    retry = RetryPolicy(max_attempts=3, initial_delay=0.001, jitter=0.0)
    summary = await IngestionPipeline(store, embedder, retry=retry).run([Document("a", "alpha beta")])
    assert summary.embedded == 1
    failing = CountingEmbedder(failures=1)
    with pytest.raises(ModelServerError):
        await IngestionPipeline(MemoryStorage(), failing).run([Document("a", "alpha beta")])


async def test_a_crash_before_the_manifest_is_repaired_by_the_next_run() -> None:
    store, embedder = MemoryStorage(), HashingEmbedder()
    documents = [Document("a", "one.\n\ntwo.\n\nthree."), Document("b", "four")]
    pipeline = IngestionPipeline(store, embedder, RecursiveSplitter(5, 0))
    reference = MemoryStorage()
    await IngestionPipeline(reference, HashingEmbedder(), RecursiveSplitter(5, 0)).run(documents)
    # What an interrupted run can leave: some chunks, a lexical record without its chunk, a leftover.
    full = await store_contents(reference)
    chunk_id, text, metadata, vector = full["chunks"][0]
    await store.collection("knowledge").upsert([VectorRecord(chunk_id, vector, text, dict(metadata))])
    lexical_id, tokens, lexical_metadata, _ = full["__lexical"][1]
    lexical = VectorRecord(lexical_id, [1.0], tokens, dict(lexical_metadata))
    await store.collection("knowledge__lexical").upsert([lexical])
    await store.collection("knowledge").upsert([VectorRecord("leftover", vector, "old", {"source": "a"})])
    summary = await pipeline.run(documents)
    assert summary.embedded == summary.chunks - 1 == len(full["chunks"]) - 1
    assert await store_contents(store) == full


async def test_bad_inputs_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = MemoryStorage()
    pipeline = IngestionPipeline(store, HashingEmbedder())
    (tmp_path / "ok.txt").write_text("fine", encoding="utf-8")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    with pytest.raises(DocumentLoadError, match="does not exist"):
        await pipeline.run([tmp_path / "ok.txt", tmp_path / "missing.txt"])
    with pytest.raises(DocumentLoadError, match=r"unsupported file type '\.png'"):
        await pipeline.run([tmp_path / "ok.txt", tmp_path / "photo.png"])
    with pytest.raises(DocumentLoadError, match="paths and Documents"):
        await pipeline.run([42])  # type: ignore[list-item]
    assert await store.list_collections() == []
    with pytest.raises(ConfigurationError):
        IngestionPipeline(store, HashingEmbedder(), batch_size=0)


async def test_progress_is_silent_off_a_terminal_and_drawn_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_corpus(tmp_path)
    await IngestionPipeline(MemoryStorage(), HashingEmbedder()).run([corpus])
    assert capsys.readouterr().err == ""
    terminal = io.StringIO()
    monkeypatch.setattr("sys.stderr", terminal)
    await IngestionPipeline(MemoryStorage(), HashingEmbedder(), progress=True).run([corpus])
    assert "ingesting" in terminal.getvalue()
    assert "3/3" in terminal.getvalue()
