"""Offline token counting for memories: a cheap built-in estimate, or tiktoken when asked for.

The estimate is the default because the core must stay light and work offline: tiktoken is not a
core dependency, and even when installed it may need to download its encoding files on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Literal

from gecko.errors import ConfigurationError

__all__ = ("TokenCounter", "estimate_tokens", "resolve_counter")

TokenCounter = Callable[[str], int]
"""Counts the tokens of a text."""


def estimate_tokens(text: str) -> int:
    """Estimate the tokens of `text` without a tokenizer.

    English-like text averages about four characters per token; CJK and other non-ASCII scripts
    about one token per character. The count rounds up, so a window sized with it errs on the
    safe side for common BPE tokenizers.
    """
    if not text:
        return 0
    characters = len(text)
    extra_bytes = len(text.encode("utf-8")) - characters
    if not extra_bytes:
        return (characters + 3) // 4
    # Most non-ASCII characters take 2-3 UTF-8 bytes; about two extra bytes per character.
    wide = min(characters, (extra_bytes + 1) // 2)
    return (characters - wide + 3) // 4 + wide


def resolve_counter(counter: TokenCounter | Literal["estimate", "tiktoken"] | None, model: str) -> TokenCounter:
    """The counter to use: a given callable, the estimate (None or "estimate"), or tiktoken's encoding of `model`.

    Raises:
        ConfigurationError: "tiktoken" was asked for and is not installed.
    """
    if counter is None or counter == "estimate":
        return estimate_tokens
    if counter == "tiktoken":
        return _tiktoken_counter(model)
    if not callable(counter):
        raise ConfigurationError(f"counter must be a callable, 'estimate' or 'tiktoken', got {counter!r}")
    return counter


def _tiktoken_counter(model: str) -> TokenCounter:
    try:
        tiktoken = importlib.import_module("tiktoken")
    except ImportError as exc:
        raise ConfigurationError(
            "counter='tiktoken' needs the tiktoken package: `pip install tiktoken`, or use the default estimate"
        ) from exc
    try:
        encoding = tiktoken.encoding_for_model(model)
    except KeyError:
        # Models tiktoken does not know (non-OpenAI providers) get the current OpenAI encoding.
        encoding = tiktoken.get_encoding("o200k_base")

    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    return count
