"""Gecko embedder plugin: local ONNX sentence embeddings (`OnnxEmbedder`, provider `onnx`)."""

from __future__ import annotations

from gecko_embedders_onnx._embedder import DEFAULT_MODEL, OnnxEmbedder, available_cores, default_model_files

__version__ = "0.1.0"

__all__ = ("OnnxEmbedder", "DEFAULT_MODEL", "default_model_files", "available_cores", "__version__")
