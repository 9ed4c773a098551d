"""Gecko model plugin: in-process GGUF chat models on llama.cpp (`LlamaCppChat`, provider `llamacpp`)."""

from __future__ import annotations

from gecko_models_llamacpp._chat import DEFAULT_MODEL, LlamaCppChat, default_model_path

__version__ = "0.1.0"

__all__ = ("LlamaCppChat", "DEFAULT_MODEL", "default_model_path", "__version__")
