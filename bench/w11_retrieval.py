"""W11: retrieval quality on public sets with relevance judgements, Gecko's three modes beside LangChain.

    python bench/w11_retrieval.py [--sets scifact,cmrc2018] [--embedders e5,minilm] [--queries N]
                                  [--part all|dev|test] [--no-peer] [--cache DIR] [--json out.json]

Per set and embedder, the corpus is ingested by Gecko's `IngestionPipeline` (default splitter)
into `memory://` and searched with `Retriever` in each mode (lexical BM25, dense, hybrid by
reciprocal rank fusion, all at their defaults); and, for the peer, split by LangChain's RAG
tutorial default (`RecursiveCharacterTextSplitter(1000, 200)`) into its `InMemoryVectorStore`
and searched by similarity. Both sides get the very same embedder (and, through the cache, the
same vector for the same text). Each search asks for 30 chunks, which become a ranking of
documents (each at its best chunk's rank); reported: recall@5 and nDCG@10 over all queries of
the set (or `--queries` of them, evenly spread; `--part dev` or `test` keeps every other one of
those, the halves that defaults are tuned and reported on). `--lexical-only` runs no model: the
pipeline stores feature-hashing vectors and only the BM25 row is reported. The cache (default bench/.cache) only saves
embedding time between runs; W10 measures speed. On a busy machine, one process per set and
embedder with one thread each (`--threads 1`, `OMP_NUM_THREADS=1`) wastes the least CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from gecko.plugins.knowledge import Document, IngestionPipeline, Retriever
from gecko.plugins.models import Embedder
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.embedders import HashingEmbedder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_sets import (
    EMBEDDERS,
    PARTS,
    SETS,
    CachedEmbedder,
    RetrievalSet,
    documents_in_order,
    langchain_default_splitter,
    langchain_embeddings,
    load_set,
    ndcg_at,
    recall_at,
)

CACHE = Path(__file__).resolve().parent / ".cache"
DEPTH = 30
GECKO_MODES = ("lexical", "dense", "hybrid")


def score(data: RetrievalSet, rankings: list[list[str]]) -> dict[str, float]:
    """Mean recall@5 and nDCG@10 of one document ranking per query."""
    pairs = [(ranking, data.relevant[query["id"]]) for query, ranking in zip(data.queries, rankings, strict=True)]
    return {
        "recall@5": sum(recall_at(r, rel, 5) for r, rel in pairs) / len(pairs),
        "ndcg@10": sum(ndcg_at(r, rel, 10) for r, rel in pairs) / len(pairs),
    }


async def gecko_rankings(
    data: RetrievalSet, embedder: Embedder, modes: tuple[str, ...] = GECKO_MODES
) -> dict[str, Any]:
    store = MemoryStorage()
    documents = [Document(source=doc["id"], text=data.document_text(doc)) for doc in data.documents]
    summary = await IngestionPipeline(store, embedder, progress=False).run(documents)
    retriever = Retriever(store, embedder, top_k=DEPTH)
    result: dict[str, Any] = {"chunks": summary.chunks}
    for mode in modes:
        rankings = []
        for query in data.queries:
            hits = await retriever.search(query["text"], mode=mode)
            rankings.append(documents_in_order([hit.source for hit in hits]))
        result[mode] = score(data, rankings)
    return result


async def langchain_rankings(data: RetrievalSet, embedder: CachedEmbedder) -> dict[str, Any]:
    from langchain_core.vectorstores import InMemoryVectorStore

    chunks = langchain_default_splitter().create_documents(
        [data.document_text(doc) for doc in data.documents], metadatas=[{"source": doc["id"]} for doc in data.documents]
    )
    store = InMemoryVectorStore(langchain_embeddings(embedder))
    await store.aadd_documents(chunks)
    rankings = []
    for query in data.queries:
        hits = await store.asimilarity_search(query["text"], k=DEPTH)
        rankings.append(documents_in_order([hit.metadata["source"] for hit in hits]))
    return {"chunks": len(chunks), "dense": score(data, rankings)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--embedders", default=",".join(EMBEDDERS))
    parser.add_argument("--queries", type=int, default=None)
    parser.add_argument("--part", choices=PARTS, default="all", help="all queries, or the dev or test half")
    parser.add_argument("--no-peer", action="store_true", help="skip the LangChain rows")
    parser.add_argument("--lexical-only", action="store_true", help="only Gecko's BM25 row (no model is run)")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--threads", type=int, default=None, help="MiniLM's onnxruntime threads (default: cores)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    print(f"{'set':10} {'embedder':8} {'row':18} {'recall@5':>8} {'nDCG@10':>8}  chunks  queries")
    for set_name in args.sets.split(","):
        data = load_set(set_name, queries=args.queries, part=args.part)
        if args.lexical_only:
            found = await gecko_rankings(data, HashingEmbedder(), modes=("lexical",))
            metrics = found["lexical"]
            print(f"{set_name:10} {'-':8} {'gecko lexical':18} {metrics['recall@5']:8.4f} {metrics['ndcg@10']:8.4f}"
                  f"  {found['chunks']:6}  {len(data.queries)}")  # fmt: skip
            continue
        for embedder_name in args.embedders.split(","):
            embedder = CachedEmbedder(embedder_name, args.cache / set_name, args.threads)
            started = time.perf_counter()
            sides = {"gecko": await gecko_rankings(data, embedder)}
            if not args.no_peer:
                sides["langchain"] = await langchain_rankings(data, embedder)
            embedder.save()
            for side, found in sides.items():
                for mode in GECKO_MODES:
                    if mode in found:
                        metrics = found[mode]
                        row = f"{side} {mode}"
                        print(
                            f"{set_name:10} {embedder_name:8} {row:18} {metrics['recall@5']:8.4f} "
                            f"{metrics['ndcg@10']:8.4f}  {found['chunks']:6}  {len(data.queries)}",
                            flush=True,
                        )
                        results.append(
                            {"set": set_name, "embedder": embedder_name, "side": side, "mode": mode}
                            | {"chunks": found["chunks"], "queries": len(data.queries), **metrics}
                        )
            print(
                f"  ({embedder.embedded} texts embedded in {embedder.calls} calls, the rest from the cache; "
                f"{time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    anyio.run(main)
