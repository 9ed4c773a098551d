"""The guardrails kind: resolved lazily from the installed `gecko-ai-guardrails` plugin.

`from gecko.plugins.guardrails import Guardrails, configure` works once `gecko-ai-guardrails`
is installed (any name in `gecko_guardrails.__all__`) and says what to install when it is not.
Nothing is imported until a name is used.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # module protocol lookups (`__path__`, `__wrapped__`, ...) are not plugin names
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        plugin = importlib.import_module("gecko_guardrails")
    except ImportError as exc:
        raise ImportError(
            f"cannot import {name} from {__name__}: the guardrails plugin is not installed; "
            "run `pip install gecko-ai-guardrails`",
            name=__name__,
        ) from exc
    if name not in plugin.__all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(plugin, name)
