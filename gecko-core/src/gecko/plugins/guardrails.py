"""The guardrails kind: resolved lazily from the installed `gecko-ai-guardrails` plugin.

`from gecko.plugins.guardrails import Guardrails, configure` works once `gecko-ai-guardrails`
is installed and says what to install when it is not. Nothing is imported until a name is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = (  # noqa: F822 - resolved by __getattr__
    "ArgumentViolation",
    "Detection",
    "Finding",
    "Guardrails",
    "InjectionDetected",
    "Sanitized",
    "ToolPolicy",
    "clean",
    "configure",
    "current",
    "detect",
    "fold",
    "sanitize",
)


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        plugin = importlib.import_module("gecko_guardrails")
    except ImportError as exc:
        raise ImportError(
            f"cannot import {name} from {__name__}: the guardrails plugin is not installed; "
            "run `pip install gecko-ai-guardrails`",
            name=__name__,
        ) from exc
    return getattr(plugin, name)
