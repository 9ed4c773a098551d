"""E5Embedder on the packaged 4-bit multilingual-e5-small: real vectors in English and Chinese, no network."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pytest
from gecko_embedders_e5 import E5Embedder

from gecko.errors import ConfigurationError
from gecko.testing.conformance import EmbedderConformance
from gecko.testing.conformance.embedders import dot


class TestE5Embedder(EmbedderConformance):
    """The contract, with pairs and queries in Chinese, in English and across the two."""

    spec = "e5:multilingual-e5-small"
    pairs = (
        ("A man is playing a guitar.", "Someone is strumming a guitar.", "The stock market fell sharply today."),
        ("How do I reset my password?", "I forgot my password, how can I change it?", "What is the capital of Peru?"),
        ("猫在沙发上睡觉。", "一只猫正在长椅上打盹。", "今天股市大幅下跌。"),
        ("公司的报销政策是怎样的？", "员工的费用如何报销？", "北京明天会下雨吗？"),
        ("The meeting was moved to Friday.", "会议改到了星期五。", "香蕉富含钾。"),
    )
    corpus = (
        "Python 是一种流行的编程语言，适合编写各种软件。",
        "埃菲尔铁塔位于法国巴黎，建于1889年。",
        "Dogs are loyal pets that have lived with people for thousands of years.",
        "疫苗通过训练免疫系统来预防疾病。",
        "The cake recipe needs two eggs, flour and a cup of milk.",
    )
    queries: ClassVar[Mapping[str, int]] = {
        "哪种语言适合写软件？": 0,
        "Where is the famous iron tower in France?": 1,
        "狗是忠诚的宠物吗？": 2,
        "How do vaccines protect the body?": 3,
        "做这个蛋糕需要哪些材料？": 4,
    }

    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls) -> E5Embedder:
        return E5Embedder()

    async def test_a_query_is_embedded_differently_from_the_same_text_as_a_passage(self, embedder: E5Embedder) -> None:
        text = "How do vaccines protect the body?"
        as_query = await embedder.embed_query(text)
        [as_passage] = await embedder.embed([text])
        assert 0.5 < dot(as_query, as_passage) < 0.9999


def test_unknown_model_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="multilingual-e5-small"):
        E5Embedder("multilingual-e5-large")
