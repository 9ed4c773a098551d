"""The knowledge layer over a real LanceDB directory: hybrid retrieval, and SIGKILL during ingestion."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import anyio.to_thread
import pytest

from gecko.plugins.knowledge import IngestionPipeline, RecursiveSplitter, Retriever
from gecko.plugins.storage.factory import create_storage
from gecko.plugins.vector import VectorStore
from gecko.testing.embedders import HashingEmbedder

pytestmark = pytest.mark.anyio

FILES = 12

# Ingests the corpus into lancedb://<dir> with a HashingEmbedder (so chunk ids agree with the
# test's own runs) that prints a line after every batch; the test kills it after a few.
INGEST = r"""
import sys
import anyio
from gecko.plugins.knowledge import IngestionPipeline, RecursiveSplitter
from gecko.plugins.storage.factory import create_storage
from gecko.testing.embedders import HashingEmbedder


async def main():
    embedder = HashingEmbedder()
    embed = embedder.embed

    async def announcing(texts):
        vectors = await embed(texts)
        await anyio.sleep(0.05)
        print("batch", flush=True)
        return vectors

    embedder.embed = announcing
    store = await create_storage(sys.argv[1])
    await IngestionPipeline(store, embedder, RecursiveSplitter(60, 0), batch_size=2, concurrency=1).run([sys.argv[2]])


anyio.run(main)
"""


def write_corpus(root: Path) -> Path:
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(FILES):
        sentences = [f"Document {i} sentence {j} mentions topic {(i * 7 + j) % 11}." for j in range(6)]
        (corpus / f"doc{i:02d}.txt").write_text(" ".join(sentences), encoding="utf-8")
    (corpus / "zh.txt").write_text("公司的报销政策：员工出差费用在三十天内报销。需要提供发票。", encoding="utf-8")
    return corpus


async def contents(store: VectorStore) -> dict[str, list[tuple[object, ...]]]:
    found = {}
    for name in ("knowledge", "knowledge__lexical", "knowledge__sources"):
        found[name] = [
            (r.id, r.text, sorted(r.metadata.items()), [round(x, 5) for x in r.vector])
            for r in await store.collection(name).get()
            if r.id != "~generation"
        ]
    return found


def kill_during_ingestion(script: Path, url: str, corpus: Path) -> None:
    """Run the ingestion script and SIGKILL it once it has embedded five batches."""
    worker = subprocess.Popen([sys.executable, str(script), url, str(corpus)], stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    for _ in range(5):
        assert worker.stdout.readline() == "batch\n"
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=60)
    assert worker.returncode == -signal.SIGKILL


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # a process test: one event loop is enough
async def test_sigkill_during_ingestion_then_rerun_equals_an_uninterrupted_ingest(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path)
    script = tmp_path / "ingest.py"
    script.write_text(INGEST, encoding="utf-8")
    splitter = RecursiveSplitter(60, 0)
    reference = await create_storage(f"lancedb://{tmp_path / 'reference'}")
    total = (await IngestionPipeline(reference, HashingEmbedder(), splitter).run([corpus])).chunks
    url = f"lancedb://{tmp_path / 'killed'}"
    await anyio.to_thread.run_sync(kill_during_ingestion, script, url, corpus)
    killed = await create_storage(url)
    partial = await killed.collection("knowledge").count()
    assert 0 < partial < total  # the kill did land mid-ingest
    embedder = HashingEmbedder()
    rerun = await IngestionPipeline(killed, embedder, splitter).run([corpus])
    assert rerun.chunks == total
    assert rerun.embedded == embedder.texts == total - partial  # what was stored is not embedded again
    assert await contents(killed) == await contents(reference)
    calls = embedder.calls
    again = await IngestionPipeline(killed, embedder, splitter).run([corpus])
    assert (again.skipped, again.embedded, embedder.calls) == (FILES + 1, 0, calls)
    await killed.close()
    await reference.close()


async def test_hybrid_retrieval_over_lancedb_survives_reopening(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path)
    url = f"lancedb://{tmp_path / 'kb'}"
    store = await create_storage(url)
    embedder = HashingEmbedder()
    await IngestionPipeline(store, embedder).run([corpus])
    await store.close()
    reopened = await create_storage(url)
    retriever = Retriever(reopened, embedder)
    for mode in ("dense", "lexical", "hybrid"):
        [best] = await retriever.search("报销政策", 1, mode=mode)
        assert best.source == str(corpus / "zh.txt")
    [hit] = await retriever.search("Document 3 sentence", 1, filter={"source": str(corpus / "doc03.txt")})
    assert hit.source == str(corpus / "doc03.txt")
    await reopened.close()
