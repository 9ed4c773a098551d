"""W10: ingestion throughput and query latency with the offline embedders, Gecko beside LangChain and a plain loop.

    python bench/w10_ingestion.py [--embedders e5,minilm] [--docs 200] [--queries 40] [--json out.json]

The corpus is the first `--docs` documents of each public set in bench/data (English SciFact
abstracts and Chinese CMRC 2018 paragraphs, half each). Per embedder, in one process:

- plain loop: Gecko's chunks of that corpus (cut untimed by the default splitter) embedded by
  calling the embedder directly, 64 texts a call: the embedding work alone;
- gecko: `IngestionPipeline(store, embedder).run(documents)` into `memory://`, defaults (load,
  split, hash, embed, store, BM25 records): end to end;
- langchain: `RecursiveCharacterTextSplitter(1000, 200)` and `InMemoryVectorStore.aadd_documents`
  with the same embedder (LangChain's RAG tutorial setup): end to end.

Reported: chunks per second (wall) with the CPU seconds of the process beside it, the chunks and
characters embedded (the two splitters cut different chunks), and then the query latency
(median of `--queries` queries, embedding included) of Gecko's three modes and LangChain's
similarity search on what each ingested. For MiniLM, also `OnnxEmbedder()` against a plain
onnxruntime loop (length-sorted batches of 32, one intra-op thread per core) on the same chunk
texts, with the largest difference between their vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from gecko.plugins.knowledge import AutoSplitter, Document, IngestionPipeline, Retriever
from gecko.plugins.models import Embedder
from gecko.plugins.storage.memory import MemoryStorage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_sets import (
    EMBEDDERS,
    SETS,
    langchain_default_splitter,
    langchain_embeddings,
    load_set,
    make_embedder,
)

PLAIN_BATCH = 64


async def timed(work: Callable[[], Awaitable[Any]]) -> tuple[Any, float, float]:
    """`work()`'s result, its wall seconds and the process's CPU seconds while it ran."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = await work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


async def latency(search: Callable[[str], Awaitable[Any]], queries: list[str]) -> float:
    """Median milliseconds of one search, after one warm-up search."""
    await search(queries[0])
    samples = []
    for query in queries:
        started = time.perf_counter()
        await search(query)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def plain_onnx_loop(texts: list[str], batch_size: int = 32) -> np.ndarray[Any, Any]:
    """all-MiniLM-L6-v2 by hand: onnxruntime, length-sorted batches, one intra-op thread per core."""
    import onnxruntime
    import tokenizers
    from gecko_embedders_onnx import available_cores, default_model_files

    model_file, tokenizer_file = default_model_files()
    tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_length=256)
    tokenizer.no_padding()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = available_cores()
    session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    encodings = tokenizer.encode_batch(texts)
    order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
    out = np.empty((len(texts), 384), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(encodings[i].ids) for i in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, i in enumerate(batch):
            ids[row, : len(encodings[i].ids)] = encodings[i].ids
            mask[row, : len(encodings[i].ids)] = 1
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        pooled = (hidden * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        out[batch] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    return out


async def measure(embedder_name: str, documents: list[Document], queries: list[str]) -> list[dict[str, Any]]:
    from langchain_core.vectorstores import InMemoryVectorStore

    rows: list[dict[str, Any]] = []
    chunk_texts = [chunk.text for doc in documents for chunk in AutoSplitter().split(doc)]

    embedder: Embedder = make_embedder(embedder_name)
    await embedder.embed(["warm-up: the model loads here"])

    async def plain_loop() -> int:
        for start in range(0, len(chunk_texts), PLAIN_BATCH):
            await embedder.embed(chunk_texts[start : start + PLAIN_BATCH])
        return len(chunk_texts)

    count, wall, cpu = await timed(plain_loop)
    rows.append({"row": "plain loop", "chunks": count, "chars": sum(map(len, chunk_texts)), "wall": wall, "cpu": cpu})

    store = MemoryStorage()
    pipeline = IngestionPipeline(store, embedder, progress=False)
    summary, wall, cpu = await timed(lambda: pipeline.run(documents))
    rows.append({"row": "gecko", "chunks": summary.embedded, "chars": sum(map(len, chunk_texts)), "wall": wall,
                 "cpu": cpu})  # fmt: skip

    lc_store = InMemoryVectorStore(langchain_embeddings(embedder))
    splitter = langchain_default_splitter()

    async def langchain_ingest() -> list[Any]:
        texts, metadatas = [d.text for d in documents], [{"source": d.source} for d in documents]
        chunks = splitter.create_documents(texts, metadatas=metadatas)
        await lc_store.aadd_documents(chunks)
        return chunks

    lc_chunks, wall, cpu = await timed(langchain_ingest)
    rows.append({"row": "langchain", "chunks": len(lc_chunks), "chars": sum(len(c.page_content) for c in lc_chunks),
                 "wall": wall, "cpu": cpu})  # fmt: skip

    retriever = Retriever(store, embedder, top_k=5)
    for mode in ("lexical", "dense", "hybrid"):
        ms = await latency(lambda q, mode=mode: retriever.search(q, mode=mode), queries)
        rows.append({"row": f"gecko {mode} query", "ms": ms})
    rows.append({"row": "langchain query", "ms": await latency(lambda q: lc_store.asimilarity_search(q, k=5), queries)})

    if embedder_name == "minilm":
        mine, wall, cpu = await timed(lambda: embedder.embed(chunk_texts))
        plain, plain_wall, plain_cpu = await timed(lambda: anyio.to_thread.run_sync(plain_onnx_loop, chunk_texts))
        difference = float(np.abs(np.asarray(mine, dtype=np.float32) - plain).max())
        rows.append({"row": "OnnxEmbedder()", "chunks": len(chunk_texts), "wall": wall, "cpu": cpu})
        rows.append({"row": "plain onnxruntime loop", "chunks": len(chunk_texts), "wall": plain_wall, "cpu": plain_cpu,
                     "max_abs_difference": difference})  # fmt: skip
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedders", default=",".join(EMBEDDERS))
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    documents: list[Document] = []
    queries: list[str] = []
    for name in SETS:
        data = load_set(name, queries=args.queries // len(SETS))
        documents += [Document(source=f"{name}/{d['id']}", text=data.document_text(d)) for d in data.documents][
            : args.docs // len(SETS)
        ]
        queries += [q["text"] for q in data.queries]
    print(f"{len(documents)} documents, {len(queries)} queries; load average at start {os.getloadavg()[0]:.1f}")
    results: dict[str, list[dict[str, Any]]] = {}
    for name in args.embedders.split(","):
        results[name] = rows = await measure(name, documents, queries)
        print(f"\n{name}:  {'row':24} {'chunks/s':>9} {'CPU s':>7} {'chunks':>7} {'chars':>8}   (wall s)")
        for row in rows:
            if "ms" in row:
                print(f"      {row['row']:24} {row['ms']:9.1f} ms median per query")
            else:
                difference = row.get("max_abs_difference")
                extra = "" if difference is None else f"  max |Δ| vs OnnxEmbedder {difference:.1e}"
                print(
                    f"      {row['row']:24} {row['chunks'] / row['wall']:9.1f} {row['cpu']:7.1f} {row['chunks']:7} "
                    f"{row.get('chars', ''):>8}   ({row['wall']:.1f}){extra}",
                    flush=True,
                )
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    anyio.run(main)
