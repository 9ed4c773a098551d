"""Model-safe error text: short, single-line, with anything that looks like a secret redacted."""

from __future__ import annotations

import re

__all__ = ("redact", "safe_error_text", "shorten")

_REDACTED = "[REDACTED]"

# Each pattern matches one kind of secret; the replacement keeps the label so the message still
# says what went wrong ("password=[REDACTED]") without the value.
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + _REDACTED),
    (
        re.compile(
            r"(?i)([\w-]*(?:api[_-]?key|secret|token|passw(?:or)?d|passwd|pwd|credential|auth(?:orization)?)"
            r"[\w-]*[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
        ),
        r"\1" + _REDACTED,
    ),
    (re.compile(r"(?i)(://[^/\s:@]+:)[^@\s/]+@"), r"\1" + _REDACTED + "@"),
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,}"), _REDACTED),
    (re.compile(r"\b(?:gh[pousr]|github_pat|xox[abprs])_?[A-Za-z0-9_-]{16,}"), _REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), _REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), _REDACTED),
    # Long unbroken runs of key-like characters are most likely keys or tokens.
    (re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{32,}\b"), _REDACTED),
)


def redact(text: str) -> str:
    """Replace API keys, tokens, passwords and URL credentials in `text` with `[REDACTED]`."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def safe_error_text(exc: BaseException, limit: int = 200) -> str:
    """`"<ExceptionType>: <first line of the message>"`, redacted and at most `limit` characters."""
    message = str(exc).strip()
    first_line = message.splitlines()[0].strip() if message else ""
    # Bound the regex work on huge messages; the generous margin keeps any secret cut here
    # beyond the final `limit`, so a half secret never survives.
    first_line = redact(first_line[: limit * 4])
    text = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    return shorten(text, limit)
