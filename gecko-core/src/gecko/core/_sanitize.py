"""Model-safe text: error text short, single-line and redacted; any text valid Unicode."""

from __future__ import annotations

from gecko.plugins._text import text_of, valid_text
from gecko.redaction import redact

__all__ = ("redact", "safe_error_text", "shorten", "text_of", "valid_text")


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def safe_error_text(exc: BaseException, limit: int = 200) -> str:
    """`"<ExceptionType>: <first line of the message>"`, redacted and at most `limit` characters."""
    message = text_of(exc).strip()
    first_line = message.splitlines()[0].strip() if message else ""
    # Bound the regex work on huge messages; the generous margin keeps any secret cut here
    # beyond the final `limit`, so a half secret never survives.
    first_line = redact(first_line[: limit * 4])
    text = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    return shorten(text, limit)
