"""Splitters: documents cut into chunks that fit an embedder and still read as whole thoughts.

- `RecursiveSplitter`: by paragraphs, then lines, sentences, clauses, words and at last characters,
  packing neighbouring pieces up to `chunk_size` with `chunk_overlap` carried over.
- `TokenSplitter`: the same, measured in a model's tokens (`TokenSplitter.from_tokenizer_file`).
- `SentenceSplitter`: whole sentences, for text without spaces between words (Chinese, Japanese):
  a sentence ends at a full-width stop, exclamation or question mark (with any closing quote), or
  at `. ! ?` before a space.
- `MarkdownSplitter`: one section per heading, the heading path kept in the chunk and in
  `metadata["heading"]`; long sections split further.
- `AutoSplitter` (the pipeline's default): Markdown by headings, mostly-CJK text by sentences,
  everything else recursively.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gecko.errors import ConfigurationError
from gecko.plugins.knowledge.documents import Chunk, Document
from gecko.plugins.vector.filters import MetadataValue

__all__ = (
    "Splitter",
    "RecursiveSplitter",
    "TokenSplitter",
    "SentenceSplitter",
    "MarkdownSplitter",
    "AutoSplitter",
    "cjk_ratio",
)

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_LINE = re.compile(r"\n")
# Full-width stop, exclamation and question marks (and ASCII ! ?), with any closing quotes or brackets.
_SENTENCE = re.compile("[\u3002\uff01\uff1f!?]+[\u201d\u2019\u300d\u300f\uff09)\"']*|[.](?=\\s)|\u2026+")
# Full-width comma, enumeration comma, semicolon and colon, and their ASCII forms.
_CLAUSE = re.compile("[\uff0c\u3001\uff1b\uff1a,;:]")
_WORD = re.compile(r"\s+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


class Splitter(Protocol):
    """Cuts a document into chunks; `fingerprint` names its settings (a change re-ingests)."""

    @property
    def fingerprint(self) -> str:
        """A stable text naming the splitter and its settings."""
        ...

    def split(self, document: Document) -> list[Chunk]:
        """The document's chunks, in reading order."""
        ...


def cjk_ratio(text: str) -> float:
    """The share of `text`'s non-space characters that are Chinese, Japanese or Korean."""
    letters = len(text) - text.count(" ") - text.count("\n")
    return len(_CJK.findall(text)) / letters if letters > 0 else 0.0


def _pieces(text: str, separator: re.Pattern[str]) -> list[str]:
    """`text` cut after every match of `separator`; the pieces concatenate back to `text`."""
    pieces, start = [], 0
    for match in separator.finditer(text):
        if match.end() > start:
            pieces.append(text[start : match.end()])
            start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


class RecursiveSplitter:
    """Chunks of at most `chunk_size` (measured by `length`), cut at the largest boundary that fits.

    Args:
        chunk_size: the most a chunk may measure.
        chunk_overlap: how much of a chunk's end starts the next chunk too (whole pieces only).
        length: measures a text; characters by default.
        separators: boundaries to try, largest first; characters are the last resort.
    """

    name = "recursive"

    def __init__(
        self,
        chunk_size: int = 800,
        chunk_overlap: int = 120,
        *,
        length: Callable[[str], int] = len,
        separators: Sequence[re.Pattern[str]] = (_PARAGRAPH, _LINE, _SENTENCE, _CLAUSE, _WORD),
    ) -> None:
        if chunk_size < 1 or not 0 <= chunk_overlap < chunk_size:
            raise ConfigurationError(
                f"chunk_size must be positive and chunk_overlap between 0 and chunk_size, got {chunk_size}, "
                f"{chunk_overlap}"
            )
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.length = length
        self.separators = tuple(separators)

    @property
    def fingerprint(self) -> str:
        """Splitter kind and settings."""
        return f"{self.name}:{self.chunk_size}:{self.chunk_overlap}:{getattr(self.length, '__name__', 'length')}"

    def split(self, document: Document) -> list[Chunk]:
        """The document's chunks; each carries the document's metadata.

        No chunk number is added: an edit early in a document must not change the identity (and
        so the stored vector) of the unchanged chunks after it.
        """
        return [Chunk(text, document.metadata) for text in self.split_text(document.text)]

    def split_text(self, text: str) -> list[str]:
        """`text` cut into stripped, non-empty chunk texts."""
        return [chunk for chunk in (piece.strip() for piece in self._split(text, 0)) if chunk]

    def _split(self, text: str, level: int) -> list[str]:
        if self.length(text) <= self.chunk_size:
            return [text]
        if level >= len(self.separators):
            return self._hard_cut(text)
        chunks: list[str] = []
        fitting: list[str] = []
        for piece in _pieces(text, self.separators[level]):
            if self.length(piece) <= self.chunk_size:
                fitting.append(piece)
                continue
            chunks.extend(self._merge(fitting))
            fitting = []
            chunks.extend(self._split(piece, level + 1))
        chunks.extend(self._merge(fitting))
        return chunks

    def _merge(self, pieces: list[str]) -> list[str]:
        """Neighbouring pieces packed into chunks, each chunk starting with the last one's overlap."""
        chunks: list[str] = []
        current: deque[str] = deque()
        text = ""  # always "".join(current): one copy per step, not a join of every piece (tiny pieces add up)
        for piece in pieces:
            if current and self.length(text + piece) > self.chunk_size:
                chunks.append(text)
                while current and (
                    self.length(text) > self.chunk_overlap or self.length(text + piece) > self.chunk_size
                ):
                    text = text[len(current.popleft()) :]
            current.append(piece)
            text += piece
        if current:
            chunks.append(text)
        return chunks

    def _hard_cut(self, text: str) -> list[str]:
        chunks, start = [], 0
        while start < len(text):
            end = start + 1
            # Grow by halving steps: `length` may weigh characters unequally (tokens).
            step = max(1, len(text) - start)
            while step:
                if end + step <= len(text) and self.length(text[start : end + step]) <= self.chunk_size:
                    end += step
                else:
                    step //= 2
            chunks.append(text[start:end])
            start = end
        return chunks


class TokenSplitter(RecursiveSplitter):
    """`RecursiveSplitter` measured in tokens: `counter(text)` is the number of tokens of `text`.

    Use the embedding model's own tokenizer so that no chunk is truncated by the model:
    `TokenSplitter.from_tokenizer_file("tokenizer.json", chunk_tokens=256)`.
    """

    name = "tokens"

    def __init__(self, counter: Callable[[str], int], chunk_tokens: int = 256, overlap_tokens: int = 32) -> None:
        super().__init__(chunk_tokens, overlap_tokens, length=counter)

    @classmethod
    def from_tokenizer_file(cls, path: str | Path, chunk_tokens: int = 256, overlap_tokens: int = 32) -> TokenSplitter:
        """A splitter counting with a Hugging Face `tokenizer.json` (needs the `tokenizers` package).

        Raises:
            ConfigurationError: `tokenizers` is not installed or the file cannot be read.
        """
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigurationError("TokenSplitter.from_tokenizer_file needs `pip install tokenizers`") from exc
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises its own Exception subclass
            raise ConfigurationError(f"cannot read tokenizer file {str(path)!r}: {exc}") from exc
        tokenizer.no_truncation()
        tokenizer.no_padding()

        def tokens(text: str) -> int:
            return len(tokenizer.encode(text, add_special_tokens=False).ids)

        tokens.__name__ = f"tokenizer-{Path(path).name}"
        return cls(tokens, chunk_tokens, overlap_tokens)


class SentenceSplitter(RecursiveSplitter):
    """Chunks of whole sentences, for text with no spaces between words (Chinese, Japanese).

    Sentences end at full-width or ASCII stops, exclamation and question marks (with any closing
    quote or bracket; `.` only before a space) or at a line break; a sentence longer than
    `chunk_size` is cut at clause marks (full-width commas, semicolons, colons) and then characters.
    """

    name = "sentences"

    def __init__(self, chunk_size: int = 300, chunk_overlap: int = 60, *, length: Callable[[str], int] = len) -> None:
        super().__init__(chunk_size, chunk_overlap, length=length, separators=(_SENTENCE, _LINE, _CLAUSE, _WORD))


@dataclass(frozen=True)
class _Section:
    path: tuple[str, ...]
    body: str


_MARKDOWN_RULES = 2
"""Version of the Markdown sectioning rules, in the fingerprints: after a change a knowledge base splits its files
again once, and embeds only the chunks that are new (2 keeps headings with no text under them)."""


class MarkdownSplitter:
    """One chunk per heading section (headings inside code fences ignored), split further when long.

    Each chunk starts with its heading path (`Guide > Install`), also kept in `metadata["heading"]`,
    so a chunk read alone still says what it is about. A heading with no text under it is a chunk
    of its own unless the next section is under it (whose chunks start with its path); a path longer
    than a quarter of a chunk is split with the section's text instead of starting every chunk.
    """

    name = "markdown"

    def __init__(self, inner: RecursiveSplitter | None = None) -> None:
        self.inner = inner or RecursiveSplitter()

    @property
    def fingerprint(self) -> str:
        """Splitter kind and the inner splitter's settings."""
        return f"{self.name}{_MARKDOWN_RULES}({self.inner.fingerprint})"

    def split(self, document: Document) -> list[Chunk]:
        """The document's chunks; metadata gains `heading` when the chunk is under one."""
        inner = self.inner
        chunks: list[Chunk] = []
        sections = self._sections(document.text)
        for index, section in enumerate(sections):
            path, body = section.path, section.body
            following = sections[index + 1].path if index + 1 < len(sections) else ()
            if not body and following[: len(path)] == path:
                continue  # the next section is under this heading: its chunks start with the path
            title = " > ".join(path)
            metadata: dict[str, MetadataValue] = dict(document.metadata)
            if title:
                metadata["heading"] = title
            if not body or inner.length(title) > inner.chunk_size // 4:
                texts = inner.split_text(f"{title}\n{body}")
            else:
                texts = [
                    f"{title}\n{text}" if title and not text.startswith("#") else text
                    for text in inner.split_text(body)
                ]
            chunks.extend(Chunk(text, metadata) for text in texts)
        return chunks

    @staticmethod
    def _sections(text: str) -> list[_Section]:
        sections: list[_Section] = []
        path: list[tuple[int, str]] = []
        lines: list[str] = []
        fenced = False

        def close() -> None:
            body = "\n".join(lines).strip()
            if body or path:
                sections.append(_Section(tuple(title for _, title in path), body))
            lines.clear()

        for line in text.splitlines():
            if _FENCE.match(line):
                fenced = not fenced
            heading = None if fenced else _HEADING.match(line)
            if heading is None:
                lines.append(line)
                continue
            close()
            depth = len(heading.group(1))
            path = [(level, title) for level, title in path if level < depth]
            path.append((depth, heading.group(2).strip()))
        close()
        return sections


class AutoSplitter:
    """The default: Markdown by headings, mostly-CJK text by sentences, the rest recursively.

    Args:
        chunk_size: characters per chunk for Latin-script text.
        cjk_chunk_size: characters per chunk for CJK text (a CJK character is about one token).
    """

    name = "auto"

    def __init__(self, chunk_size: int = 800, cjk_chunk_size: int = 300) -> None:
        self.text = RecursiveSplitter(chunk_size, chunk_size * 3 // 20)
        self.cjk = SentenceSplitter(cjk_chunk_size, cjk_chunk_size // 5)
        self.markdown = MarkdownSplitter(self.text)
        self.cjk_markdown = MarkdownSplitter(self.cjk)

    @property
    def fingerprint(self) -> str:
        """Splitter kind and the sizes."""
        return f"{self.name}:{self.text.chunk_size}:{self.cjk.chunk_size}:markdown{_MARKDOWN_RULES}"

    def split(self, document: Document) -> list[Chunk]:
        """The document's chunks, cut by the splitter its format and script call for."""
        cjk = cjk_ratio(document.text[:4000]) > 0.3
        if document.format == "markdown":
            return (self.cjk_markdown if cjk else self.markdown).split(document)
        return (self.cjk if cjk else self.text).split(document)
