"""Splitters: chunk sizes, overlap, CJK sentences, Markdown sections and token measures."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gecko.errors import ConfigurationError
from gecko.plugins.knowledge import (
    AutoSplitter,
    Document,
    MarkdownSplitter,
    RecursiveSplitter,
    SentenceSplitter,
    TokenSplitter,
)

ENGLISH = (
    "Gecko ingests documents. It splits them into chunks! Each chunk is embedded? Then it is stored.\n\n"
    "A second paragraph follows here, with a few more words to read.\n"
    "And a last line."
)
CHINESE = "公司的报销政策如下。员工出差费用在三十天内报销！需要提供发票吗？需要。“午餐不报销。”住宿标准每晚五百元。"


@given(st.text(alphabet="ab .\n。，字", max_size=400), st.integers(5, 60), st.integers(0, 4))
@settings(max_examples=150, deadline=None)
def test_no_chunk_exceeds_the_size_and_no_text_is_lost(text: str, size: int, overlap: int) -> None:
    splitter = RecursiveSplitter(size, min(overlap, size - 1))
    chunks = splitter.split_text(text)
    assert all(len(chunk) <= size for chunk in chunks)
    assert all(chunk in text for chunk in chunks)
    if not overlap:
        assert "".join("".join(chunks).split()) == "".join(text.split())


def test_recursive_splitter_prefers_paragraphs_then_sentences() -> None:
    chunks = RecursiveSplitter(100, 0).split_text(ENGLISH)
    assert chunks[0] == (
        "Gecko ingests documents. It splits them into chunks! Each chunk is embedded? Then it is stored."
    )
    assert chunks[1].startswith("A second paragraph")
    assert all(len(chunk) <= 100 for chunk in chunks)


def test_overlap_repeats_the_end_of_a_chunk_at_the_start_of_the_next() -> None:
    chunks = RecursiveSplitter(40, 20).split_text("one two three four five six seven eight nine ten eleven twelve")
    assert len(chunks) > 1
    for previous, following in itertools.pairwise(chunks):
        assert following.split()[0] in previous.split()


def test_sentence_splitter_cuts_chinese_at_full_width_marks_only() -> None:
    chunks = SentenceSplitter(25, 0).split_text(CHINESE)
    assert chunks == [
        "公司的报销政策如下。员工出差费用在三十天内报销！",
        "需要提供发票吗？需要。“午餐不报销。”",
        "住宿标准每晚五百元。",
    ]


def test_a_sentence_longer_than_the_size_falls_back_to_clauses_then_characters() -> None:
    chunks = SentenceSplitter(6, 0).split_text("甲乙丙，丁戊己庚辛壬癸子丑。")
    assert chunks[0] == "甲乙丙，"
    assert all(len(chunk) <= 6 for chunk in chunks)
    assert "".join(chunks) == "甲乙丙，丁戊己庚辛壬癸子丑。"


def test_markdown_splitter_keeps_the_heading_path_and_ignores_code_fences() -> None:
    text = "# Guide\nIntro.\n## Install\nRun it.\n```\n# not a heading\n```\n## Use\nCall it."
    chunks = MarkdownSplitter().split(Document("guide.md", text, format="markdown"))
    assert [chunk.metadata.get("heading") for chunk in chunks] == ["Guide", "Guide > Install", "Guide > Use"]
    assert chunks[1].text == "Guide > Install\nRun it.\n```\n# not a heading\n```"
    assert chunks[2].text == "Guide > Use\nCall it."


def test_token_splitter_measures_with_the_given_counter() -> None:
    def words(text: str) -> int:
        return len(text.split())

    splitter = TokenSplitter(words, chunk_tokens=5, overlap_tokens=0)
    chunks = splitter.split_text("a b c d e f g h i j k l")
    assert chunks == ["a b c d e", "f g h i j", "k l"]
    assert splitter.fingerprint == "tokens:5:0:words"


def test_a_tokenizer_file_that_cannot_be_read_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="tokenizer"):
        TokenSplitter.from_tokenizer_file("/nonexistent/tokenizer.json")


def test_auto_splitter_picks_by_format_and_script() -> None:
    auto = AutoSplitter(chunk_size=50, cjk_chunk_size=20)
    zh = auto.split(Document("zh.txt", CHINESE))
    assert all(len(chunk.text) <= 20 for chunk in zh)
    md = auto.split(Document("a.md", "# Title\nBody text.", format="markdown"))
    assert md[0].metadata["heading"] == "Title"


def test_invalid_sizes_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        RecursiveSplitter(10, 10)
    with pytest.raises(ConfigurationError):
        RecursiveSplitter(0)
