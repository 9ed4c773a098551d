"""Hostile knowledge inputs: files, documents and metadata end in a `DocumentLoadError` naming the
problem before anything is written, or in chunks that hold the text as given."""

from __future__ import annotations

import datetime
import io
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gecko.core.long_term_memory import LongTermMemory
from gecko.core.memory import TokenMemory
from gecko.errors import DocumentLoadError, ModelOutputError
from gecko.plugins.knowledge import Document, IngestionPipeline, Retriever
from gecko.plugins.knowledge.loaders import load_bytes
from gecko.plugins.knowledge.splitters import AutoSplitter, RecursiveSplitter, SentenceSplitter
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.embedders import HashingEmbedder


def _pdf() -> bytes:
    pypdf = pytest.importorskip("pypdf")
    writer = pypdf.PdfWriter()
    writer.add_blank_page(100, 100)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "deep.json: unusable JSON: nested too deeply"),
        ("deep.jsonl", b"{}\n" + b"[" * 100_000 + b"]" * 100_000, "unusable JSON on line 2: nested too deeply"),
        ("big.json", b"1" * 5000, "big.json: unusable JSON: Exceeds the limit (4300 digits)"),
        ("big.jsonl", b'{"text": "a", "n": ' + b"1" * 5000 + b"}", "unusable JSON on line 1: Exceeds the limit"),
        ("bad.jsonl", b'{"text": "a"}\n{"text": \n', "bad.jsonl: invalid JSON on line 2, column 10"),
        ("bad.json", b"\n  {", "bad.json: invalid JSON at line 2, column 4"),
        ("empty.json", b"", "invalid JSON at line 1, column 1"),
        ("surrogate.json", b'{"text": "a \\ud800 b"}', "text of 'surrogate.json' holds a lone surrogate"),
        (
            "surrogate.jsonl",
            b'{"text": "a", "k": "\\udc00"}',
            "metadata 'k' of 'surrogate.jsonl' holds a lone surrogate",
        ),
        ("key.json", b'{"text": "a", "\\udc00": "v"}', "metadata key '\\udc00' of 'key.json' holds a lone surrogate"),
        ("binary.txt", bytes(range(256)), "binary.txt: not UTF-8 text (invalid start byte at byte 128)"),
        ("utf16.md", "hi".encode("utf-16"), "utf16.md: not UTF-8 text"),
        ("cut.html", b"<p>caf\xc3", "cut.html: not UTF-8 text"),
        ("empty.pdf", b"", "empty.pdf: not a readable PDF"),
        ("garbage.pdf", b"%PDF-1.7\n\x00\xff", "garbage.pdf: not a readable PDF"),
        ("image.png", b"\x89PNG", "unsupported file type '.png'"),
        ("no_suffix", b"text", "unsupported file type '(no suffix)'"),
    ],
)
def test_hostile_files_are_document_load_errors(name: str, data: bytes, message: str) -> None:
    with pytest.raises(DocumentLoadError) as caught:
        load_bytes(name, data)
    assert message in str(caught.value)


def test_a_truncated_pdf_is_a_document_load_error() -> None:
    pdf = _pdf()
    with pytest.raises(DocumentLoadError, match=r"cut\.pdf: not a readable PDF"):
        load_bytes("cut.pdf", pdf[: len(pdf) // 2])
    assert load_bytes("blank.pdf", pdf) == []  # no page has text


@pytest.mark.parametrize(
    ("name", "data", "texts", "metadata"),
    [
        ("nan.json", b'[NaN, {"text": "x", "v": Infinity, "w": 1}]', ["NaN", "x"], [{"item": 0}, {"item": 1, "w": 1}]),
        ("wide.json", b'{"text": "x", "n": 100000000000000000000, "m": -3}', ["x"], [{"m": -3}]),
        ("pairs.json", b'{"text": "\\ud83d\\ude00"}', ["\U0001f600"], [{}]),
        ("charrefs.html", b"<p>&#xd800; &#0; &#x110000;</p>", ["\ufffd \ufffd \ufffd"], [{}]),
        ("script.html", b"<script>x<p>y", [""], [{}]),
        ("open.html", b"<![if x]>a<!--", ["a<!--"], [{}]),
        ("nul.txt", b"a\x00b", ["a\x00b"], [{}]),
        ("bom.txt", b"\xef\xbb\xbfhi", ["hi"], [{}]),
        ("blank.jsonl", b"\n \n", [], []),
    ],
)
def test_odd_but_readable_files_load_as_given(
    name: str, data: bytes, texts: list[str], metadata: list[Mapping[str, object]]
) -> None:
    documents = load_bytes(name, data)
    assert [document.text for document in documents] == texts
    assert [dict(document.metadata) for document in documents] == metadata


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (Document("s.txt", "x", {"d": datetime.date(2020, 1, 1)}), "metadata 'd' of 's.txt' is a date"),  # type: ignore[dict-item]
        (Document("s.txt", "x", {"s": {1}}), "metadata 's' of 's.txt' is a set"),  # type: ignore[dict-item]
        (Document("s.txt", "x", {"b": b"x"}), "metadata 'b' of 's.txt' is a bytes"),  # type: ignore[dict-item]
        (Document("s.txt", "x", {"n": None}), "metadata 'n' of 's.txt' is a NoneType"),  # type: ignore[dict-item]
        (Document("s.txt", "x", {"d": {"a": 1}}), "metadata 'd' of 's.txt' is a dict"),  # type: ignore[dict-item]
        (Document("s.txt", "x", {1: "x"}), "metadata keys of 's.txt' are non-empty strings"),  # type: ignore[dict-item]
        (Document("s.txt", "x", {"$in": "x"}), "metadata keys of 's.txt' are non-empty strings"),
        (Document("s.txt", "x", ["a"]), "metadata of 's.txt' must be a dict, got list"),  # type: ignore[arg-type]
        (Document("s.txt", "x", {"x": float("nan")}), "metadata 'x' of 's.txt' is nan"),
        (Document("s.txt", "x", {"i": 10**30}), "metadata 'i' of 's.txt' is 1000000000000000000000000000000, outside"),
        (Document("s.txt", "x", {"l": []}), "lists must be non-empty and hold only strings"),
        (Document("s.txt", "x", {"l": [1]}), "lists must be non-empty and hold only strings"),  # type: ignore[list-item]
        (Document("s.txt", "a \ud800"), "text of 's.txt' holds a lone surrogate"),
        (Document("s\udc00", "a"), "source 's\\udc00' holds a lone surrogate"),
        (Document("s.txt", b"x"), "a Document needs a non-empty source and str text"),  # type: ignore[arg-type]
        (Document("", "x"), "a Document needs a non-empty source and str text"),
    ],
)
async def test_documents_no_store_can_hold_are_refused_before_anything_is_written(
    document: Document, message: str
) -> None:
    store = MemoryStorage()
    pipeline = IngestionPipeline(store, HashingEmbedder(8), progress=False)
    with pytest.raises(DocumentLoadError) as caught:
        await pipeline.run([Document("good.txt", "kept out too"), document])
    assert message in str(caught.value)
    assert await store.list_collections() == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\n\t ",
        "\n" * 20_000,
        "x" * 200_000,
        "word " * 50_000,
        "中" * 50_000,
        "a.b,c;d:" * 20_000,
        "# h\n" * 5000,
    ],
    ids=["empty", "blank", "newlines", "one-long-word", "words", "cjk", "punctuation", "headings-only"],
)
@pytest.mark.parametrize("splitter", [AutoSplitter(), RecursiveSplitter(50, 10), SentenceSplitter(40, 0)], ids=repr)
def test_splitters_give_non_empty_chunks_within_size_that_keep_every_character(
    splitter: AutoSplitter | RecursiveSplitter, text: str
) -> None:
    chunks = splitter.split(Document("s.md" if text.startswith("#") else "s.txt", text))
    assert all(chunk.text and chunk.text == chunk.text.strip() for chunk in chunks)
    size = splitter.text.chunk_size if isinstance(splitter, AutoSplitter) else splitter.chunk_size
    assert all(len(chunk.text) <= size for chunk in chunks)
    blank = set(" \n\t")
    assert set("".join(chunk.text for chunk in chunks)) - blank == set(text) - blank


async def test_zero_chunk_documents_ingest_as_empty_sources(tmp_path: Path) -> None:
    (tmp_path / "blank.txt").write_text(" \n")
    (tmp_path / "empty.jsonl").write_bytes(b"")
    summary = await IngestionPipeline(MemoryStorage(), HashingEmbedder(8), progress=False).run([tmp_path])
    assert (summary.files, summary.chunks, summary.embedded) == (2, 0, 0)


def _reference_merge(splitter: RecursiveSplitter, pieces: list[str]) -> list[str]:
    """The packing as first written (a join of every piece at each step): what `_merge` must still give."""
    chunks: list[str] = []
    current: list[str] = []
    for piece in pieces:
        if current and splitter.length("".join([*current, piece])) > splitter.chunk_size:
            chunks.append("".join(current))
            while current and (
                splitter.length("".join(current)) > splitter.chunk_overlap
                or splitter.length("".join([*current, piece])) > splitter.chunk_size
            ):
                current.pop(0)
        current.append(piece)
    if current:
        chunks.append("".join(current))
    return chunks


def _words_and_quarters(text: str) -> int:
    """A length that is not additive, as token counts are not."""
    return len(text.split()) + len(text) // 4


@given(
    pieces=st.lists(st.text(alphabet="ab \n,", min_size=1, max_size=12), max_size=60),
    size=st.integers(1, 30),
    overlap_share=st.floats(0, 0.99),
    measure=st.sampled_from([len, _words_and_quarters]),
)
def test_packing_pieces_gives_what_the_first_packing_gave(
    pieces: list[str], size: int, overlap_share: float, measure: Callable[[str], int]
) -> None:
    splitter = RecursiveSplitter(size, int(size * overlap_share), length=measure)
    fitting = [piece for piece in pieces if measure(piece) <= size]  # `_merge` is given pieces that fit
    assert splitter._merge(fitting) == _reference_merge(splitter, fitting)


class _HostileEmbedder(HashingEmbedder):
    """`HashingEmbedder(8)` whose answers are made wrong the way `how` says."""

    def __init__(self, how: str) -> None:
        super().__init__(8)
        self.how = how

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = await super().embed(texts)
        wrong: dict[str, Any] = {
            "none": None,
            "a dict": {text: vector for text, vector in zip(texts, vectors, strict=True)},
            "one vector fewer": vectors[1:],
            "one vector more": [*vectors, vectors[0]],
            "a short vector": [vector[:-1] for vector in vectors],
            "a long vector": [[*vector, 0.5] for vector in vectors],
            "a string for a vector": ["0.1,0.2" for _ in vectors],
            "a number for a vector": [0.5 for _ in vectors],
            "booleans": [[component > 0 for component in vector] for vector in vectors],
            "one boolean": [[True, *vector[1:]] for vector in vectors],
            "a NaN": [[*vector[:-1], math.nan] for vector in vectors],
            "an infinity": [[-math.inf, *vector[1:]] for vector in vectors],
            "a string component": [[*vector[:-1], "0.5"] for vector in vectors],
            "None components": [[None] * 8 for _ in vectors],
        }
        answer: list[list[float]] = wrong[self.how]
        return answer


WRONG_EMBEDDINGS = (
    ("none", "returned a NoneType for"),
    ("a dict", "returned a dict for"),
    ("one vector fewer", "returned 0 vectors for 1 texts"),
    ("one vector more", "returned 2 vectors for 1 texts"),
    ("a short vector", "returned vector 0 with 7 components"),
    ("a long vector", "returned vector 0 with 9 components"),
    ("a string for a vector", "returned a str as vector 0"),
    ("a number for a vector", "returned a float as vector 0"),
    ("booleans", "returned vector 0, which must be a sequence of real numbers, and holds a bool"),
    ("one boolean", "returned vector 0, which must be a sequence of real numbers, and holds a bool"),
    ("a NaN", "returned vector 0, which has a NaN, infinite or too large component"),
    ("an infinity", "returned vector 0, which has a NaN, infinite or too large component"),
    ("a string component", "returned vector 0, which must be a sequence of real numbers, and holds a str"),
    ("None components", "returned vector 0, which must be a sequence of real numbers, and holds a NoneType"),
)


@pytest.mark.parametrize(("how", "message"), WRONG_EMBEDDINGS, ids=[how for how, _ in WRONG_EMBEDDINGS])
async def test_an_embedder_answer_of_the_wrong_shape_is_a_model_output_error_and_stores_nothing(
    how: str, message: str
) -> None:
    store = MemoryStorage()
    with pytest.raises(ModelOutputError, match=f"_HostileEmbedder \\(dimension 8\\) {message}"):
        await IngestionPipeline(store, _HostileEmbedder(how), progress=False).run([Document("a.txt", "alpha")])
    assert await store.collection("knowledge").count() == 0

    await IngestionPipeline(store, HashingEmbedder(8), progress=False).run([Document("a.txt", "alpha")])
    with pytest.raises(ModelOutputError, match=message):
        await Retriever(store, _HostileEmbedder(how)).search("alpha", mode="dense")

    memory = LongTermMemory(TokenMemory(max_tokens=200), store, _HostileEmbedder(how))
    with pytest.raises(ModelOutputError, match=message):
        await memory.remember("the sky is green")
    assert await store.collection("long_term_memory").count() == 0


_MARKDOWN_LINE = st.one_of(
    st.tuples(st.just("heading"), st.integers(1, 6), st.integers(1, 40)),
    st.tuples(st.just("text"), st.integers(0, 3), st.integers(1, 40)),
    st.tuples(st.just("fence"), st.just(0), st.just(0)),
    st.tuples(st.just("blank"), st.just(0), st.just(0)),
)


def _markdown(lines: list[tuple[str, int, int]]) -> tuple[str, list[str]]:
    """A Markdown text from line shapes, and the unique words it holds (one or more per heading and text line)."""
    words: list[str] = []
    rendered: list[str] = []
    for number, (kind, level, width) in enumerate(lines):
        if kind == "fence":
            rendered.append("```")
        elif kind == "blank":
            rendered.append("")
        else:
            line = [f"w{number}x{piece}" for piece in range(width)]
            words += line
            rendered.append(("#" * level + " " if kind == "heading" else "") + " ".join(line))
    return "\n".join(rendered), words


@given(st.lists(_MARKDOWN_LINE, max_size=40))
def test_markdown_chunks_keep_every_word_within_a_bounded_size(lines: list[tuple[str, int, int]]) -> None:
    """Headings with no text under them were dropped (a file of headings gave no chunk); a long heading
    path started every chunk, past any size."""
    text, words = _markdown(lines)
    splitter = AutoSplitter(chunk_size=120)
    chunks = splitter.split(Document("s.md", text, format="markdown"))
    found = {word for chunk in chunks for word in chunk.text.replace(">", " ").split()}
    assert set(words) <= found
    assert all(chunk.text and len(chunk.text) <= 120 + 120 // 4 + 1 for chunk in chunks)


@pytest.mark.parametrize(
    ("text", "chunks"),
    [
        ("# Title", [("Title", "Title")]),
        ("# Guide\n## Install\n## Use", [("Guide > Install", "Guide > Install"), ("Guide > Use", "Guide > Use")]),
        ("# A\n\n# B\nbody", [("A", "A"), ("B\nbody", "B")]),
        ("# A\n## B\nbody", [("A > B\nbody", "A > B")]),
        ("intro\n# Last", [("intro", None), ("Last", "Last")]),
    ],
)
def test_headings_with_no_text_under_them_are_chunks(text: str, chunks: list[tuple[str, str | None]]) -> None:
    found = AutoSplitter().split(Document("s.md", text, format="markdown"))
    assert [(chunk.text, chunk.metadata.get("heading")) for chunk in found] == chunks


async def test_a_file_of_questions_as_headings_is_found_by_its_words(tmp_path: Path) -> None:
    (tmp_path / "faq.md").write_text("# FAQ\n## How do I reset my password?\n## Where are invoices kept?\n")
    store = MemoryStorage()
    summary = await IngestionPipeline(store, HashingEmbedder(8), progress=False).run([tmp_path])
    assert summary.chunks == 2
    (best, *_) = await Retriever(store, HashingEmbedder(8)).search("invoices", mode="lexical")
    assert best.text == "FAQ > Where are invoices kept?"
