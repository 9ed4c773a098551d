"""Embedders: the `Embedder` contract, `ModelConfig`, and `LiteLLMEmbedder` from `gecko-ai-models`.

`from gecko.plugins.models.embedding import LiteLLMEmbedder, ModelConfig` works once
`gecko-ai-models` is installed and names the package to install when it is not.
"""

from __future__ import annotations

from typing import Any

from gecko.plugins.models import Embedder, ModelConfig, create_embedder
from gecko.plugins.models.presets import resolve_preset

__all__ = ("Embedder", "ModelConfig", "create_embedder", "LiteLLMEmbedder")  # noqa: F822 - lazy


def __getattr__(name: str) -> Any:
    if name != "LiteLLMEmbedder":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return resolve_preset(__name__, name)
