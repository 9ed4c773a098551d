"""The knowledge layer on the offline ONNX embedder, split by the model's own tokenizer."""

from __future__ import annotations

import pytest
from gecko_embedders_onnx import OnnxEmbedder, default_model_files

from gecko.plugins.knowledge import Document, IngestionPipeline, Retriever, TokenSplitter
from gecko.plugins.storage.memory import MemoryStorage

pytestmark = pytest.mark.anyio

ARTICLES = [
    Document("guitar.txt", "A man is playing a guitar on the street corner. " * 30),
    Document("password.txt", "To reset your password, open the settings page and choose forgot password. " * 20),
    Document("weather.txt", "Heavy rain is expected across the region for the rest of the week. " * 20),
]


async def test_token_split_chunks_fit_the_model_and_dense_search_finds_paraphrases() -> None:
    _, tokenizer = default_model_files()
    splitter = TokenSplitter.from_tokenizer_file(tokenizer, chunk_tokens=64, overlap_tokens=8)
    store, embedder = MemoryStorage(), OnnxEmbedder()
    summary = await IngestionPipeline(store, embedder, splitter).run(ARTICLES)
    chunks = await store.collection("knowledge").get()
    assert summary.chunks == len(chunks) > len(ARTICLES)
    assert all(splitter.length(chunk.text) <= 64 for chunk in chunks)
    retriever = Retriever(store, embedder, mode="dense")
    assert (await retriever.search("someone strumming an instrument outside", 1))[0].source == "guitar.txt"
    assert (await retriever.search("I forgot my login credentials", 1))[0].source == "password.txt"
    assert (await retriever.search("will it be wet this week?", 1))[0].source == "weather.txt"
