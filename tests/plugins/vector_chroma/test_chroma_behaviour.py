"""What `gecko-vector-chroma` promises beyond the shared suite: no embedding model, worker threads, URLs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.api.models.Collection import Collection as ChromaCollection
from chromadb.config import Settings
from chromadb.utils import embedding_functions
from gecko_vector_chroma import ChromaHttpVectorStore, ChromaVectorStore, chroma_where

from gecko.errors import InvalidStorageURLError, StorageUnavailableError
from gecko.plugins.storage.factory import create_storage
from gecko.plugins.vector import VectorRecord, VectorStore
from gecko.plugins.vector.filters import parse_filter
from gecko.testing.processes import refused_port

pytestmark = pytest.mark.anyio


def _records() -> list[VectorRecord]:
    return [VectorRecord(f"r{i}", [1.0, float(i), 0.5], f"text {i}", {"i": i}) for i in range(20)]


async def test_default_embedding_function_is_never_called(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Chroma's default embedding function was called")

    for name in ("DefaultEmbeddingFunction", "ONNXMiniLM_L6_V2"):
        monkeypatch.setattr(getattr(embedding_functions, name), "__call__", refuse)
    async with await create_storage(f"chroma://{tmp_path}/db", kind="vector") as store:
        docs = store.collection("docs")
        await docs.upsert(_records())
        assert len(await docs.query([1.0, 2.0, 0.5], top_k=3, where={"i": {"$gte": 5}})) == 3
        assert len(await docs.get(where={"i": {"$lt": 5}})) == 5
    raw = chromadb.PersistentClient(path=f"{tmp_path}/db", settings=Settings(anonymized_telemetry=False))
    collection = raw.get_collection("gecko-docs", embedding_function=None)
    assert collection.configuration_json["hnsw"]["space"] == "cosine"
    assert collection.configuration_json["embedding_function"] is None or (
        collection.configuration_json["embedding_function"].get("type") == "legacy"
    )
    raw.close()


async def test_chroma_calls_run_in_worker_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    seen: list[tuple[str, int]] = []

    def recording(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: ChromaCollection, *args: Any, **kwargs: Any) -> Any:
            seen.append((name, threading.get_ident()))
            return method(self, *args, **kwargs)

        return wrapper

    for name in ("upsert", "query", "get", "delete", "count"):
        monkeypatch.setattr(ChromaCollection, name, recording(name, getattr(ChromaCollection, name)))
    async with await create_storage(f"chroma://{tmp_path}/db", kind="vector") as store:
        docs = store.collection("docs")
        await docs.upsert(_records())
        await docs.query([1.0, 0.0, 0.0], where={"i": 3})
        await docs.count()
        await docs.delete(["r1"])
    assert {name for name, _ in seen} == {"upsert", "query", "get", "delete", "count"}
    assert all(thread != loop_thread for _, thread in seen)


async def test_seed_quick_start_url_opens_a_store_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    vector_store = await create_storage("chroma://./my_knowledge_db")
    assert isinstance(vector_store, ChromaVectorStore)
    await vector_store.collection("kb").upsert([VectorRecord("policy", [0.2, 0.9], "报销政策")])
    await vector_store.close()
    assert (tmp_path / "my_knowledge_db").is_dir()


async def test_http_store_sees_what_another_client_wrote(chroma_server: str, chroma_database: str) -> None:
    url = f"chroma+http://{chroma_server}?database={chroma_database}"
    async with await create_storage(url, kind="vector") as writer:
        assert isinstance(writer, ChromaHttpVectorStore)
        await writer.collection("shared").upsert(_records())
        async with await create_storage(url, kind="vector") as reader:
            assert await reader.collection("shared").count() == 20


@pytest.mark.parametrize(
    "url",
    [
        "chroma+http://",
        "chroma+http://host:notaport",
        "chroma+http://host:70000",
        "chroma+http://host:8000/some/path",
        "chroma+http://host:8000?unknown=1",
        "chroma+http://host:8000?ssl=maybe",
        "chroma://./db?option=1",
        "chroma://",
    ],
)
async def test_malformed_urls_are_rejected(url: str) -> None:
    with pytest.raises(InvalidStorageURLError):
        await create_storage(url)


async def test_unreachable_server_is_unavailable() -> None:
    with refused_port() as port, pytest.raises(StorageUnavailableError, match="cannot reach the Chroma server"):
        await create_storage(f"chroma+http://127.0.0.1:{port}")


def test_filters_translate_to_chroma_where() -> None:
    where = parse_filter({"$not": {"lang": "zh", "year": {"$in": [2020, 2021.5]}}, "tags": {"$contains": "a"}})
    assert where is not None
    assert chroma_where(where) == {
        "$and": [
            {"$or": [{"lang": {"$ne": "zh"}}, {"year": {"$nin": [2020.0, 2021.5]}}]},
            {"tags": {"$contains": "a"}},
        ]
    }


def test_chroma_store_is_a_vector_store() -> None:
    assert issubclass(ChromaVectorStore, VectorStore)
    assert ChromaHttpVectorStore.scheme == "chroma+http"
