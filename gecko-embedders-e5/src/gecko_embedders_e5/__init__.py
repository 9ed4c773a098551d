"""Gecko embedder plugin: multilingual-e5-small in-process (`E5Embedder`, provider `e5`)."""

from __future__ import annotations

from gecko_embedders_e5._embedder import DEFAULT_MODEL, E5Embedder

__version__ = "0.1.0"

__all__ = ("E5Embedder", "DEFAULT_MODEL", "__version__")
