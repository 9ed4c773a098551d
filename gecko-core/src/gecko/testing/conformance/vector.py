"""`VectorStoreConformance`: the vector store contract as a pytest class every backend subclasses.

Subclass it in a test module and provide the fixture `vector_url`; pytest then checks the whole
contract against your backend::

    import pytest
    from gecko.testing.conformance import VectorStoreConformance

    class TestMyVectors(VectorStoreConformance):
        @pytest.fixture
        def vector_url(self, tmp_path):
            return f"myvectors:///{tmp_path}/db"

The suite opens stores with `create_storage(vector_url, kind="vector")`, so the backend must be
installed (its entry point registered). A backend that is not registered overrides
`open_vector_store` instead: a fixture returning an async function that opens a new handle on
the same data.

Scores are checked against cosine similarity computed here in Python, so every backend that
passes gives the same ranking and the same scores (within `SCORE_TOLERANCE`) for the same data.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import anyio
import pytest

from gecko.errors import (
    DimensionMismatchError,
    InvalidFilterError,
    InvalidKeyError,
    InvalidValueError,
    StorageClosedError,
    VectorStoreError,
)
from gecko.plugins.storage.factory import create_storage
from gecko.plugins.vector import MAX_TOP_K, Collection, VectorRecord, VectorStore
from gecko.plugins.vector.filters import matches, parse_filter

__all__ = ("VectorStoreConformance", "SCORE_TOLERANCE", "FILTERS", "INVALID_FILTERS", "sample_records")

Opener = Callable[[], Awaitable[VectorStore]]

SCORE_TOLERANCE = 5e-5
"""How far a score may be from the exact cosine similarity: two backends then agree within 1e-4."""
DIMENSION = 8
LANGUAGES = ("zh", "en", "fr")


def _random_vector(rng: random.Random, dimension: int = DIMENSION) -> list[float]:
    return [rng.uniform(-1.0, 1.0) for _ in range(dimension)]


def cosine(a: list[float], b: list[float]) -> float:
    """The cosine similarity of two vectors, the contract's score."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def sample_records(count: int, *, seed: int = 7, dimension: int = DIMENSION, prefix: str = "r") -> list[VectorRecord]:
    """`count` records with random vectors and metadata of every allowed type; some fields are missing."""
    rng = random.Random(seed)
    records = []
    for i in range(count):
        metadata: dict[str, Any] = {"i": i, "year": 2000 + i % 25, "weight": i / 10, "flag": i % 2 == 0}
        if i % 7:
            metadata["lang"] = LANGUAGES[i % 3]
        if i % 5:
            metadata["tags"] = [f"t{i % 3}", "all"]
        records.append(VectorRecord(f"{prefix}{i:05d}", _random_vector(rng, dimension), f"text {i}", metadata))
    return records


FILTERS: dict[str, dict[str, Any]] = {
    "eq-str": {"lang": "zh"},
    "eq-explicit": {"lang": {"$eq": "en"}},
    "eq-int": {"year": 2010},
    "eq-float-matches-int": {"year": 2010.0},
    "eq-float": {"weight": 2.5},
    "eq-bool": {"flag": True},
    "bool-is-not-int": {"i": True},
    "str-is-not-number": {"year": "2010"},
    "ne-includes-missing": {"lang": {"$ne": "zh"}},
    "in": {"lang": {"$in": ["zh", "fr"]}},
    "in-numbers": {"year": {"$in": [2001, 2002.0, 2024]}},
    "nin-includes-missing": {"lang": {"$nin": ["zh", "fr"]}},
    "gt": {"year": {"$gt": 2020}},
    "gte": {"year": {"$gte": 2020}},
    "lt-float": {"weight": {"$lt": 1.5}},
    "lte": {"year": {"$lte": 2003}},
    "range": {"year": {"$gte": 2005, "$lt": 2010}},
    "range-on-str-matches-nothing": {"lang": {"$gt": 0}},
    "contains": {"tags": {"$contains": "t1"}},
    "not-contains-includes-missing": {"tags": {"$not_contains": "t1"}},
    "two-fields": {"lang": "en", "flag": False},
    "and": {"$and": [{"lang": "en"}, {"year": {"$gt": 2010}}]},
    "or": {"$or": [{"lang": "fr"}, {"year": {"$lt": 2002}}]},
    "single-child-and": {"$and": [{"lang": "fr"}]},
    "not-eq": {"$not": {"lang": "zh"}},
    "not-range-excludes-missing": {"$not": {"weight": {"$gt": 3}}},
    "not-and": {"$not": {"$and": [{"lang": "en"}, {"flag": True}]}},
    "not-or": {"$not": {"$or": [{"lang": "en"}, {"tags": {"$contains": "t0"}}]}},
    "double-not": {"$not": {"$not": {"lang": "zh"}}},
    "nested": {"$or": [{"$and": [{"lang": "zh"}, {"flag": True}]}, {"tags": {"$contains": "t2"}, "year": 2012}]},
    "no-match": {"lang": "de"},
    "missing-field": {"absent": "x"},
}

INVALID_FILTERS: dict[str, Any] = {
    "not-a-dict": ["lang", "zh"],
    "unknown-operator": {"lang": {"$regex": "z.*"}},
    "unknown-combinator": {"$xor": [{"a": 1}]},
    "empty-and": {"$and": []},
    "or-not-a-list": {"$or": {"a": 1}},
    "list-value": {"tags": ["a", "b"]},
    "range-on-string": {"year": {"$gt": "2000"}},
    "range-on-bool": {"year": {"$gt": True}},
    "empty-in": {"lang": {"$in": []}},
    "mixed-in": {"lang": {"$in": ["zh", 1]}},
    "nan": {"weight": float("nan")},
    "none-value": {"lang": None},
    "contains-number": {"tags": {"$contains": 1}},
    "empty-operators": {"lang": {}},
    "not-a-dict-in-not": {"$not": "x"},
}


class VectorStoreConformance:
    """The vector store contract; subclass it and provide `vector_url` (or override `open_vector_store`)."""

    pytestmark = pytest.mark.anyio

    batch_size = 10_000
    """How many records the large-batch check writes in one upsert."""

    concurrent_writers = 20
    """How many tasks upsert at once in the concurrency check."""

    @pytest.fixture
    def vector_url(self) -> str:
        """The URL of a fresh, empty store for one test. Subclasses override this fixture."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `vector_url` fixture (or override `open_vector_store`)"
        )

    @pytest.fixture
    def open_vector_store(self, vector_url: str) -> Opener:
        """An async function opening a new handle on the test's store; each call is a new handle."""

        async def open_() -> VectorStore:
            return await create_storage(vector_url, kind="vector")

        return open_

    @pytest.fixture
    async def store(self, open_vector_store: Opener) -> AsyncIterator[VectorStore]:
        """An open store, closed after the test."""
        opened = await open_vector_store()
        try:
            yield opened
        finally:
            await opened.close()

    @pytest.fixture
    async def filled(self, store: VectorStore) -> Collection:
        """Collection `docs` holding `sample_records(60)`."""
        docs = store.collection("docs")
        await docs.upsert(sample_records(60))
        return docs

    # --- records -------------------------------------------------------------------

    async def test_upserted_records_read_back_by_id(self, store: VectorStore) -> None:
        records = sample_records(10)
        docs = store.collection("docs")
        await docs.upsert(records)
        wanted = [records[7].id, "absent", records[2].id, records[7].id]
        found = await docs.get(wanted)
        assert [r.id for r in found] == [records[7].id, records[2].id]
        for got, expected in zip(found, (records[7], records[2]), strict=True):
            assert got.text == expected.text
            assert dict(got.metadata) == dict(expected.metadata)
            assert list(got.vector) == pytest.approx(expected.vector, abs=1e-6)

    async def test_metadata_types_round_trip_exactly(self, store: VectorStore) -> None:
        metadata: dict[str, Any] = {"s": "x", "i": 3, "f": 1.0, "neg": -2.5, "t": True, "b": False}
        metadata |= {"l": ["a", "b"], "big": 2**40}
        docs = store.collection("docs")
        await docs.upsert([VectorRecord("a", [1.0, 0.0], "", metadata)])
        [got] = await docs.get(["a"])
        assert dict(got.metadata) == metadata
        assert {k: type(v) for k, v in got.metadata.items()} == {k: type(v) for k, v in metadata.items()}
        assert got.text == ""

    async def test_upsert_replaces_records_with_the_same_id(self, store: VectorStore) -> None:
        docs = store.collection("docs")
        await docs.upsert([VectorRecord("a", [1.0, 0.0], "old", {"v": 1}), VectorRecord("b", [0.0, 1.0], "b")])
        await docs.upsert([VectorRecord("a", [0.0, 1.0], "new", {"w": "x"})])
        assert await docs.count() == 2
        [got] = await docs.get(["a"])
        assert (got.text, dict(got.metadata)) == ("new", {"w": "x"})
        assert list(got.vector) == pytest.approx([0.0, 1.0])
        assert await docs.count(where={"v": 1}) == 0

    async def test_duplicate_ids_in_one_batch_keep_the_last(self, store: VectorStore) -> None:
        docs = store.collection("docs")
        await docs.upsert([VectorRecord("a", [1.0, 0.0], "first"), VectorRecord("a", [0.0, 1.0], "last")])
        assert [r.text for r in await docs.get(["a"])] == ["last"]
        assert await docs.count() == 1

    async def test_unicode_text_metadata_and_ids_round_trip(self, store: VectorStore) -> None:
        docs = store.collection("docs")
        metadata: dict[str, Any] = {"语言": "中文", "标签": ["知识库", "检索"], "作者": "张三 🦎"}
        text = "公司的报销政策:差旅费用需在三十天内提交。\n第二行 — émoji 🦎"
        await docs.upsert([VectorRecord("文档-1", [0.5, 0.5, 0.1], text, metadata)])
        [got] = await docs.get(["文档-1"])
        assert (got.text, dict(got.metadata)) == (text, metadata)
        [hit] = await docs.query([0.5, 0.5, 0.1], where={"语言": "中文", "标签": {"$contains": "检索"}})
        assert (hit.id, hit.text) == ("文档-1", text)
        assert await docs.count(where={"作者": "张三 🦎"}) == 1

    async def test_get_by_filter_is_sorted_by_id_and_get_all_without_arguments(self, filled: Collection) -> None:
        records = sample_records(60)
        assert [r.id for r in await filled.get()] == [r.id for r in records]
        assert [r.id for r in await filled.get(where={"lang": "fr"})] == [
            r.id for r in records if r.metadata.get("lang") == "fr"
        ]
        both = await filled.get([records[9].id, records[8].id, records[2].id], where={"flag": True})
        assert [r.id for r in both] == [records[8].id, records[2].id]

    # --- queries and scores ----------------------------------------------------------

    async def test_query_ranks_by_cosine_similarity_with_exact_scores(self, filled: Collection) -> None:
        records = sample_records(60)
        query = _random_vector(random.Random(99))
        hits = await filled.query(query, top_k=10)
        expected = sorted(records, key=lambda r: -cosine(query, list(r.vector)))[:10]
        assert [hit.id for hit in hits] == [r.id for r in expected]
        for hit, record in zip(hits, expected, strict=True):
            assert hit.score == pytest.approx(cosine(query, list(record.vector)), abs=SCORE_TOLERANCE)
            assert (hit.text, dict(hit.metadata)) == (record.text, dict(record.metadata))

    async def test_scores_are_cosine_similarity_in_minus_one_to_one(self, store: VectorStore) -> None:
        docs = store.collection("docs")
        await docs.upsert(
            [
                VectorRecord("same", [2.0, 0.0, 0.0]),
                VectorRecord("diagonal", [1.0, 1.0, 0.0]),
                VectorRecord("orthogonal", [0.0, 3.0, 0.0]),
                VectorRecord("opposite", [-0.5, 0.0, 0.0]),
            ]
        )
        hits = await docs.query([10.0, 0.0, 0.0], top_k=4)
        assert [hit.id for hit in hits] == ["same", "diagonal", "orthogonal", "opposite"]
        assert [hit.score for hit in hits] == pytest.approx([1.0, math.sqrt(0.5), 0.0, -1.0], abs=SCORE_TOLERANCE)

    async def test_top_k_larger_than_the_collection_returns_everything(self, filled: Collection) -> None:
        hits = await filled.query(_random_vector(random.Random(3)), top_k=1000)
        assert len(hits) == 60
        assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)

    @pytest.mark.parametrize("top_k", [0, -1, True, 1.5, MAX_TOP_K + 1])
    async def test_invalid_top_k_is_rejected(self, filled: Collection, top_k: Any) -> None:
        with pytest.raises(VectorStoreError):
            await filled.query([1.0] * DIMENSION, top_k=top_k)

    # --- filters -------------------------------------------------------------------

    @pytest.mark.parametrize("name", list(FILTERS))
    async def test_filter_selects_what_the_language_defines(self, filled: Collection, name: str) -> None:
        where = FILTERS[name]
        records = sample_records(60)
        tree = parse_filter(where)
        expected = [r for r in records if matches(tree, r.metadata)]
        assert [r.id for r in await filled.get(where=where)] == [r.id for r in expected]
        assert await filled.count(where=where) == len(expected)
        query = _random_vector(random.Random(5))
        hits = await filled.query(query, top_k=5, where=where)
        best = sorted(expected, key=lambda r: -cosine(query, list(r.vector)))[:5]
        assert [hit.id for hit in hits] == [r.id for r in best]

    async def test_filtered_top_k_is_full_when_enough_records_match(self, store: VectorStore) -> None:
        # The 5 matching records are the least similar of 300: a store that filters after
        # taking the top-k would return none of them.
        docs = store.collection("docs")
        near = [VectorRecord(f"near{i:03d}", [1.0, 0.01 * i, 0.0], "", {"kind": "near"}) for i in range(295)]
        far = [VectorRecord(f"far{i}", [-1.0, 0.1 * i, 0.0], "", {"kind": "far"}) for i in range(5)]
        await docs.upsert(near + far)
        hits = await docs.query([1.0, 0.0, 0.0], top_k=5, where={"kind": "far"})
        assert sorted(hit.id for hit in hits) == [f"far{i}" for i in range(5)]
        assert all(hit.score < 0 for hit in hits)

    @pytest.mark.parametrize("name", list(INVALID_FILTERS))
    async def test_invalid_filter_is_rejected_by_every_operation(self, filled: Collection, name: str) -> None:
        where = INVALID_FILTERS[name]
        with pytest.raises(InvalidFilterError):
            await filled.query([1.0] * DIMENSION, where=where)
        with pytest.raises(InvalidFilterError):
            await filled.get(where=where)
        with pytest.raises(InvalidFilterError):
            await filled.count(where=where)
        with pytest.raises(InvalidFilterError):
            await filled.delete(where=where)
        assert await filled.count() == 60

    # --- deleting ------------------------------------------------------------------

    async def test_delete_by_ids_ignores_absent_ones(self, filled: Collection) -> None:
        records = sample_records(60)
        await filled.delete([records[0].id, "absent", records[1].id])
        await filled.delete(["absent", "also-absent"])
        await filled.delete([])
        assert await filled.count() == 58
        assert await filled.get([records[0].id, records[1].id]) == []

    async def test_delete_by_filter_and_by_ids_with_filter(self, filled: Collection) -> None:
        records = sample_records(60)
        await filled.delete(where={"lang": "zh"})
        assert await filled.count(where={"lang": "zh"}) == 0
        remaining = [r for r in records if r.metadata.get("lang") != "zh"]
        assert await filled.count() == len(remaining)
        await filled.delete([r.id for r in remaining[:10]], where={"flag": True})
        survivors = [r.id for r in remaining if not (r in remaining[:10] and r.metadata["flag"])]
        assert [r.id for r in await filled.get()] == survivors
        await filled.delete(where={"lang": "no such language"})
        assert await filled.count() == len(survivors)

    async def test_delete_without_ids_or_filter_is_refused(self, filled: Collection) -> None:
        with pytest.raises(VectorStoreError, match="drop_collection"):
            await filled.delete()
        assert await filled.count() == 60

    async def test_deleted_record_leaves_queries(self, filled: Collection) -> None:
        records = sample_records(60)
        target = records[11]
        [before] = await filled.query(list(target.vector), top_k=1)
        assert before.id == target.id
        await filled.delete([target.id])
        hits = await filled.query(list(target.vector), top_k=60)
        assert target.id not in [hit.id for hit in hits]
        assert len(hits) == 59

    # --- collections ---------------------------------------------------------------

    async def test_collections_are_separate_namespaces(self, store: VectorStore) -> None:
        first, second = store.collection("first"), store.collection("second")
        await first.upsert([VectorRecord("same-id", [1.0, 0.0], "in first")])
        await second.upsert([VectorRecord("same-id", [0.0, 1.0, 0.0], "in second")])
        assert [r.text for r in await first.get(["same-id"])] == ["in first"]
        assert [r.text for r in await second.get(["same-id"])] == ["in second"]
        assert (await first.dimension(), await second.dimension()) == (2, 3)
        assert await store.list_collections() == ["first", "second"]
        await first.delete(["same-id"])
        assert await second.count() == 1

    async def test_drop_collection_removes_it_and_frees_the_name(self, store: VectorStore) -> None:
        docs = store.collection("docs")
        await docs.upsert([VectorRecord("a", [1.0, 0.0])])
        assert await store.drop_collection("docs") is True
        assert await store.drop_collection("docs") is False
        assert await store.list_collections() == []
        assert await docs.count() == 0
        assert await docs.dimension() is None
        await docs.upsert([VectorRecord("b", [1.0, 0.0, 0.0, 0.0])])
        assert await docs.dimension() == 4
        assert [r.id for r in await docs.get()] == ["b"]

    @pytest.mark.parametrize("name", ["", "has space", "a/b", "-leading", "trailing_", "x" * 64, "点", 7])
    async def test_invalid_collection_name_is_rejected(self, store: VectorStore, name: Any) -> None:
        with pytest.raises(VectorStoreError, match="collection name"):
            store.collection(name)
        with pytest.raises(VectorStoreError, match="collection name"):
            await store.drop_collection(name)

    # --- dimensions ----------------------------------------------------------------

    async def test_dimension_mismatch_names_both_numbers_and_writes_nothing(self, store: VectorStore) -> None:
        docs = store.collection("docs")
        await docs.upsert([VectorRecord("a", [1.0, 0.0, 0.0])])
        with pytest.raises(DimensionMismatchError, match=r"dimension 3.*dimension 4") as raised:
            await docs.upsert([VectorRecord("b", [1.0, 0.0, 0.0]), VectorRecord("c", [1.0, 0.0, 0.0, 0.0])])
        assert (raised.value.expected, raised.value.actual) == (3, 4)
        with pytest.raises(DimensionMismatchError, match=r"dimension 3.*dimension 2"):
            await docs.query([1.0, 0.0])
        assert [r.id for r in await docs.get()] == ["a"]

    async def test_dimension_mismatch_within_the_first_batch(self, store: VectorStore) -> None:
        docs = store.collection("docs")
        with pytest.raises(DimensionMismatchError):
            await docs.upsert([VectorRecord("a", [1.0, 0.0]), VectorRecord("b", [1.0, 0.0, 0.0])])
        assert await docs.count() == 0
        assert await store.list_collections() == []

    async def test_declared_dimension_is_enforced(self, store: VectorStore) -> None:
        docs = store.collection("docs", dimension=4)
        assert await docs.dimension() == 4
        with pytest.raises(DimensionMismatchError, match=r"dimension 4.*dimension 3"):
            await docs.upsert([VectorRecord("a", [1.0, 0.0, 0.0])])
        with pytest.raises(DimensionMismatchError):
            await docs.query([1.0, 0.0, 0.0])
        await docs.upsert([VectorRecord("a", [1.0, 0.0, 0.0, 0.0])])
        with pytest.raises(DimensionMismatchError):
            await store.collection("docs", dimension=5).dimension()
        with pytest.raises(VectorStoreError):
            store.collection("docs", dimension=0)

    # --- invalid input -------------------------------------------------------------

    @pytest.mark.parametrize(
        "vector",
        [
            [],
            [float("nan"), 1.0],
            [float("inf"), 1.0],
            [0.0, 0.0],
            ["a", "b"],
            "ab",
            None,
            [1e200, 1e200],
            [10**400],
            [True, False],
            [1.0, True],
            [Decimal("1"), 1.0],
            {"x": 1.0, "y": 1.0},
        ],
        ids=[
            "empty",
            "nan",
            "inf",
            "zero",
            "strings",
            "string",
            "none",
            "overflow",
            "int-beyond-float",
            "bools",
            "a-bool",
            "decimal",
            "mapping",
        ],
    )
    async def test_invalid_vector_is_rejected_and_nothing_is_stored(self, store: VectorStore, vector: Any) -> None:
        docs = store.collection("docs")
        with pytest.raises(InvalidValueError):
            await docs.upsert([VectorRecord("ok", [1.0, 1.0]), VectorRecord("bad", vector)])
        with pytest.raises(InvalidValueError):
            await docs.query(vector)
        assert await docs.count() == 0

    @pytest.mark.parametrize(
        "metadata",
        [
            {"none": None},
            {"dict": {"a": 1}},
            {"mixed-list": ["a", 1]},
            {"empty-list": []},
            {"bytes": b"x"},
            {"nan": float("nan")},
            {"$reserved": 1},
            {"": 1},
            {1: "non-string key"},
            {"surrogate": "a\ud800"},
        ],
        ids=lambda m: next(iter(m)) if isinstance(next(iter(m)), str) and next(iter(m)) else "bad-key",
    )
    async def test_invalid_metadata_is_rejected_and_nothing_is_stored(self, store: VectorStore, metadata: Any) -> None:
        docs = store.collection("docs")
        with pytest.raises(InvalidValueError):
            await docs.upsert([VectorRecord("ok", [1.0, 1.0]), VectorRecord("bad", [1.0, 0.0], "", metadata)])
        assert await docs.count() == 0

    @pytest.mark.parametrize("record_id", ["", "a\nb", "x" * 513, 7, None])
    async def test_invalid_id_is_rejected(self, store: VectorStore, record_id: Any) -> None:
        docs = store.collection("docs")
        with pytest.raises(InvalidKeyError):
            await docs.upsert([VectorRecord(record_id, [1.0, 0.0])])
        with pytest.raises(InvalidKeyError):
            await docs.get([record_id])
        with pytest.raises(InvalidKeyError):
            await docs.delete([record_id])
        assert await docs.count() == 0

    async def test_non_records_and_bad_text_are_rejected(self, store: VectorStore) -> None:
        docs = store.collection("docs")
        with pytest.raises(InvalidValueError):
            await docs.upsert([{"id": "a", "vector": [1.0]}])  # type: ignore[list-item]
        with pytest.raises(InvalidValueError):
            await docs.upsert([VectorRecord("a", [1.0], 5)])  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError):
            await docs.upsert([VectorRecord("a", [1.0], "lone \udc00")])
        with pytest.raises(VectorStoreError):
            await docs.get("a-string-not-a-list")
        assert await docs.count() == 0

    # --- empty stores --------------------------------------------------------------

    async def test_empty_store_answers_every_read(self, store: VectorStore) -> None:
        docs = store.collection("never-written")
        assert await docs.query([1.0, 0.0], top_k=5) == []
        assert await docs.query([1.0, 0.0], where={"lang": "zh"}) == []
        assert await docs.get() == []
        assert await docs.get(["a"]) == []
        assert await docs.count() == 0
        assert await docs.count(where={"lang": "zh"}) == 0
        assert await docs.dimension() is None
        await docs.delete(["absent"])
        await docs.delete(where={"lang": "zh"})
        assert await store.list_collections() == []
        assert await store.drop_collection("never-written") is False

    async def test_collection_emptied_by_delete_still_answers(self, store: VectorStore) -> None:
        docs = store.collection("docs")
        await docs.upsert([VectorRecord("a", [1.0, 0.0], "", {"k": 1})])
        await docs.delete(["a"])
        assert await docs.query([1.0, 0.0]) == []
        assert await docs.query([1.0, 0.0], where={"k": 1}) == []
        assert await docs.count() == 0
        assert await docs.dimension() == 2

    # --- scale and concurrency -----------------------------------------------------

    async def test_large_batch_upserts_in_one_call(self, store: VectorStore) -> None:
        records = sample_records(self.batch_size, seed=11)
        docs = store.collection("big")
        await docs.upsert(records)
        assert await docs.count() == self.batch_size
        assert await docs.count(where={"lang": "fr", "flag": True}) == sum(
            1 for r in records if r.metadata.get("lang") == "fr" and r.metadata["flag"]
        )
        target = records[self.batch_size // 2]
        [hit] = await docs.query(list(target.vector), top_k=1)
        assert hit.id == target.id
        assert hit.score == pytest.approx(1.0, abs=SCORE_TOLERANCE)
        hits = await docs.query(list(target.vector), top_k=5, where={"year": 2003, "lang": "en"})
        assert len(hits) == 5
        assert all(h.metadata["year"] == 2003 and h.metadata["lang"] == "en" for h in hits)

    async def test_concurrent_upserts_from_many_tasks_lose_nothing(self, store: VectorStore) -> None:
        docs = store.collection("docs")
        per_task = 25

        async def writer(task: int) -> None:
            batch = sample_records(per_task, seed=task, prefix=f"task{task:02d}-")
            for start in range(0, per_task, 5):
                await docs.upsert(batch[start : start + 5])

        async with anyio.create_task_group() as group:
            for task in range(self.concurrent_writers):
                group.start_soon(writer, task)
        assert await docs.count() == self.concurrent_writers * per_task
        probe = sample_records(per_task, seed=3, prefix="task03-")[4]
        [hit] = await docs.query(list(probe.vector), top_k=1, where={"i": 4})
        assert hit.id == probe.id

    async def test_concurrent_queries_during_writes(self, filled: Collection) -> None:
        results: list[int] = []

        async def reader() -> None:
            results.append(len(await filled.query([1.0] * DIMENSION, top_k=10)))

        async with anyio.create_task_group() as group:
            group.start_soon(filled.upsert, sample_records(30, seed=2, prefix="extra"))
            for _ in range(10):
                group.start_soon(reader)
        assert results == [10] * 10
        assert await filled.count() == 90

    # --- persistence and lifecycle -------------------------------------------------

    async def test_data_survives_close_and_reopen_or_is_declared_ephemeral(
        self, store: VectorStore, open_vector_store: Opener
    ) -> None:
        records = sample_records(20)
        await store.collection("docs").upsert(records)
        await store.close()
        reopened = await open_vector_store()
        try:
            docs = reopened.collection("docs")
            if store.vector_capabilities.persistent:
                assert await reopened.list_collections() == ["docs"]
                assert await docs.dimension() == DIMENSION
                assert [r.id for r in await docs.get()] == [r.id for r in records]
                [hit] = await docs.query(list(records[3].vector), top_k=1, where={"lang": "zh"})
                assert hit.id == records[3].id
            else:
                assert await reopened.list_collections() == []
                assert await docs.count() == 0
        finally:
            await reopened.close()

    async def test_use_after_close_raises(self, store: VectorStore) -> None:
        docs = store.collection("docs")
        await docs.upsert([VectorRecord("a", [1.0, 0.0])])
        await store.close()
        assert store.closed
        with pytest.raises(StorageClosedError):
            await docs.query([1.0, 0.0])
        with pytest.raises(StorageClosedError):
            await docs.upsert([VectorRecord("b", [1.0, 0.0])])
        with pytest.raises(StorageClosedError):
            await docs.get(["a"])
        with pytest.raises(StorageClosedError):
            await docs.delete(["a"])
        with pytest.raises(StorageClosedError):
            await docs.count()
        with pytest.raises(StorageClosedError):
            await store.list_collections()
        with pytest.raises(StorageClosedError):
            await store.drop_collection("docs")

    async def test_close_twice_is_harmless(self, store: VectorStore) -> None:
        await store.close()
        await store.close()
        assert store.closed

    async def test_async_with_closes_the_store(self, open_vector_store: Opener) -> None:
        async with await open_vector_store() as opened:
            await opened.collection("docs").upsert([VectorRecord("a", [1.0, 0.0])])
        assert opened.closed
        with pytest.raises(StorageClosedError):
            await opened.collection("docs").count()
