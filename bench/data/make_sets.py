"""Rebuild the retrieval sets in this folder from their public sources (see README.md here).

    python bench/data/make_sets.py SCIFACT_ZIP CMRC2018_DEV_JSON

SCIFACT_ZIP is the SciFact release as CSV files (claims_validation.csv, corpus_train.csv);
CMRC2018_DEV_JSON is `squad-style-data/cmrc2018_dev.json` of the CMRC 2018 repository. Writes
`<set>/corpus.jsonl.gz` (`{"id", "title", "text"}` per line), `<set>/queries.jsonl`
(`{"id", "text"}`) and `<set>/qrels.tsv` (`query-id`, `corpus-id`, `score`) for each set.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import re
import sys
import tokenize
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _sentences(array_repr: str) -> list[str]:
    """The strings of a printed numpy array of sentences (`['a'\\n 'b']`: no commas between items)."""
    tokens = tokenize.generate_tokens(io.StringIO(array_repr).readline)
    return [ast.literal_eval(token.string) for token in tokens if token.type == tokenize.STRING]


def _write(
    name: str, corpus: list[dict[str, str]], queries: list[dict[str, str]], qrels: list[tuple[str, str]]
) -> None:
    folder = HERE / name
    folder.mkdir(exist_ok=True)
    lines = "".join(json.dumps(doc, ensure_ascii=False) + "\n" for doc in corpus).encode("utf-8")
    (folder / "corpus.jsonl.gz").write_bytes(gzip.compress(lines, compresslevel=9, mtime=0))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries), "utf-8")
    rows = "".join(f"{query}\t{doc}\t1\n" for query, doc in qrels)
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows, "utf-8")
    print(f"{name}: {len(corpus)} documents, {len(queries)} queries, {len(qrels)} judgements")


def scifact(archive: Path) -> None:
    """BEIR's SciFact test split: the 300 dev claims, each relevant to the abstracts it cites."""
    csv.field_size_limit(1 << 30)
    with zipfile.ZipFile(archive) as zipped:
        claims = list(csv.DictReader(io.TextIOWrapper(zipped.open("claims_validation.csv"), "utf-8")))
        abstracts = list(csv.DictReader(io.TextIOWrapper(zipped.open("corpus_train.csv"), "utf-8")))
    corpus = [
        {"id": row["doc_id"], "title": row["title"], "text": " ".join(_sentences(row["abstract"]))} for row in abstracts
    ]
    queries: dict[str, str] = {}
    qrels: set[tuple[str, str]] = set()
    for row in claims:
        queries[row["id"]] = row["claim"]
        qrels.update((row["id"], doc) for doc in re.findall(r"\d+", row["cited_doc_ids"]))
    _write(
        "scifact",
        corpus,
        [{"id": key, "text": text} for key, text in sorted(queries.items(), key=lambda item: int(item[0]))],
        sorted(qrels, key=lambda pair: (int(pair[0]), int(pair[1]))),
    )


def cmrc2018(dev: Path) -> None:
    """CMRC 2018 dev as retrieval: each question is relevant to the paragraph it was written on."""
    data = json.loads(dev.read_text("utf-8"))["data"]
    corpus: list[dict[str, str]] = []
    queries: list[dict[str, str]] = []
    qrels: list[tuple[str, str]] = []
    for article in data:
        for paragraph in article["paragraphs"]:
            corpus.append({"id": paragraph["id"], "title": article.get("title", ""), "text": paragraph["context"]})
            for qa in paragraph["qas"]:
                queries.append({"id": qa["id"], "text": qa["question"]})
                qrels.append((qa["id"], paragraph["id"]))
    _write("cmrc2018", corpus, queries, qrels)


if __name__ == "__main__":
    scifact(Path(sys.argv[1]))
    cmrc2018(Path(sys.argv[2]))
