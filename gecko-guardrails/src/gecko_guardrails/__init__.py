"""Gecko guardrails: sanitizing, prompt-injection defence on every channel, tool policies, output redaction.

Installed, it is a `gecko.plugins` hook plugin that guards every agent run: with the policies
configured in code (`configure(Guardrails(...))`), else with `GECKO_GUARDRAILS_*` settings
(`Guardrails.from_env`); `GECKO_GUARDRAILS=0` turns it off.
"""

from __future__ import annotations

from gecko_guardrails._version import __version__
from gecko_guardrails.detect import Detection, detect
from gecko_guardrails.guard import (
    Action,
    ArgumentViolation,
    Channel,
    Finding,
    Guardrails,
    InjectionDetected,
    ToolPolicy,
    configure,
    current,
)
from gecko_guardrails.sanitize import Sanitized, clean, fold, sanitize
from gecko_guardrails.semantic import SemanticUnavailable
from gecko_guardrails.stream import StreamRedactor

__all__ = (
    "__version__",
    "Action",
    "ArgumentViolation",
    "Channel",
    "Detection",
    "Finding",
    "Guardrails",
    "InjectionDetected",
    "Sanitized",
    "SemanticUnavailable",
    "StreamRedactor",
    "ToolPolicy",
    "clean",
    "configure",
    "current",
    "detect",
    "fold",
    "sanitize",
)
