from __future__ import annotations

import json

import pytest
from gecko_models import LiteLLMEmbedder

from gecko.errors import ConfigurationError, ModelOutputError, ModelTimeoutError
from gecko.plugins.models import ModelConfig, RetryPolicy, create_embedder
from gecko.testing.server import HTTPReply, OpenAIServer, trickle


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


def _data(*items: object, **extra: object) -> HTTPReply:
    body = {"object": "list", "model": "m", "data": list(items), **extra}
    return HTTPReply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def _item(index: object, embedding: object) -> dict[str, object]:
    return {"object": "embedding", "index": index, "embedding": embedding}


HOSTILE_EMBEDDINGS: dict[str, tuple[HTTPReply, str]] = {
    "entries without an index": (
        _data({"embedding": [1.0, 0.0]}, {"embedding": [0.0, 1.0]}),
        "not each of 0..1 once",
    ),
    "one index twice": (_data(_item(0, [1.0, 0.0]), _item(0, [0.0, 1.0])), "not each of 0..1 once"),
    "an index that is text": (_data(_item("a", [1.0, 0.0]), _item(1, [0.0, 1.0])), "not each of 0..1 once"),
    "an index out of range": (_data(_item(0, [1.0, 0.0]), _item(7, [0.0, 1.0])), "not each of 0..1 once"),
    "a vector of text": (_data(_item(0, ["a", "b"]), _item(1, [0.0, 1.0])), "wrong shape"),
    "a null vector": (_data(_item(0, None), _item(1, [0.0, 1.0])), "wrong shape"),
    "null entries": (_data(None, None), "wrong shape"),
    "data that is an object": (
        HTTPReply(200, b'{"object": "list", "data": {"a": 1}}', {"Content-Type": "application/json"}),
        "wrong shape",
    ),
    "NaN in a vector": (
        HTTPReply(200, b'{"data": [{"index": 0, "embedding": [NaN, 1.0]}, {"index": 1, "embedding": [0.0, 1.0]}]}'),
        "NaN or infinity",
    ),
    "a number past float range": (
        HTTPReply(200, b'{"data": [{"index": 0, "embedding": [1e400, 1.0]}, {"index": 1, "embedding": [0.0, 1.0]}]}'),
        "NaN or infinity",
    ),
    "token counts that are text": (
        _data(_item(0, [1.0, 0.0]), _item(1, [0.0, 1.0]), usage={"prompt_tokens": "x", "total_tokens": "y"}),
        "wrong shape",
    ),
}


@pytest.mark.parametrize(("answer", "problem"), HOSTILE_EMBEDDINGS.values(), ids=HOSTILE_EMBEDDINGS.keys())
async def test_a_hostile_embeddings_reply_is_an_output_error_and_the_next_call_works(
    answer: HTTPReply, problem: str
) -> None:
    async with OpenAIServer(embeddings=[answer, [[1.0, 0.0], [0.0, 1.0]]]) as server:
        embedder = _embedder(server, dimension=2, retry=RetryPolicy(1))
        with pytest.raises(ModelOutputError, match=problem):
            await embedder.embed(["a", "b"])
        assert await embedder.embed(["a", "b"]) == [[1.0, 0.0], [0.0, 1.0]]


async def test_vectors_numbered_out_of_order_come_back_in_input_order_and_negative_counts_read_as_zero() -> None:
    answer = _data(_item(1, [0.0, 1.0]), _item(0, [1.0, 0.0]), usage={"prompt_tokens": -4, "total_tokens": -4})
    async with OpenAIServer(embeddings=[answer]) as server:
        embedder = _embedder(server, dimension=2)
        assert await embedder.embed(["a", "b"]) == [[1.0, 0.0], [0.0, 1.0]]
    assert (embedder.usage.input_tokens, embedder.usage.total_tokens, embedder.usage.requests) == (0, 0, 1)


async def test_an_embeddings_reply_trickled_byte_by_byte_is_cut_off_by_the_timeout() -> None:
    body = json.dumps({"object": "list", "data": [_item(0, [1.0, 0.0])]}).encode()
    slow_loris = trickle(HTTPReply(200, body, {"Content-Type": "application/json"}), 0.05)
    async with OpenAIServer(embeddings=[slow_loris]) as server:
        embedder = _embedder(server, dimension=2, timeout=0.5, retry=RetryPolicy(1))
        with pytest.raises(ModelTimeoutError, match=r"within 0\.5 s for the embeddings"):
            await embedder.embed(["a"])


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "5", True])
def test_an_embedder_timeout_that_is_not_positive_seconds_is_a_configuration_error(timeout: object) -> None:
    with pytest.raises(ConfigurationError, match="timeout must be a positive number of seconds"):
        LiteLLMEmbedder(model="openai/e", dimension=2, timeout=timeout)
