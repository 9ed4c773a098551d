"""Text sanitizing: what a model reads is cleaned, what a detector reads is also folded.

`clean` applies Unicode NFKC and removes the characters that hide or reorder text: zero-width
characters, bidirectional controls, Unicode tag characters (used to smuggle invisible ASCII)
and C0/C1 control characters except tab and newlines. `fold` goes further for detection only:
homoglyphs are folded to the Latin letters they imitate (Unicode's confusables data, from the
`confusable-homoglyphs` package), text is case-folded, and tag characters are revealed as the
ASCII they encode instead of being dropped. Folded text is never shown to a model.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = ("Sanitized", "clean", "fold", "sanitize")

# Zero-width and invisible formatting characters, bidi embeddings/overrides/isolates and marks.
_HIDDEN = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]"
)
_TAGS = re.compile("[\U000e0000-\U000e007f]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class Sanitized:
    """The result of `sanitize`: the cleaned `text`, the `original`, and how many characters went."""

    text: str
    original: str
    removed: int

    @property
    def changed(self) -> bool:
        """Whether cleaning changed anything."""
        return self.text != self.original


def clean(text: str) -> str:
    """`text` in NFKC with zero-width, bidi-control, tag and control characters removed."""
    if text.isascii():  # in NFKC, and no hidden or tag character: only controls to remove
        return _CONTROL.sub("", text)
    text = unicodedata.normalize("NFKC", text)
    return _CONTROL.sub("", _TAGS.sub("", _HIDDEN.sub("", text)))


def sanitize(text: str) -> Sanitized:
    """`clean(text)` with the original kept beside it."""
    cleaned = clean(text)
    return Sanitized(cleaned, text, max(len(text) - len(cleaned), 0))


def fold(text: str) -> str:
    """`text` as a detector should read it: cleaned, tag payloads revealed, homoglyphs folded, case-folded."""
    revealed = _TAGS.sub(lambda match: _tag_to_ascii(match.group()), text)
    cleaned = clean(revealed)
    if cleaned.isascii():
        return cleaned.casefold()
    table = _confusables()
    return "".join(table.get(char, char) for char in cleaned).casefold()


def _tag_to_ascii(char: str) -> str:
    code = ord(char) - 0xE0000
    return chr(code) if 0x20 <= code < 0x7F else ""


@lru_cache(maxsize=1)
def _confusables() -> dict[str, str]:
    """Non-ASCII characters that look like one ASCII letter or digit, mapped to it (loaded once)."""
    from confusable_homoglyphs.confusables import confusables_data  # type: ignore[import-untyped]

    table: dict[str, str] = {}
    for char, homoglyphs in confusables_data.items():
        if len(char) != 1 or char.isascii() or unicodedata.name(char, "").startswith("CJK"):
            continue
        targets = [h["c"] for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalnum()]
        if targets:
            target = min(targets, key=lambda target: (target.isupper() != char.isupper(), not target.isalpha()))
            # Unicode's skeletons spell capital I as 'l' (same shape); a capital source means 'I'.
            table[char] = "I" if target == "l" and char.isupper() else target
    return table
