"""`OllamaChat`, resolved from the installed `gecko-ai-models` plugin (`pip install gecko-ai-models`)."""

from __future__ import annotations

from typing import Any

from gecko.plugins.models.presets import resolve_preset

__all__ = ("OllamaChat",)  # noqa: F822 - resolved by __getattr__


def __getattr__(name: str) -> Any:
    if name != "OllamaChat":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return resolve_preset(__name__, name)
