"""Loaders: a file's bytes turned into `Document`s, chosen by the file's suffix.

Plain text and Markdown are decoded as UTF-8; HTML keeps its visible text (the standard
library's `html.parser`, dropping scripts and styles); PDF gives one document per page through
`pypdf` (install `gecko-ai-core[knowledge]`; imported on first use only); JSON and JSONL give one
document per item or line. Loaders are pure functions of the bytes: the pipeline reads files in a
worker thread and hashes the same bytes it parses.
"""

from __future__ import annotations

import importlib
import io
import json
import math
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any

from gecko.errors import ConfigurationError, DocumentLoadError
from gecko.plugins.knowledge.documents import Document, checked_document
from gecko.plugins.vector import _INT64_MAX, _INT64_MIN
from gecko.plugins.vector.filters import MetadataValue

__all__ = ("LOADERS", "load_bytes", "supported_suffixes")

Loader = Callable[[str, bytes], list[Document]]


def _decode(source: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentLoadError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def load_text(source: str, data: bytes) -> list[Document]:
    """A plain-text file as one document."""
    return [Document(source, _decode(source, data), format="text")]


def load_markdown(source: str, data: bytes) -> list[Document]:
    """A Markdown file as one document (split by headings by default)."""
    return [Document(source, _decode(source, data), format="markdown")]


class _VisibleText(HTMLParser):
    _SKIPPED = frozenset({"script", "style", "noscript", "template", "svg"})
    _BLOCKS = frozenset(
        {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "table",
         "ul", "ol", "pre", "blockquote", "header", "footer", "title", "dd", "dt"}
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        paragraphs: list[str] = []
        for line in lines:
            if line:
                paragraphs.append(line)
            elif paragraphs and paragraphs[-1]:
                paragraphs.append("")
        return "\n".join(paragraphs).strip()


def load_html(source: str, data: bytes) -> list[Document]:
    """An HTML page's visible text as one document; block elements become line breaks."""
    parser = _VisibleText()
    parser.feed(_decode(source, data))
    parser.close()
    return [Document(source, parser.text(), format="html")]


def load_pdf(source: str, data: bytes) -> list[Document]:
    """A PDF as one document per page with text (metadata `page`, from 1), through pypdf."""
    try:
        pypdf = importlib.import_module("pypdf")
    except ImportError as exc:
        raise ConfigurationError(
            f"{source}: reading PDF needs pypdf: `pip install 'gecko-ai-core[knowledge]'` (or `pip install pypdf`)"
        ) from exc
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # pypdf raises many types for broken files
        raise DocumentLoadError(f"{source}: not a readable PDF ({type(exc).__name__}: {exc})") from exc
    return [
        Document(source, text, {"page": number}, format="pdf")
        for number, text in enumerate(pages, start=1)
        if text.strip()
    ]


def _metadata_value(value: Any) -> MetadataValue | None:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _json_document(source: str, item: Any, where: dict[str, MetadataValue]) -> Document:
    if isinstance(item, str):
        return Document(source, item, where, format="json")
    if isinstance(item, dict):
        for key in ("text", "content"):
            if isinstance(item.get(key), str):
                metadata = dict(where)
                for name, value in item.items():
                    usable = _metadata_value(value)
                    usable_name = isinstance(name, str) and name and not name.startswith("$")
                    if name != key and usable_name and usable is not None:
                        metadata.setdefault(name, usable)
                return Document(source, item[key], metadata, format="json")
    return Document(source, json.dumps(item, ensure_ascii=False), where, format="json")


def _parse_json(source: str, text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"{where or f' at line {exc.lineno}'}, column {exc.colno}"
        raise DocumentLoadError(f"{source}: invalid JSON{at}: {exc.msg}") from exc
    except (RecursionError, ValueError) as exc:  # nesting past the recursion limit; an integer past the digit limit
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise DocumentLoadError(f"{source}: unusable JSON{where}: {reason}") from None


def load_json(source: str, data: bytes) -> list[Document]:
    """A JSON file: a list gives one document per item (metadata `item`), anything else one document.

    An object's `text` (or `content`) string is the text and its other scalar fields become
    metadata; other values are ingested as their JSON text.
    """
    parsed = _parse_json(source, _decode(source, data), "")
    if isinstance(parsed, list):
        return [_json_document(source, item, {"item": index}) for index, item in enumerate(parsed)]
    return [_json_document(source, parsed, {})]


def load_jsonl(source: str, data: bytes) -> list[Document]:
    """A JSON Lines file: one document per non-empty line (metadata `line`, from 1), as for JSON items."""
    documents = []
    for number, line in enumerate(_decode(source, data).splitlines(), start=1):
        if not line.strip():
            continue
        item = _parse_json(source, line, f" on line {number}")
        documents.append(_json_document(source, item, {"line": number}))
    return documents


LOADERS: dict[str, Loader] = {
    ".txt": load_text,
    ".text": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".json": load_json,
    ".jsonl": load_jsonl,
    ".ndjson": load_jsonl,
}
"""Suffix (lower case) → loader."""


def supported_suffixes() -> tuple[str, ...]:
    """The file suffixes the loaders read."""
    return tuple(LOADERS)


def load_bytes(source: str, data: bytes) -> list[Document]:
    """The documents in a file named `source` whose content is `data`, by the name's suffix.

    Raises:
        DocumentLoadError: the suffix is not supported, the content is malformed, or it gives text
            or metadata no vector store can hold (a JSON `"\\ud800"` escape, an integer past 64 bits).
        ConfigurationError: the format needs a library that is not installed (PDF: pypdf).
    """
    suffix = PurePath(source).suffix.lower()
    loader = LOADERS.get(suffix)
    if loader is None:
        raise DocumentLoadError(
            f"{source}: unsupported file type {suffix or '(no suffix)'!r}; supported: {', '.join(LOADERS)}"
        )
    return [checked_document(document) for document in loader(source, data)]
