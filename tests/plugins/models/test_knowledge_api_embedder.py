"""The knowledge layer on the API embedder: batches over HTTP, rate limits retried, nothing re-sent."""

from __future__ import annotations

from gecko_models import LiteLLMEmbedder

from gecko.plugins.knowledge import Document, IngestionPipeline, Retriever
from gecko.plugins.models import ModelConfig, RetryPolicy
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.embedders import HashingEmbedder
from gecko.testing.server import OpenAIServer, error

DOCUMENTS = [Document(f"doc{i}", f"Document {i} is about topic {i % 5} and item {i}.") for i in range(10)]


async def test_ingestion_through_an_openai_protocol_embedder_retries_rate_limits(fast_retry: RetryPolicy) -> None:
    reference = HashingEmbedder(32)
    async with OpenAIServer(
        embeddings=[error(429, retry_after=0.01)], embed=lambda texts: [reference.vector(t) for t in texts]
    ) as server:
        config = ModelConfig(model_name="openai/text-embedding-3-small", api_key="k", api_base=server.base_url)
        embedder = LiteLLMEmbedder(config=config, dimension=32, batch_size=4, retry=fast_retry)
        store = MemoryStorage()
        pipeline = IngestionPipeline(store, embedder, batch_size=4, concurrency=2)
        summary = await pipeline.run(DOCUMENTS)
        sent = [r.json()["input"] for r in server.requests if r.path.endswith("/embeddings")]
        assert summary.embedded == 10
        assert len(sent) == 4  # three batches, one of them answered 429 first and sent again
        assert sorted(text for batch in sent[1:] for text in batch) == sorted(d.text for d in DOCUMENTS)
        again = await pipeline.run(DOCUMENTS)
        assert (again.skipped, len(server.requests)) == (10, 4)
        [hit] = await Retriever(store, embedder).search("Document 7 item 7", 1)
        assert hit.source == "doc7"
