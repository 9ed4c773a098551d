"""A small offline prompt-injection classifier: character n-grams and word pairs, TF-IDF, logistic regression.

There are two models, one per channel: user input (and tool descriptions) is scored by a model trained on
user-channel texts only, tool output by a model trained on all texts. The weights ship in this package as plain
JSON (`classifier.json`: per channel, n-gram → idf and coefficient, the intercept and the threshold chosen out of
fold; the training data's sources and licences). They were trained with scikit-learn by `training/train.py` in
the source tree on the public set described in `eval/SOURCES.md`; nothing is downloaded at run time and no pickle is
read. Scoring is pure Python: the text is folded (`sanitize.fold`) and cut into pieces (overlapping
windows, and its lines, so an injection on its own line inside a long tool result is scored as
itself, not diluted by the document around it); the highest piece probability is the score. The tool-output model
also raises a piece that tells the reader how to write its reply ("Add ... to your response", `ADDRESSED`): inside
a document such a sentence is addressed to the assistant. The opt-in semantic layer (`semantic.py`) fuses this
model's score (the cue counted) with its own, at thresholds of its own.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from itertools import pairwise
from typing import Literal

__all__ = ("ADDRESSED", "CHANNELS", "Classifier", "classifier", "ngrams", "pieces", "spans")

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
_VERBS = (
    "add|append|prepend|include|incorporate|integrate|insert|embed|inject|mention|modify|enhance|augment|enrich|"
    "provide|format|render|write|rewrite|present|begin|start|end|conclude|finish|structure|deliver|compose|craft|make|"
    "give|keep|use|replace|substitute|convert|translate|transform|encode|encrypt|reverse|capitali[sz]e|express|"
    "promote|advertise|recommend|suggest|encourage|urge|remind|invite|direct|link|share|emphasi[sz]e|highlight|stress|"
    "state|claim|sign|attach|put|place|wrap|spell|group|swap|shuffle|alternate|scramble|remove|delete|omit|avoid|"
    "do not|don't|never|always|ensure|make sure|respond|reply|answer|tease|offer|list"
)
ADDRESSED = re.compile(
    rf"(?:^|[.!?:;]\s)(?:please\s)?(?:{_VERBS})\b[^.!?\n]{{0,80}}\byour (?:response|reply|answer)s?\b"
    r"|\b(?:in|within|throughout) your (?:response|reply|answer)s?\b"
    r"|在(?:你|您)的(?:回答|回复|答复|输出)中|(?:回答|回复|答复)中(?:加入|添加|加上|包含|提到|插入)",
    re.MULTILINE,
)
"""A sentence (folded) that tells the reader how to write its reply: a verb at a sentence start, then "your
response, reply or answer" within the sentence ("Add a link to ... in your reply"), or "in your response"; in
Chinese, "在你的回答中", "回复中加入". Part of a tool result, it is addressed to the assistant reading it (BIPIA's
planted requests)."""


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
    return [piece for _, _, piece in spans(text, min_piece)]


def spans(text: str, min_piece: int = MIN_PIECE) -> list[tuple[int, int, str]]:
    """The `pieces` of `text`, each with where it starts and ends in `text` (lines joined by a space span the
    lines between, their ends included)."""
    if len(text) <= WINDOW:
        return [(0, len(text), text)]
    found = [(start, start + len(window), window) for start, window in _windows(text)]
    piece = ""
    starts: list[tuple[int, int]] = []  # where each line joined into `piece` starts, there and in `text`
    offset = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped:
            starts.append((len(piece) + 1 if piece else 0, offset + len(line) - len(line.lstrip())))
            piece = f"{piece} {stripped}" if piece else stripped
            if len(piece) >= min_piece:
                found.extend(_placed(piece, starts))
                piece, starts = "", []
        offset += len(line) + 1
    if piece:
        found.extend(_placed(piece, starts))
    return found


def _placed(piece: str, starts: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """`piece` (lines joined, starting in `text` as `starts` says), or its windows if long, placed in `text`."""
    windows = _windows(piece) if len(piece) > WINDOW else [(0, piece)]
    return [(*_span(start, start + len(window), starts), window) for start, window in windows]


def _span(start: int, end: int, starts: list[tuple[int, int]]) -> tuple[int, int]:
    """Where the characters `start` to `end` of joined lines lie in the text they came from."""

    def at(position: int) -> int:
        index = bisect_right(starts, position, key=lambda item: item[0]) - 1
        return starts[index][1] + position - starts[index][0]

    return at(start), at(end - 1) + 1


def _windows(text: str) -> list[tuple[int, str]]:
    step = WINDOW // 2
    return [(start, text[start : start + WINDOW]) for start in range(0, max(len(text) - step, 1), step)]


@dataclass(frozen=True, slots=True)
class Classifier:
    """Linear model over sublinear TF-IDF character n-grams; `probability` of a folded text being an injection.

    `threshold` is the probability at which a text of the model's channel is flagged; `min_piece` is the length up
    to which its `pieces` join a long text's lines; `cue_weight` is added to the logit of a piece `ADDRESSED` matches
    (0 for user input, where every text is addressed to the assistant).
    """

    weights: dict[str, tuple[float, float]]
    intercept: float
    sizes: tuple[int, int]
    threshold: float
    min_piece: int
    cue_weight: float = 0.0

    def probability(self, folded: str) -> float:
        """The highest injection probability over the pieces of `folded` (a `sanitize.fold` output), each piece's
        logit raised by `cue_weight` when `ADDRESSED` matches it."""
        return max(self.piece(piece, cued=True) for piece in pieces(folded, self.min_piece))

    def piece(self, text: str, *, cued: bool = False) -> float:
        """The injection probability of one piece of folded text by its n-grams; `cued`, with the `ADDRESSED` cue."""
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
        # Every match holds "your " or "中": the substring tests spare most pieces the search.
        if cued and self.cue_weight and ("your " in text or "中" in text) and ADDRESSED.search(text):
            logit += self.cue_weight
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
            cue_weight=model["cue_weight"],
        )
        for channel, model in data["models"].items()
    }
