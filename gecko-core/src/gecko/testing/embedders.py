"""`HashingEmbedder`: a real, deterministic, dependency-free embedder for tests and examples.

It embeds a text as its bag of lexical terms (words, CJK character bigrams) and the character
trigrams of its words, hashed into `dimension` signed buckets and L2-normalised: texts sharing
words or word pieces get similar vectors, in any process, with no model file and no network.
It is weaker than a trained model (no synonyms), and it counts its work for assertions.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

import anyio.lowlevel

from gecko.errors import ConfigurationError
from gecko.plugins.knowledge.lexical import lexical_tokens
from gecko.plugins.models import Embedder

__all__ = ("HashingEmbedder",)

_BIAS = "\x00bias"  # present in every text, so no vector is zero (the store refuses zero vectors)


class HashingEmbedder(Embedder):
    """Feature-hashing embeddings of words, CJK bigrams and word trigrams.

    Attributes:
        calls: `embed` calls so far (`embed_query` counts as one).
        texts: texts embedded so far.
    """

    provider: ClassVar[str] = "hashing"

    def __init__(self, dimension: int = 256) -> None:
        if dimension < 8:
            raise ConfigurationError(f"dimension must be at least 8, got {dimension}")
        self.dimension = dimension
        self.model = f"hashing-{dimension}"
        self.calls = 0
        self.texts = 0

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text, in order."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; use embed_query() for one text")
        await anyio.lowlevel.checkpoint()
        self.calls += 1
        self.texts += len(texts)
        return [self.vector(text) for text in texts]

    def vector(self, text: str) -> list[float]:
        """The vector of one text, computed synchronously."""
        features: Counter[str] = Counter()
        for term in lexical_tokens(text):
            features[term] += 1
            if len(term) > 4 and term.isascii():
                features.update(f"#{term[i : i + 3]}" for i in range(len(term) - 2))
        vector = [0.0] * self.dimension
        for feature, count in features.items():
            digest = hashlib.blake2b(feature.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "big") % self.dimension
            vector[bucket] += (1.0 + math.log(count)) * (1.0 if digest[4] & 1 else -1.0)
        vector[hashlib.blake2b(_BIAS.encode(), digest_size=4).digest()[0] % self.dimension] += 0.01
        norm = math.sqrt(sum(value * value for value in vector))
        return [value / norm for value in vector]
