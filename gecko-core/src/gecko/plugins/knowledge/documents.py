"""Documents and chunks: the text a knowledge base is built from and the pieces it stores."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from gecko.plugins.vector.filters import MetadataValue

__all__ = ("Document", "Chunk", "DocumentFormat")

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
