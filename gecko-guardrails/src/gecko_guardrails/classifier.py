"""A small offline prompt-injection classifier: character n-grams and word pairs, TF-IDF, logistic regression.

There are two models, one per channel: user input (and tool descriptions) is scored by a model trained on
user-channel texts only, tool output by a model trained on all texts. The weights ship in this package as plain
JSON (`classifier.json`: per channel, n-gram → idf and coefficient, the intercept and the threshold chosen out of
fold; the training data's sources and licences). They were trained with scikit-learn by `training/train.py` in
the source tree on the public set described in `eval/SOURCES.md`; nothing is downloaded at run time and no pickle is
read. Scoring is pure Python: the text is folded (`sanitize.fold`) and cut into pieces (overlapping
windows, and its lines, so an injection on its own line inside a long tool result is scored as
itself, not diluted by the document around it); the highest piece probability is the score. The opt-in
semantic layer (`semantic.py`) fuses this model's piece scores with its own, at thresholds of its own.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from itertools import pairwise
from typing import Literal

__all__ = ("CHANNELS", "Classifier", "classifier", "ngrams", "pieces")

CHANNELS = ("user", "tool")
"""The channel kinds a model is trained for: what a person typed (and tool descriptions), content from elsewhere."""

_WHITESPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
WINDOW = 300
"""Characters per window; texts longer than this are scored window by window, half a window apart."""
MIN_LENGTH = 20
"""Shorter texts ("hello", "What is 2+2?") give the model too little to go on: only the rules judge them."""
MIN_PIECE = 40
"""Lines of a long text are joined with the next until the piece has this many characters (the user-input model's
setting; each model keeps its own, `Classifier.min_piece`)."""


def ngrams(text: str, sizes: tuple[int, int]) -> Counter[str]:
    """Features of `text` (already folded), counted: character n-grams within words padded by one
    space, and word pairs (`"ignore previous"`), which tell "previous instructions" from "previous versions".
    """
    words = _WORD.findall(text)
    counts: Counter[str] = Counter(f"{first} {second}" for first, second in pairwise(words))
    for word in _WHITESPACE.sub(" ", text).split(" "):
        if word:
            counts.update(_word_ngrams(word, sizes))
    return counts


@lru_cache(maxsize=65_536)
def _word_ngrams(word: str, sizes: tuple[int, int]) -> tuple[str, ...]:
    # Words recur across windows and texts: each is cut once.
    padded = f" {word} "
    length = len(padded)
    low, high = sizes
    return tuple(
        padded[start : start + size] for size in range(low, min(high, length) + 1) for start in range(length - size + 1)
    )


def pieces(text: str, min_piece: int = MIN_PIECE) -> list[str]:
    """What `text` is scored as: itself when short; else its windows and its lines (joined up to `min_piece`)."""
    if len(text) <= WINDOW:
        return [text]
    found = _windows(text)
    piece = ""
    for line in text.split("\n"):
        line = line.strip()
        if line:
            piece = f"{piece} {line}" if piece else line
            if len(piece) >= min_piece:
                found.extend(_windows(piece) if len(piece) > WINDOW else [piece])
                piece = ""
    if piece:
        found.append(piece)
    return found


def _windows(text: str) -> list[str]:
    step = WINDOW // 2
    return [text[start : start + WINDOW] for start in range(0, max(len(text) - step, 1), step)]


@dataclass(frozen=True, slots=True)
class Classifier:
    """Linear model over sublinear TF-IDF character n-grams; `probability` of a folded text being an injection.

    `threshold` is the probability at which a text of the model's channel is flagged; `min_piece` is the length up
    to which its `pieces` join a long text's lines.
    """

    weights: dict[str, tuple[float, float]]
    intercept: float
    sizes: tuple[int, int]
    threshold: float
    min_piece: int

    def probability(self, folded: str) -> float:
        """The highest injection probability over the pieces of `folded` (a `sanitize.fold` output)."""
        return max(self.piece(piece) for piece in pieces(folded, self.min_piece))

    def piece(self, text: str) -> float:
        """The injection probability of one piece of folded text."""
        total = norm = 0.0
        weights = self.weights
        for gram, count in ngrams(text, self.sizes).items():
            entry = weights.get(gram)
            if entry is None:
                continue
            idf, coefficient = entry
            value = (1.0 + math.log(count)) * idf
            norm += value * value
            total += value * coefficient
        logit = self.intercept + (total / math.sqrt(norm) if norm else 0.0)
        return 1.0 / (1.0 + math.exp(-logit))


def classifier(channel: Literal["user", "tool"]) -> Classifier:
    """The shipped model of `channel` (`"user"` or `"tool"`), loaded with the other once from `classifier.json`."""
    return _classifiers()[channel]


@cache
def _classifiers() -> dict[str, Classifier]:
    data = json.loads(resources.files("gecko_guardrails").joinpath("classifier.json").read_text("utf-8"))
    sizes = (data["ngram_sizes"][0], data["ngram_sizes"][1])
    return {
        channel: Classifier(
            weights={gram: (idf, coefficient) for gram, (idf, coefficient) in model["weights"].items()},
            intercept=model["intercept"],
            sizes=sizes,
            threshold=model["threshold"],
            min_piece=model["min_piece"],
        )
        for channel, model in data["models"].items()
    }
