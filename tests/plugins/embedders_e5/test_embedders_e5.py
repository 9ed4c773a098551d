"""E5Embedder on the packaged 4-bit multilingual-e5-small: real vectors in English and Chinese, no network."""

from __future__ import annotations

import math

import pytest
from gecko_embedders_e5 import E5Embedder

from gecko.errors import ConfigurationError
from gecko.plugins.models import create_embedder, model_registry

# (anchor, paraphrase, unrelated): the paraphrase must be nearer the anchor than the unrelated text.
PAIRS = [
    ("A man is playing a guitar.", "Someone is strumming a guitar.", "The stock market fell sharply today."),
    ("How do I reset my password?", "I forgot my password, how can I change it?", "What is the capital of Peru?"),
    ("猫在沙发上睡觉。", "一只猫正在长椅上打盹。", "今天股市大幅下跌。"),
    ("公司的报销政策是怎样的？", "员工的费用如何报销？", "北京明天会下雨吗？"),
    ("The meeting was moved to Friday.", "会议改到了星期五。", "香蕉富含钾。"),
]

CORPUS = [
    "Python 是一种流行的编程语言，适合编写各种软件。",
    "埃菲尔铁塔位于法国巴黎，建于1889年。",
    "Dogs are loyal pets that have lived with people for thousands of years.",
    "疫苗通过训练免疫系统来预防疾病。",
    "The cake recipe needs two eggs, flour and a cup of milk.",
]
QUERIES = {
    "哪种语言适合写软件？": 0,
    "Where is the famous iron tower in France?": 1,
    "狗是忠诚的宠物吗？": 2,
    "How do vaccines protect the body?": 3,
    "做这个蛋糕需要哪些材料？": 4,
}


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def embedder() -> E5Embedder:
    return E5Embedder()


async def test_vectors_have_384_unit_length_dimensions(embedder: E5Embedder) -> None:
    vectors = await embedder.embed(["A short sentence.", "一个稍微长一点的中文句子。"])
    assert [len(vector) for vector in vectors] == [384, 384]
    assert all(math.isclose(math.sqrt(dot(vector, vector)), 1.0, rel_tol=1e-4) for vector in vectors)


@pytest.mark.parametrize(("anchor", "paraphrase", "unrelated"), PAIRS)
async def test_paraphrase_ranks_above_unrelated_text_in_and_across_languages(
    embedder: E5Embedder, anchor: str, paraphrase: str, unrelated: str
) -> None:
    a, p, u = await embedder.embed([anchor, paraphrase, unrelated])
    assert dot(a, p) > dot(a, u) + 0.03


async def test_each_query_finds_its_passage_in_either_language(embedder: E5Embedder) -> None:
    corpus = await embedder.embed(CORPUS)
    for query, expected in QUERIES.items():
        vector = await embedder.embed_query(query)
        nearest = max(range(len(corpus)), key=lambda i: dot(vector, corpus[i]))
        assert nearest == expected, query


async def test_a_query_is_embedded_differently_from_the_same_text_as_a_passage(embedder: E5Embedder) -> None:
    text = "How do vaccines protect the body?"
    as_query = await embedder.embed_query(text)
    [as_passage] = await embedder.embed([text])
    assert 0.5 < dot(as_query, as_passage) < 0.9999


async def test_a_batch_gives_each_texts_own_vector_in_order(embedder: E5Embedder) -> None:
    texts = [anchor for anchor, _, _ in PAIRS]
    together = await embedder.embed(texts)
    for text, vector in zip(texts, together, strict=True):
        [alone] = await embedder.embed([text])
        assert dot(alone, vector) > 0.9999


async def test_empty_input_gives_no_vectors(embedder: E5Embedder) -> None:
    assert await embedder.embed([]) == []


async def test_a_single_string_is_refused_in_favour_of_embed_query(embedder: E5Embedder) -> None:
    with pytest.raises(TypeError, match="embed_query"):
        await embedder.embed("one text")


def test_create_embedder_resolves_the_e5_provider() -> None:
    assert model_registry.get("e5") is E5Embedder
    assert isinstance(create_embedder("e5:multilingual-e5-small"), E5Embedder)


def test_unknown_model_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="multilingual-e5-small"):
        E5Embedder("multilingual-e5-large")
