from __future__ import annotations

import pytest
from gecko_models import LiteLLMEmbedder

from gecko.errors import ModelOutputError
from gecko.plugins.models import ModelConfig, create_embedder
from gecko.testing.server import OpenAIServer


def _embedder(server: OpenAIServer, dimension: int = 3, **settings: object) -> LiteLLMEmbedder:
    config = ModelConfig(model_name="openai/text-embedding-3-small", api_key="k", api_base=server.base_url)
    return LiteLLMEmbedder(config=config, dimension=dimension, **settings)  # type: ignore[arg-type]


async def test_embed_returns_one_vector_per_text_in_order() -> None:
    async with OpenAIServer(embeddings=[[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]) as server:
        vectors = await _embedder(server).embed(["first", "second"])
        assert server.requests[0].json()["input"] == ["first", "second"]
    assert vectors == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


async def test_texts_are_sent_in_batches() -> None:
    async with OpenAIServer(embedding_dimension=4) as server:
        vectors = await _embedder(server, dimension=4, batch_size=2).embed(["a", "b", "c"])
        assert [r.json()["input"] for r in server.requests] == [["a", "b"], ["c"]]
    assert len(vectors) == 3


async def test_vectors_of_another_dimension_are_an_output_error() -> None:
    async with OpenAIServer(embedding_dimension=5) as server:
        with pytest.raises(ModelOutputError, match="dimension"):
            await _embedder(server, dimension=3).embed(["a"])


async def test_embed_query_and_usage() -> None:
    async with OpenAIServer(embedding_dimension=3) as server:
        embedder = _embedder(server)
        assert len(await embedder.embed_query("two words")) == 3
    assert (embedder.usage.input_tokens, embedder.usage.requests) == (2, 1)


async def test_create_embedder_takes_model_and_settings() -> None:
    async with OpenAIServer(embedding_dimension=2) as server:
        embedder = create_embedder("litellm-embedding:openai/e", dimension=2, api_key="k", api_base=server.base_url)
        assert len(await embedder.embed_query("x")) == 2
