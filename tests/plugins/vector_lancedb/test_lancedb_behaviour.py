"""What `gecko-vector-lancedb` promises beyond the shared suite: Arrow tables, the ANN index, full text."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
import pytest
from gecko_vector_lancedb import LanceDBVectorStore, lance_where
from lancedb.table import LanceTable

from gecko.errors import InvalidStorageURLError
from gecko.plugins.storage.factory import create_storage
from gecko.plugins.vector import VectorRecord
from gecko.plugins.vector.filters import parse_filter
from gecko.testing.conformance.vector import SCORE_TOLERANCE, cosine

pytestmark = pytest.mark.anyio

DIMENSION = 16


def _records(count: int) -> list[VectorRecord]:
    rng = random.Random(1)
    return [
        VectorRecord(
            f"r{i:04d}",
            [rng.gauss(0, 1) for _ in range(DIMENSION)],
            f"document {i} about {'cats' if i % 4 == 0 else 'dogs'}",
            {"group": i % 10, "lang": "zh" if i % 2 else "en"},
        )
        for i in range(count)
    ]


async def test_each_collection_is_an_arrow_table_with_a_fixed_size_vector(tmp_path: Path) -> None:
    async with await create_storage(f"lancedb://{tmp_path}/db", kind="vector") as store:
        await store.collection("docs").upsert(_records(3))
    table = lancedb.connect(f"{tmp_path}/db").open_table("docs")
    assert table.schema.field("vector").type == pa.list_(pa.float32(), DIMENSION)
    assert table.schema.names == ["id", "vector", "text", "metadata", "filter"]
    assert table.count_rows() == 3


async def test_ann_index_is_built_past_the_threshold_and_scores_stay_exact(tmp_path: Path) -> None:
    records = _records(600)
    async with await create_storage(f"lancedb://{tmp_path}/db?ann_threshold=500", kind="vector") as store:
        assert isinstance(store, LanceDBVectorStore)
        docs = store.collection("docs")
        await docs.upsert(records[:400])
        assert not lancedb.connect(f"{tmp_path}/db").open_table("docs").list_indices()
        await docs.upsert(records[400:])
        indexes = lancedb.connect(f"{tmp_path}/db").open_table("docs").list_indices()
        assert [index.columns for index in indexes] == [["vector"]]
        for target in (records[10], records[550]):
            hits = await docs.query(list(target.vector), top_k=5)
            assert hits[0].id == target.id
            by_id = {r.id: r for r in records}
            for hit in hits:
                exact = cosine(list(target.vector), list(by_id[hit.id].vector))
                assert math.isclose(hit.score, exact, abs_tol=SCORE_TOLERANCE)
        filtered = await docs.query(list(records[3].vector), top_k=5, where={"group": 7, "lang": "zh"})
        assert len(filtered) == 5
        assert all(hit.metadata == {"group": 7, "lang": "zh"} for hit in filtered)


async def test_full_text_search_uses_bm25_with_filters_and_sees_later_writes(tmp_path: Path) -> None:
    async with await create_storage(f"lancedb://{tmp_path}/db", kind="vector") as store:
        assert isinstance(store, LanceDBVectorStore)
        docs = store.collection("docs")
        await docs.upsert(_records(40))
        hits = await store.search_text("docs", "cats", top_k=20)
        assert sorted(hit.id for hit in hits) == [f"r{i:04d}" for i in range(0, 40, 4)]
        assert all(hit.score > 0 for hit in hits)
        assert [hit.id for hit in await store.search_text("docs", "cats", where={"group": 4})] == [
            "r0004",
            "r0024",
        ]
        await docs.upsert([VectorRecord("late", [1.0] * DIMENSION, "a note about giraffes")])
        assert [hit.id for hit in await store.search_text("docs", "giraffes")] == ["late"]
        assert await store.search_text("absent", "cats") == []


async def test_lance_calls_run_in_worker_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def recording(method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: LanceTable, *args: Any, **kwargs: Any) -> Any:
            seen.append(threading.get_ident())
            return method(self, *args, **kwargs)

        return wrapper

    for name in ("count_rows", "delete", "list_indices"):
        monkeypatch.setattr(LanceTable, name, recording(getattr(LanceTable, name)))
    async with await create_storage(f"lancedb://{tmp_path}/db", kind="vector") as store:
        docs = store.collection("docs")
        await docs.upsert(_records(10))
        await docs.count(where={"group": 1})
        await docs.delete(["r0001"])
    assert seen
    assert loop_thread not in seen


async def test_a_second_store_on_the_same_folder_sees_new_writes(tmp_path: Path) -> None:
    async with (
        await create_storage(f"lancedb://{tmp_path}/db", kind="vector") as first,
        await create_storage(f"lancedb://{tmp_path}/db", kind="vector") as second,
    ):
        await first.collection("docs").upsert(_records(5))
        assert await second.collection("docs").count() == 5
        await first.collection("docs").upsert(_records(8))
        assert await second.collection("docs").count() == 8
        assert len(await second.collection("docs").query([1.0] * DIMENSION, top_k=10)) == 8


async def test_seed_quick_start_url_opens_a_store_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    vector_store = await create_storage("lancedb://./my_knowledge_db")
    assert isinstance(vector_store, LanceDBVectorStore)
    await vector_store.collection("kb").upsert([VectorRecord("policy", [0.2, 0.9], "报销政策")])
    await vector_store.close()
    assert (tmp_path / "my_knowledge_db" / "kb.lance").is_dir()


@pytest.mark.parametrize(
    "url", ["lancedb://", "lancedb://./db?ann_threshold=0", "lancedb://./db?ann_threshold=x", "lancedb://./db?k=1"]
)
async def test_malformed_urls_are_rejected(url: str) -> None:
    with pytest.raises(InvalidStorageURLError):
        await create_storage(url)


def test_filters_compile_to_typed_sql_that_quotes_strings() -> None:
    where = parse_filter({"name": {"$ne": "O'Brien"}, "year": {"$in": [2020, 2021]}})
    assert where is not None
    name, year = b"name".hex(), b"year".hex()
    assert lance_where(where) == (
        f"((json_get_string(filter, 's_{name}') IS NULL OR json_get_string(filter, 's_{name}') <> 'O''Brien')"
        f" AND json_get_float(filter, 'n_{year}') IN (2020.0, 2021.0))"
    )


async def test_quotes_and_sql_in_values_are_data(tmp_path: Path) -> None:
    async with await create_storage(f"lancedb://{tmp_path}/db", kind="vector") as store:
        docs = store.collection("docs")
        tricky = "x' OR 1=1 --"
        await docs.upsert([VectorRecord("a", [1.0, 0.0], "", {"k": tricky}), VectorRecord("b", [0.0, 1.0])])
        assert [r.id for r in await docs.get(where={"k": tricky})] == ["a"]
        assert [r.id for r in await docs.get(["a' OR '1'='1"])] == []
        await docs.delete(["a' OR '1'='1"])
        assert await docs.count() == 2
