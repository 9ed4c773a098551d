"""Lexical retrieval: a tokenizer for English and Chinese text and an Okapi BM25 index.

`lexical_tokens` lower-cases and NFKC-normalises text; runs of letters and digits are words
(common English function words dropped), and words of ASCII letters are reduced to their stem
by the Snowball English stemmer (PyStemmer), so "studies" matches "study" and "cells" "cell";
runs of Chinese, Japanese or Korean characters, which have no spaces, become overlapping
character bigrams (a lone character stays a unigram). Bigrams need no dictionary and match any
word a query and a passage share, which is why they are the default here (see the knowledge
README for the comparison with jieba word segmentation).

`BM25Index` scores with Okapi BM25 (k1 = 1.2, b = 0.75, the Lucene idf). It is built in memory
from the token lists the ingestion pipeline persists beside the vectors.

Another tokenizer (a word segmenter such as jieba, say) can be given to the pipeline and the
retriever as any `(text) -> list[str]` function; its `__name__` is recorded with the knowledge
base, a change of tokenizer re-tokenizes every source, and a retriever with another tokenizer
than the base's is refused.
"""

from __future__ import annotations

import functools
import heapq
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from gecko.plugins.vector.filters import Filter, MetadataValue, matches

__all__ = ("lexical_tokens", "LexicalTokenizer", "tokenizer_name", "terms", "BM25Index", "LexicalHit")

LexicalTokenizer = Callable[[str], list[str]]
"""Turns a text into its BM25 terms."""

_CJK_RUN = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+"
_TOKEN = re.compile(rf"({_CJK_RUN})|([^\W_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+)")
_STOPWORDS = frozenset(
    ("a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "how", "i", "if", "in",
     "into", "is", "it", "its", "of", "on", "or", "that", "the", "their", "then", "there", "these", "they", "this",
     "to", "was", "were", "what", "when", "where", "which", "who", "why", "will", "with", "you", "your")
)  # fmt: skip


@functools.lru_cache(maxsize=1)
def _english_stemmer() -> Callable[[str], str]:
    import Stemmer  # type: ignore[import-not-found]  # PyStemmer (Snowball in C, no stubs), loaded on first use

    return Stemmer.Stemmer("english").stemWord  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _english_stemmer()(word) if word.isascii() and word.isalpha() else word


def lexical_tokens(text: str) -> list[str]:
    """The BM25 terms of `text`: word stems, and character bigrams within CJK runs; no term holds a space."""
    tokens: list[str] = []
    for cjk, word in _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold()):
        if word:
            if word not in _STOPWORDS:
                tokens.append(_stem(word))
        elif len(cjk) == 1:
            tokens.append(cjk)
        else:
            tokens.extend(cjk[i : i + 2] for i in range(len(cjk) - 1))
    return tokens


def tokenizer_name(tokenizer: LexicalTokenizer) -> str:
    """The name a knowledge base records for `tokenizer`: its module and qualified name."""
    return f"{getattr(tokenizer, '__module__', '')}.{getattr(tokenizer, '__qualname__', type(tokenizer).__qualname__)}"


def terms(tokenizer: LexicalTokenizer, text: str) -> list[str]:
    """`tokenizer`'s terms of `text`, any term holding whitespace split there (terms are stored space-joined)."""
    return [part for token in tokenizer(text) for part in token.split()]


@dataclass(frozen=True)
class LexicalHit:
    """A lexical match: the record id and its BM25 score (higher is better)."""

    id: str
    score: float


class BM25Index:
    """Okapi BM25 over documents given as token lists, with metadata to filter on.

    Args:
        k1: term frequency saturation.
        b: document length normalisation.
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._ids: list[str] = []
        self._lengths: list[int] = []
        self._metadata: list[Mapping[str, MetadataValue]] = []
        self._postings: dict[str, list[tuple[int, int]]] = {}
        self._total_length = 0

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, record_id: str, tokens: Iterable[str], metadata: Mapping[str, MetadataValue]) -> None:
        """Index one document (ids are not checked for repeats: give each once)."""
        position = len(self._ids)
        counts = Counter(tokens)
        length = sum(counts.values())
        self._ids.append(record_id)
        self._lengths.append(length)
        self._metadata.append(metadata)
        self._total_length += length
        for term, frequency in counts.items():
            self._postings.setdefault(term, []).append((position, frequency))

    def search(self, tokens: Iterable[str], top_k: int, where: Filter | None = None) -> list[LexicalHit]:
        """The `top_k` best-scoring documents holding any of the query terms and matching `where`."""
        count = len(self._ids)
        if not count:
            return []
        average = self._total_length / count
        k1, b = self.k1, self.b
        scores: dict[int, float] = {}
        for term in set(tokens):
            postings = self._postings.get(term)
            if not postings:
                continue
            idf = math.log(1.0 + (count - len(postings) + 0.5) / (len(postings) + 0.5))
            for position, frequency in postings:
                norm = k1 * (1.0 - b + b * self._lengths[position] / average)
                scores[position] = scores.get(position, 0.0) + idf * frequency * (k1 + 1.0) / (frequency + norm)
        if where is not None:
            scores = {position: score for position, score in scores.items() if matches(where, self._metadata[position])}
        best = heapq.nlargest(top_k, scores.items(), key=lambda item: (item[1], -item[0]))
        return [LexicalHit(self._ids[position], score) for position, score in best]
