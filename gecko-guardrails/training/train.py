"""Train the shipped classifier on ../eval/data/train.jsonl and pick its thresholds on dev.jsonl.

Usage: `python train.py` (needs scikit-learn, and gecko-ai-guardrails installed for `fold` and the
n-gram features and pieces the run-time scorer uses). Writes ../src/gecko_guardrails/classifier.json: plain
JSON, no pickle. There is one threshold per channel (user input, tool output): the lowest at which the classifier
alone flags at most
`MAX_HARD_FP` of dev's hard benign texts (those that use injection words innocently) and at most
`MAX_FP` of all of dev's benign texts of that channel; the test split is never read here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gecko_guardrails.classifier import WINDOW, Classifier, ngrams
from gecko_guardrails.sanitize import fold
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).parent
DATA = HERE.parent / "eval" / "data"
OUT = HERE.parent / "src" / "gecko_guardrails" / "classifier.json"
SIZES = (1, 4)
MAX_FEATURES = 40_000
HARD_WEIGHT = 4.0
MAX_HARD_FP = 0.03
MAX_FP = 0.03


def load(split: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in (DATA / f"{split}.jsonl").open(encoding="utf-8")]


def windows(text: str) -> list[str]:
    """Benign long texts also teach the model their windows (every window of a benign text is benign)."""
    return [text[start : start + WINDOW] for start in range(0, max(len(text) - WINDOW // 2, 1), WINDOW // 2)]


def around(text: str, payload: str) -> list[str]:
    """An injection inside a tool result teaches the model the windows that hold it, as the scorer sees them."""
    at = text.find(payload)
    if at < 0 or len(text) <= WINDOW:
        return []
    step = WINDOW // 2
    return [
        text[start : start + WINDOW]
        for start in range(0, len(text) - step, step)
        if start <= at and at + min(len(payload), step) <= start + WINDOW
    ]


def pick(scorer: Classifier, dev: list[dict[str, object]]) -> float:
    """The lowest threshold within the false-positive budgets on `dev` (one channel's rows)."""
    scores = [(scorer.probability(fold(str(row["text"]))), row) for row in dev]
    benign = [score for score, row in scores if row["label"] == 0]
    hard = [score for score, row in scores if row["label"] == 0 and row["hard"]]
    positives = [score for score, row in scores if row["label"] == 1]
    for step in range(5, 100):
        threshold = step / 100
        hard_fp = sum(score >= threshold for score in hard)
        benign_fp = sum(score >= threshold for score in benign)
        if hard_fp <= MAX_HARD_FP * len(hard) and benign_fp <= MAX_FP * len(benign):
            recall = sum(score >= threshold for score in positives) / len(positives)
            print(
                f"{dev[0]['channel']}: threshold {threshold:.2f}, dev recall {recall:.3f}, "
                f"FP hard {hard_fp}/{len(hard)}, FP benign {benign_fp}/{len(benign)}",
                file=sys.stderr,
            )
            return threshold
    return 0.99


def main() -> None:
    train, dev = load("train"), load("dev")
    texts: list[str] = []
    labels: list[int] = []
    weights: list[float] = []
    for row in train:
        folded = fold(str(row["text"]))
        texts.append(folded)
        labels.append(int(row["label"]))  # type: ignore[call-overload]
        # Benign texts that use injection words are rare and what a user meets most: they weigh more.
        weights.append(HARD_WEIGHT if row["hard"] else 1.0)
        if row["label"] == 0 and len(folded) > WINDOW:
            parts = windows(folded)
        elif row["label"] == 1 and row["payload"]:
            parts = around(folded, fold(str(row["payload"])))
        else:
            parts = []
        texts.extend(parts)
        labels.extend([int(row["label"])] * len(parts))  # type: ignore[call-overload]
        weights.extend([1.0] * len(parts))
    vectorizer = TfidfVectorizer(
        analyzer=lambda text: list(ngrams(text, SIZES).elements()), sublinear_tf=True, max_features=MAX_FEATURES
    )
    matrix = vectorizer.fit_transform(texts)
    model = LogisticRegression(C=2.0, max_iter=3000, class_weight="balanced")
    model.fit(matrix, labels, sample_weight=weights)
    vocabulary = vectorizer.vocabulary_
    coefficients = {
        gram: (round(float(vectorizer.idf_[index]), 4), round(float(model.coef_[0][index]), 4))
        for gram, index in sorted(vocabulary.items())
    }
    scorer = Classifier(weights=coefficients, intercept=float(model.intercept_[0]), sizes=SIZES, thresholds={})
    thresholds = {
        channel: pick(scorer, [row for row in dev if row["channel"] == channel]) for channel in ("user", "tool")
    }
    OUT.write_text(
        json.dumps(
            {
                "about": "Prompt-injection classifier of gecko-ai-guardrails: sublinear TF-IDF over character "
                "1-4-grams of the folded text, logistic regression (scikit-learn), trained by training/train.py "
                "on the public labelled set of eval/SOURCES.md (deepset/prompt-injections Apache-2.0; "
                "Lakera gandalf_ignore_instructions MIT; verazuo/jailbreak_llms MIT; XSafety Apache-2.0; "
                "NotInject MIT; microsoft/BIPIA MIT; stanford_alpaca seed tasks Apache-2.0). Licence of these "
                "weights: Apache-2.0.",
                "ngram_sizes": list(SIZES),
                "intercept": round(float(model.intercept_[0]), 6),
                "thresholds": thresholds,
                "weights": coefficients,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
