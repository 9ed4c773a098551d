"""Train the shipped classifiers, one per channel, on the train and dev splits and further hard benign texts.

Usage: `python train.py` (needs scikit-learn, and gecko-ai-guardrails installed for `fold` and the
n-gram features and pieces the run-time scorer uses). Writes ../src/gecko_guardrails/classifier.json: plain
JSON, no pickle. The pool is ../eval/data/train.jsonl, dev.jsonl and hard_benign.jsonl (benign texts that use
injection words innocently, from further public sources: `hard_benign.py`). The user-input model learns from the
pool's user-channel texts only (tool results taught it their documents' words and cost it recall on user input);
the tool-output model from the whole pool, also by line piece (lines joined up to `MIN_PIECES["tool"]` characters,
as it scores them): every line piece of a long benign text as benign, the line pieces holding an inserted injection
as injections. Each threshold comes from out-of-fold scores: the pool is cut into
`FOLDS` folds (a text and the tool results quoting it in one fold), each fold's texts of the channel scored by
that channel's model trained on the other folds; the threshold is the lowest at which `detect` (the rules, or the
classifier at that threshold) flags at most `MAX_HARD_FP` of the channel's hard benign texts and at most `MAX_FP` of
all its benign texts. The tool-output model's `cue_weight` (added to the logit of a piece that tells the reader how to
write its reply, `ADDRESSED`) is chosen from `CUE_WEIGHTS` the same way, out of fold: the weight whose threshold finds
the most of the channel's injections (the smallest such weight). The test split is never read here.
`sources_cv.py` measures this recipe's settings and thresholds with folds by source instead (README, Session 13).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path

from gecko_guardrails.classifier import ADDRESSED, CHANNELS, MIN_PIECE, WINDOW, Classifier, ngrams, pieces
from gecko_guardrails.detect import _BLANKS, detect
from gecko_guardrails.sanitize import fold
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).parent
DATA = HERE.parent / "eval" / "data"
OUT = HERE.parent / "src" / "gecko_guardrails" / "classifier.json"
SIZES = (1, 4)
MAX_FEATURES = 40_000
HARD_WEIGHT = 4.0
# The logistic regression's inverse regularisation (0.05 to 2 compared by source, `sources_cv.py`: none better).
C = 2.0
FOLDS = 5
# Issue 18's bar is 5 % of hard benign texts on held-out data; the budget keeps a margin under it. It counts what
# `detect` flags, rules included (README, Measured).
MAX_HARD_FP = 0.04
MAX_FP = 0.04
# Per channel, the length up to which a long text's lines are joined into one piece. Tool output: 20, and its
# model learns line pieces (README, Measured: a planted request is often one short line of a document).
MIN_PIECES = {"user": MIN_PIECE, "tool": 20}
# Per channel, the cue weights tried (README, Measured): none on user input, where every text addresses the assistant.
CUE_WEIGHTS = {"user": (0.0,), "tool": (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)}


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


@cache
def features(text: str) -> list[str]:
    """The n-grams of a folded text, as the vectorizer takes them (a text recurs across the folds' fits)."""
    return list(ngrams(text, SIZES).elements())


def lines(text: str, payload: str, min_piece: int) -> list[str]:
    """The line pieces of `text` (folded) that hold its inserted `payload` (folded), as the scorer cuts them."""
    payload, text = _BLANKS.sub(" ", payload).strip(), _BLANKS.sub(" ", text)
    found = pieces(text, min_piece)[len(windows(text)) :]
    return [piece for piece in found if payload in piece or (len(piece) >= 40 and piece.strip() in payload)]


def examples(rows: list[dict[str, object]], channel: str) -> tuple[list[str], list[int], list[float]]:
    """What `channel`'s model learns from `rows`: each folded text, label and sample weight; long benign texts also by
    window, inserted injections by the windows that hold them; for tool output, also by line piece (all of a benign
    text's, those holding the injection)."""
    min_piece = MIN_PIECES[channel]
    texts: list[str] = []
    labels: list[int] = []
    weights: list[float] = []
    for row in rows:
        folded = fold(str(row["text"]))
        texts.append(folded)
        labels.append(int(row["label"]))  # type: ignore[call-overload]
        # Benign texts that use injection words are rare and what a user meets most: they weigh more.
        weights.append(HARD_WEIGHT if row["hard"] else 1.0)
        if row["label"] == 0 and len(folded) > WINDOW:
            parts = pieces(folded, min_piece) if channel == "tool" else windows(folded)
        elif row["label"] == 1 and row["payload"]:
            payload = fold(str(row["payload"]))
            parts = around(folded, payload)
            if channel == "tool" and len(folded) > WINDOW:
                parts += lines(folded, payload, min_piece)
        else:
            parts = []
        texts.extend(parts)
        labels.extend([int(row["label"])] * len(parts))  # type: ignore[call-overload]
        weights.extend([1.0] * len(parts))
    return texts, labels, weights


def fit(rows: list[dict[str, object]], channel: str) -> Classifier:
    """`channel`'s classifier trained on `rows` (`examples`). Its threshold is not chosen yet (0)."""
    texts, labels, weights = examples(rows, channel)
    vectorizer = TfidfVectorizer(analyzer=features, sublinear_tf=True, max_features=MAX_FEATURES)
    matrix = vectorizer.fit_transform(texts)
    model = LogisticRegression(C=C, max_iter=3000, class_weight="balanced")
    model.fit(matrix, labels, sample_weight=weights)
    coefficients = {
        gram: (round(float(vectorizer.idf_[index]), 4), round(float(model.coef_[0][index]), 4))
        for gram, index in sorted(vectorizer.vocabulary_.items())
    }
    return Classifier(
        weights=coefficients,
        intercept=round(float(model.intercept_[0]), 6),
        sizes=SIZES,
        threshold=0.0,
        min_piece=MIN_PIECES[channel],
    )


def fold_of(row: dict[str, object]) -> int:
    """A row's fold: by its inserted text when it has one, so a prompt and the tool results quoting it share a fold."""
    key = str(row["payload"] or row["text"])
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % FOLDS


def learns_from(channel: str, rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """What `channel`'s model is trained on: user-channel rows for user input, every row for tool output."""
    return [row for row in rows if channel == "tool" or row["channel"] == channel]


def fit_channel(channel: str, rows: list[dict[str, object]]) -> Classifier:
    """`channel`'s model trained on what it learns from among `rows`."""
    return fit(learns_from(channel, rows), channel)


def out_of_fold(pool: list[dict[str, object]], channel: str) -> list[list[tuple[float, bool]]]:
    """Each of the pool's `channel` rows as its pieces, each piece's logit by `channel`'s model trained on the other
    folds and whether `ADDRESSED` matches it."""
    rows = [row for row in pool if row["channel"] == channel]
    found: list[list[tuple[float, bool]]] = [[] for _ in rows]
    for number in range(FOLDS):
        model = fit_channel(channel, [row for row in pool if fold_of(row) != number])
        for index, row in enumerate(rows):
            if fold_of(row) == number:
                parts = pieces(fold(str(row["text"])), model.min_piece)
                found[index] = [(logit(model.piece(part)), bool(ADDRESSED.search(part))) for part in parts]
    return found


def logit(probability: float) -> float:
    """The logit of `probability`, bounded where the float rounds to 0 or 1."""
    probability = min(max(probability, 1e-12), 1 - 1e-12)
    return math.log(probability / (1 - probability))


def cued(found: list[list[tuple[float, bool]]], weight: float) -> list[float]:
    """Each row's score from its `out_of_fold` pieces: the highest piece probability, `weight` added to the logit of
    a piece `ADDRESSED` matches (as `Classifier.probability` scores)."""
    return [1 / (1 + math.exp(-max(value + weight * cue for value, cue in parts))) for parts in found]


def with_rules(rows: list[dict[str, object]], scores: list[float]) -> list[float]:
    """The classifier's `scores` of `rows`, raised to 1 where `detect`'s rules flag the text whatever the classifier
    says: what `detect` flags at a threshold."""
    return [
        1.0 if any(kind != "classifier" for kind in detect(str(row["text"]), row["channel"]).kinds) else score  # type: ignore[arg-type]
        for score, row in zip(scores, rows, strict=True)
    ]


def pick(rows: list[dict[str, object]], scores: list[float]) -> float:
    """The lowest threshold within the false-positive budgets on one channel's `rows` (`with_rules` scores)."""
    benign = [score for score, row in zip(scores, rows, strict=True) if row["label"] == 0]
    hard = [score for score, row in zip(scores, rows, strict=True) if row["label"] == 0 and row["hard"]]
    for step in range(5, 100):
        threshold = step / 100
        if sum(score >= threshold for score in hard) <= MAX_HARD_FP * len(hard) and sum(
            score >= threshold for score in benign
        ) <= MAX_FP * len(benign):
            return threshold
    return 0.99


def describe(channel: str, threshold: float, rows: list[dict[str, object]], scores: list[float]) -> None:
    """Out-of-fold recall on dev's injections per category, and false positives per kind of benign text (rules and
    classifier, `with_rules` scores)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for score, row in zip(scores, rows, strict=True):
        if row["label"] == 1 and row["split"] == "dev":
            name = f"dev recall {row['category']}"
        elif row["label"] == 0:
            name = f"FP {'hard ' if row['hard'] else ''}{row['split']}"
        else:
            continue
        for group in (name, name.rsplit(" ", 1)[0] if row["label"] == 1 else "FP all"):
            counts[group][0] += score >= threshold
            counts[group][1] += 1
    found = ", ".join(f"{name} {hits}/{total}" for name, (hits, total) in sorted(counts.items()))
    print(f"{channel}: threshold {threshold:.2f}; out of fold: {found}", file=sys.stderr)


def training_pool() -> list[dict[str, object]]:
    """What the shipped model learns from: the train and dev splits and the further hard benign texts."""
    return [{**row, "split": split} for split in ("train", "dev", "hard_benign") for row in load(split)]


def main() -> None:
    pool = training_pool()
    models = {}
    for channel in CHANNELS:
        rows = [row for row in pool if row["channel"] == channel]
        found = out_of_fold(pool, channel)
        rules = with_rules(rows, [0.0] * len(rows))
        best = (-1, 0.0, 0.0, rules)
        for weight in CUE_WEIGHTS[channel]:
            scores = [max(rule, score) for rule, score in zip(rules, cued(found, weight), strict=True)]
            threshold = pick(rows, scores)
            hits = sum(score >= threshold for score, row in zip(scores, rows, strict=True) if row["label"] == 1)
            print(f"{channel}: cue weight {weight}, threshold {threshold:.2f}, found {hits}", file=sys.stderr)
            if hits > best[0]:
                best = (hits, weight, threshold, scores)
        _, weight, threshold, scores = best
        describe(channel, threshold, rows, scores)
        model = fit_channel(channel, pool)
        models[channel] = {
            "intercept": model.intercept,
            "threshold": threshold,
            "min_piece": model.min_piece,
            "cue_weight": weight,
            "weights": model.weights,
        }
    OUT.write_text(
        json.dumps(
            {
                "about": "Prompt-injection classifiers of gecko-ai-guardrails, one per channel (user input: trained on "
                "user-channel texts only; tool output: on all): sublinear TF-IDF over character 1-4-grams of "
                "the folded text, logistic regression (scikit-learn; the tool-output model's cue_weight is "
                "added to the logit of a piece that tells the reader how to write its reply), trained by "
                "training/train.py on the train and dev splits of the public labelled set of eval/SOURCES.md "
                "(deepset/prompt-injections Apache-2.0; Lakera gandalf_ignore_instructions and mosscap MIT; "
                "verazuo/jailbreak_llms MIT; XSafety Apache-2.0; NotInject MIT; WildGuardMix ODC-BY; "
                "microsoft/BIPIA MIT; stanford_alpaca seed tasks Apache-2.0; agent tool outputs of "
                "ethz-spylab/agentdojo MIT; latent injections of NVIDIA/garak Apache-2.0) and hard benign texts "
                "from UltraChat MIT, WildGuardMix ODC-BY, the Python PEPs (public domain, CC0-1.0) and the Chinese "
                "Rust book KaiserY/trpl-zh-cn MIT; thresholds "
                "from out-of-fold scores. Licence of these weights: Apache-2.0.",
                "ngram_sizes": list(SIZES),
                "models": models,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
