"""Documents and chunks: the text a knowledge base is built from and the pieces it stores."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from gecko.errors import DocumentLoadError, InvalidValueError
from gecko.plugins.vector import _check_text, _metadata
from gecko.plugins.vector.filters import MetadataValue

__all__ = ("Document", "Chunk", "DocumentFormat", "checked_document")

DocumentFormat = Literal["text", "markdown", "html", "pdf", "json"]
"""What a document's text came from; the default splitter follows it (markdown splits by headings)."""

_NO_METADATA: Mapping[str, MetadataValue] = MappingProxyType({})


@dataclass(frozen=True)
class Document:
    """A text to ingest: its `source` (a path or any name: chunks cite it), the text and metadata.

    One file may give several documents (a PDF's pages, a JSONL file's lines); they share the
    file's `source` and are told apart by `metadata` (`page`, `line`).
    """

    source: str
    text: str
    metadata: Mapping[str, MetadataValue] = field(default_factory=lambda: _NO_METADATA)
    format: DocumentFormat = "text"


@dataclass(frozen=True)
class Chunk:
    """A piece of a document as a splitter cut it: its text and the metadata it carries."""

    text: str
    metadata: Mapping[str, MetadataValue] = field(default_factory=lambda: _NO_METADATA)


def checked_document(document: Document) -> Document:
    """`document` when a vector store can hold its text and metadata, so ingestion fails before writing.

    Raises:
        DocumentLoadError: the source is not non-empty text, the text is not a string or holds a
            lone surrogate, or metadata is not a mapping of text keys to str, int, float, bool or a
            list of str (finite, within 64-bit integers).
    """
    source, text = document.source, document.text
    if not isinstance(source, str) or not source or not isinstance(text, str):
        raise DocumentLoadError(f"a Document needs a non-empty source and str text, got {document!r:.120}")
    try:
        _check_text(source, f"source {source!r}")
        _check_text(text, f"text of {source!r}")
        _metadata(document.metadata, source)
    except InvalidValueError as exc:
        raise DocumentLoadError(str(exc)) from None
    return document
