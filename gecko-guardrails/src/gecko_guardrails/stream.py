"""Redaction of streamed text: deltas are held back until a cut leaves every secret whole on one side.

A `StreamRedactor` passes a reply's text on in segments, each redacted alone. It cuts only after
whitespace at least `HOLD` characters behind the newest text, and only where redacting the two
sides apart gives what redacting them together gives, so a secret cut across deltas (a key, a
PEM private key spanning lines, a key split over lines) is redacted whole. While no such cut
exists (inside a PEM block, say) it holds the text, up to `CAP` characters; past that it cuts
anyway, and inside an open PEM block it drops the body up to the block's end.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ("CAP", "HOLD", "StreamRedactor")

HOLD = 128
"""Characters always held behind the newest text: more than any secret shape reaches past a space."""
CAP = 8192
"""Characters held at most: a 4096-bit RSA private key in PEM (about 3,300) fits."""

_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{1,64}-----")
_END = re.compile(r"-----END [A-Z0-9 ]{1,64}-----")
_WHITESPACE = re.compile(r"\s")


class StreamRedactor:
    """A `gecko.plugins.hookspecs.StreamFilter` that redacts a reply's deltas with `redact`.

    The concatenation of what `feed` and `flush` return is `redact(text)` for the whole text when
    no cut was forced (the reply held no stretch of `CAP` characters without a safe cut).
    """

    __slots__ = ("_held", "_in_pem", "_next_check", "_redact")

    def __init__(self, redact: Callable[[str], str]) -> None:
        self._redact = redact
        self._held = ""
        self._next_check = 2 * HOLD
        self._in_pem = False

    def feed(self, text: str) -> str:
        """The redacted text that can be passed on now, once `text` is added to what is held."""
        held = self._held + text
        if self._in_pem:
            held = self._skip_pem_body(held)
        self._held = held
        if len(held) < self._next_check:
            return ""
        cut = _last_cut(held, len(held) - HOLD)
        head, rest = held[:cut], held[cut:]
        shown = self._redact(head) if cut else ""
        if cut and shown + self._redact(rest) == self._redact(held):
            self._held = rest
            self._next_check = len(rest) + HOLD
            return shown
        if len(held) <= CAP:
            # No safe cut yet (an open PEM block, a quoted value): look again once more text has come.
            self._next_check = len(held) + HOLD
            return ""
        # Forced: a stretch of `CAP` characters without a safe cut.
        if cut == 0:
            cut = len(held) - HOLD
            head, rest = held[:cut], held[cut:]
            shown = self._redact(head)
        begins = list(_BEGIN.finditer(head))
        self._in_pem = bool(begins) and _END.search(head, begins[-1].end()) is None
        self._held = self._skip_pem_body(rest) if self._in_pem else rest
        self._next_check = len(self._held) + HOLD
        return shown

    def flush(self) -> str:
        """The rest of the reply, redacted; the redactor is then empty."""
        held, in_pem = self._held, self._in_pem
        self._held, self._next_check, self._in_pem = "", 2 * HOLD, False
        # Inside a PEM block never closed, what is held is the body's end: redacted to the end.
        return self._redact(held) if held and not in_pem else ""

    def _skip_pem_body(self, held: str) -> str:
        """`held` from the end marker of the open PEM block on; without one, only what may start it."""
        end = _END.search(held)
        if end is None:
            # Keep enough to find an end marker cut across deltas.
            return held[-80:]
        self._in_pem = False
        return held[end.start() :]


def _last_cut(text: str, limit: int) -> int:
    """The position just after the last whitespace character before `limit`, or 0."""
    for position in range(min(limit, len(text)) - 1, -1, -1):
        if _WHITESPACE.match(text, position):
            return position + 1
    return 0
