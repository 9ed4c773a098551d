"""W9: Gecko's vector stores beside the raw chromadb / lancedb clients doing the same calls.

    python bench/w9_vector.py [--sizes 10000,100000] [--dim 384] [--queries 200] [--backends chroma,lancedb]
                              [--json out.json]

For each backend and size: upsert throughput (records/s; Gecko's plugin and the raw client each
fill their own collection from the same records, in the batches the plugin uses) and query
latency (top-10, without and with a metadata filter matching 10% of the records). Queries run
against the same collection for both sides, alternating Gecko and raw call by call so machine
noise hits both alike; the raw side uses exactly the native call and filter the plugin sends.
The table gives medians and Gecko's overhead as a ratio (Gecko / raw; acceptance: ≤ 1.2 for
query latency at 100 000 vectors). Needs gecko-ai-vector-chroma and gecko-ai-vector-lancedb.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from gecko.plugins.storage.factory import create_storage
from gecko.plugins.vector import Collection, VectorRecord, VectorStore
from gecko.plugins.vector.filters import parse_filter

TOP_K = 10
FILTER = {"group": 3}
GROUPS = 10


def make_records(count: int, dimension: int, seed: int) -> list[VectorRecord]:
    vectors = np.random.default_rng(seed).standard_normal((count, dimension), dtype=np.float32)
    return [
        VectorRecord(f"doc-{i:07d}", row.tolist(), f"document {i}", {"group": i % GROUPS, "source": "bench"})
        for i, row in enumerate(vectors)
    ]


class RawChroma:
    """The chromadb calls `gecko-vector-chroma` makes, issued directly."""

    def __init__(self, folder: Path) -> None:
        import chromadb
        from chromadb.config import Settings
        from gecko_vector_chroma import PREFIX, chroma_where

        self.client = chromadb.PersistentClient(path=str(folder), settings=Settings(anonymized_telemetry=False))
        self.prefix = PREFIX
        tree = parse_filter(FILTER)
        assert tree is not None
        self.where = chroma_where(tree)
        self.batch = self.client.get_max_batch_size()

    def upsert(self, name: str, records: list[VectorRecord]) -> None:
        collection = self.client.get_or_create_collection(
            self.prefix + name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
        for start in range(0, len(records), self.batch):
            batch = records[start : start + self.batch]
            collection.upsert(
                ids=[r.id for r in batch],
                embeddings=[list(r.vector) for r in batch],
                documents=[r.text for r in batch],
                metadatas=[dict(r.metadata) for r in batch],
            )

    def query_function(self, name: str, filtered: bool) -> Callable[[list[float]], Any]:
        collection = self.client.get_collection(self.prefix + name, embedding_function=None)
        where = self.where if filtered else None
        return lambda vector: collection.query(
            query_embeddings=[vector], n_results=TOP_K, where=where, include=["documents", "metadatas", "distances"]
        )

    def close(self) -> None:
        self.client.close()


class RawLance:
    """The lancedb calls `gecko-vector-lancedb` makes, issued directly on the same kind of table."""

    def __init__(self, folder: Path) -> None:
        from datetime import timedelta

        import lancedb
        import pyarrow as pa
        from gecko_vector_lancedb import ANN_THRESHOLD, REFINE_FACTOR, filter_document, lance_where, table_schema
        from lancedb.index import IvfPq

        self.pa = pa
        self.ann_threshold, self.index_config = ANN_THRESHOLD, IvfPq
        self.connection = lancedb.connect(str(folder), read_consistency_interval=timedelta(0))
        self.filter_document, self.schema, self.refine_factor = filter_document, table_schema, REFINE_FACTOR
        tree = parse_filter(FILTER)
        assert tree is not None
        self.where = lance_where(tree)

    def upsert(self, name: str, records: list[VectorRecord]) -> None:
        batch = self.pa.Table.from_pydict(
            {
                "id": [r.id for r in records],
                "vector": [r.vector for r in records],
                "text": [r.text for r in records],
                "metadata": [json.dumps(dict(r.metadata)) for r in records],
                "filter": [self.filter_document(r.metadata) for r in records],
            },
            schema=self.schema(len(records[0].vector)),
        )
        table = self.connection.create_table(name, batch, schema=batch.schema)
        if table.count_rows() >= self.ann_threshold:  # the plugin indexes past its threshold: so does this side
            table.create_index("vector", config=self.index_config(distance_type="cosine"))

    def query_function(self, name: str, filtered: bool) -> Callable[[list[float]], Any]:
        table = self.connection.open_table(name)

        def query(vector: list[float]) -> Any:
            search = table.search(vector, vector_column_name="vector").distance_type("cosine").limit(TOP_K)
            search = search.refine_factor(self.refine_factor)
            if filtered:
                search = search.where(self.where, prefilter=True)
            return search.select(["id", "text", "metadata", "_distance"]).to_arrow()

        return query

    def close(self) -> None:
        pass


RAW = {"chroma": RawChroma, "lancedb": RawLance}


async def bench_backend(backend: str, size: int, dimension: int, queries: int) -> dict[str, Any]:
    records = make_records(size, dimension, seed=size)
    probes = np.random.default_rng(1).standard_normal((queries, dimension), dtype=np.float32).tolist()
    with tempfile.TemporaryDirectory(prefix=f"w9-{backend}-") as folder:
        store = await create_storage(f"{backend}://{folder}/db", kind="vector")
        raw = RAW[backend](Path(folder) / "db")
        try:
            return await _measure(store, raw, records, probes)
        finally:
            await store.close()
            raw.close()


async def _measure(
    store: VectorStore, raw: Any, records: list[VectorRecord], probes: list[list[float]]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    started = time.perf_counter()
    raw.upsert("raw", records)
    result["upsert_raw_per_s"] = len(records) / (time.perf_counter() - started)
    docs: Collection = store.collection("gecko")
    started = time.perf_counter()
    await docs.upsert(records)
    result["upsert_gecko_per_s"] = len(records) / (time.perf_counter() - started)
    for filtered in (False, True):
        where = FILTER if filtered else None
        raw_query = raw.query_function("gecko", filtered)
        await docs.query(probes[0], top_k=TOP_K, where=where)  # warm both sides up
        raw_query(probes[0])
        gecko_times, raw_times = [], []
        for index, probe in enumerate(probes):
            order = ("gecko", "raw") if index % 2 else ("raw", "gecko")
            for side in order:
                started = time.perf_counter()
                if side == "gecko":
                    hits = await docs.query(probe, top_k=TOP_K, where=where)
                    gecko_times.append(time.perf_counter() - started)
                    assert len(hits) == TOP_K
                else:
                    raw_query(probe)
                    raw_times.append(time.perf_counter() - started)
        label = "filtered" if filtered else "plain"
        result[f"query_{label}_gecko_ms"] = statistics.median(gecko_times) * 1000
        result[f"query_{label}_raw_ms"] = statistics.median(raw_times) * 1000
        result[f"query_{label}_ratio"] = statistics.median(gecko_times) / statistics.median(raw_times)
    result["upsert_ratio"] = result["upsert_raw_per_s"] / result["upsert_gecko_per_s"]
    return result


def _table(rows: list[dict[str, Any]]) -> str:
    header = (
        "backend", "size", "upsert/s gecko", "raw", "ratio",
        "query ms gecko", "raw", "ratio", "filtered ms gecko", "raw", "ratio",
    )  # fmt: skip
    lines = [header]
    for row in rows:
        lines.append(
            (
                row["backend"],
                f"{row['size']:,}",
                f"{row['upsert_gecko_per_s']:,.0f}",
                f"{row['upsert_raw_per_s']:,.0f}",
                f"{row['upsert_ratio']:.2f}",
                f"{row['query_plain_gecko_ms']:.2f}",
                f"{row['query_plain_raw_ms']:.2f}",
                f"{row['query_plain_ratio']:.2f}",
                f"{row['query_filtered_gecko_ms']:.2f}",
                f"{row['query_filtered_raw_ms']:.2f}",
                f"{row['query_filtered_ratio']:.2f}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)) for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backends", default="chroma,lancedb")
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    rows = []
    for size in (int(s) for s in arguments.sizes.split(",")):
        for backend in arguments.backends.split(","):
            row = {"backend": backend, "size": size, "dim": arguments.dim, "top_k": TOP_K}
            row |= anyio.run(bench_backend, backend, size, arguments.dim, arguments.queries)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(_table(rows))
    if arguments.json:
        arguments.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
