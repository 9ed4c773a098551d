"""Text the core and the plugins hand on: an exception's message that can always be read, valid Unicode."""

from __future__ import annotations

__all__ = ("text_of", "valid_text")


def text_of(exc: BaseException) -> str:
    """`str(exc)`, or a placeholder when the exception's own `__str__` fails or returns no string."""
    try:
        text = str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose message cannot be read>"
    return text


def valid_text(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD; a surrogate pair becomes its character."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text
