"""`EmbedderConformance`: the embedder contract as a pytest class every embedder plugin subclasses.

Subclass it in a test module, override the `embedder` fixture, set `spec` to a
`create_embedder` spec of your provider, and pytest checks the contract with real vectors:

```python
class TestMyEmbedder(EmbedderConformance):
    spec = "myprovider:my-model"

    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls) -> Embedder:
        return MyEmbedder()
```

Checks: `dimension` unit-length vectors in input order, the same vector for a text alone or in
a batch, concurrent calls kept apart, empty input, a lone string refused, the provider resolved
by `create_embedder`, and meaning: a paraphrase nearer its anchor than an unrelated text (by
`margin`), and each of `queries` nearest its passage of `corpus`. The defaults are English; a
multilingual model adds its own languages by overriding `pairs`, `corpus` and `queries`. The
tests are async and marked for anyio; provide an `anyio_backend` fixture to choose the event loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import anyio
import pytest

from gecko.plugins.models import Embedder, create_embedder

__all__ = ("EmbedderConformance", "ENGLISH_PAIRS", "ENGLISH_CORPUS", "ENGLISH_QUERIES", "dot")

ENGLISH_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("A man is playing a guitar.", "Someone is strumming a guitar.", "The stock market fell sharply today."),
    ("How do I reset my password?", "I forgot my password, how can I change it?", "What is the capital of Peru?"),
    ("The cat is sleeping on the sofa.", "A cat naps on the couch.", "The train to Berlin is delayed."),
    ("The meeting was moved to Friday.", "We rescheduled the meeting for Friday.", "Bananas are rich in potassium."),
)
"""(anchor, paraphrase, unrelated) triples: the paraphrase must be nearer the anchor."""

ENGLISH_CORPUS: tuple[str, ...] = (
    "Python is a popular programming language.",
    "The Eiffel Tower is in Paris.",
    "Dogs are loyal pets.",
    "Vaccines train the immune system.",
    "The recipe needs two eggs and flour.",
)
"""Passages, one topic each."""

ENGLISH_QUERIES: Mapping[str, int] = {
    "Which language is good for writing software?": 0,
    "Where can I find the famous iron tower in France?": 1,
    "Tell me about faithful domestic animals like puppies.": 2,
    "How does immunization protect the body?": 3,
    "What ingredients do I need to bake this cake?": 4,
}
"""Queries sharing few words with their passage: each must be nearest the passage at its index."""


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    """The dot product: the cosine similarity of unit vectors."""
    return sum(x * y for x, y in zip(a, b, strict=True))


class EmbedderConformance:
    """The embedder contract; subclasses override the `embedder` fixture and set `spec`."""

    spec: ClassVar[str] = ""
    """A `create_embedder` spec (`provider:model`) that must give an instance of the embedder's class."""
    pairs: ClassVar[Sequence[tuple[str, str, str]]] = ENGLISH_PAIRS
    margin: ClassVar[float] = 0.03
    """How much nearer the anchor a paraphrase must be than the unrelated text."""
    corpus: ClassVar[Sequence[str]] = ENGLISH_CORPUS
    queries: ClassVar[Mapping[str, int]] = ENGLISH_QUERIES

    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls) -> Embedder:
        """The embedder under test: override in the subclass."""
        raise NotImplementedError("override the `embedder` fixture with your embedder")

    async def test_vectors_have_the_declared_dimension_and_unit_length(self, embedder: Embedder) -> None:
        vectors = await embedder.embed(["A short sentence.", "Another, slightly longer sentence here."])
        assert [len(vector) for vector in vectors] == [embedder.dimension] * 2
        assert all(math.isclose(math.sqrt(dot(vector, vector)), 1.0, rel_tol=1e-4) for vector in vectors)
        query = await embedder.embed_query("A short question?")
        assert len(query) == embedder.dimension

    async def test_a_paraphrase_is_nearer_its_anchor_than_an_unrelated_text(self, embedder: Embedder) -> None:
        for anchor, paraphrase, unrelated in self.pairs:
            a, p, u = await embedder.embed([anchor, paraphrase, unrelated])
            assert dot(a, p) > dot(a, u) + self.margin, (anchor, paraphrase, unrelated)

    async def test_each_query_is_nearest_its_passage(self, embedder: Embedder) -> None:
        corpus = await embedder.embed(list(self.corpus))
        for query, expected in self.queries.items():
            vector = await embedder.embed_query(query)
            nearest = max(range(len(corpus)), key=lambda i: dot(vector, corpus[i]))
            assert nearest == expected, query

    async def test_a_batch_gives_each_text_its_own_vector_in_order(self, embedder: Embedder) -> None:
        texts = [anchor for anchor, _, _ in self.pairs] + ["Short.", "A much longer sentence that pads its batch."]
        together = await embedder.embed(texts)
        for text, vector in zip(texts, together, strict=True):
            [alone] = await embedder.embed([text])
            assert dot(alone, vector) > 0.9999, text

    async def test_concurrent_calls_each_get_their_own_vectors(self, embedder: Embedder) -> None:
        groups = [[anchor, paraphrase] for anchor, paraphrase, _ in self.pairs]
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

    async def test_empty_input_gives_no_vectors(self, embedder: Embedder) -> None:
        assert await embedder.embed([]) == []

    async def test_a_single_string_is_refused_in_favour_of_embed_query(self, embedder: Embedder) -> None:
        with pytest.raises(TypeError, match="embed_query"):
            await embedder.embed("one text")

    def test_create_embedder_resolves_the_provider(self, embedder: Embedder) -> None:
        assert self.spec, "set `spec` to a create_embedder spec of this embedder"
        assert isinstance(create_embedder(self.spec), type(embedder))
