"""Secret redaction for every text Gecko shows: error messages, log lines, what a model reads.

`redact(text)` replaces what looks like a secret in free text; `redact_url(url)` removes the
credentials of one URL (storage URLs, model endpoints); `redacting_logger(name)` is a logger
whose records (message and traceback) pass through `redact`. Both keep the shape of the text, so a
message still says what went wrong ("password=[REDACTED]", "redis://[REDACTED]@host:6379/0").
Redaction is a safety net for messages, not a place to keep secrets: it recognises common
forms (URL user-info, key=value and JSON credentials, bearer tokens, provider key prefixes, PEM
blocks, long runs mixing upper case, lower case and digits), not every possible secret.
"""

from __future__ import annotations

import functools
import heapq
import logging
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ("REDACTED", "RedactingFilter", "redact", "redact_url", "redacting_logger")

REDACTED = "[REDACTED]"

_SECRET_WORDS = r"api[_-]?key|secret|token|passw(?:or)?d|passwd|pwd|credential|auth(?:orization)?"

_Starts = Callable[[str, str], Iterator[int]]
"""Where a pattern's matches may start in a text, given the text and its `_lowered` copy: ascending, and
every position a match starts at among them (more do no harm: the pattern itself decides)."""


@dataclass(frozen=True, slots=True)
class _Rule:
    """One kind of secret: `pattern`, its `replacement` template (which keeps the label), and `starts`
    (`None`: the pattern scans the whole text itself)."""

    pattern: re.Pattern[str]
    replacement: str
    starts: _Starts | None = None


@functools.cache
def _secret_patterns() -> tuple[_Rule, ...]:
    r"""The rules, applied in this order, each to what the previous ones left.

    Compiled by the first redaction, not at import. A rule with `starts` tries its pattern only where a
    literal every match holds (`sk-`, `AKIA`, `://`, a secret word, ...) puts a start: a regular expression
    that begins with `\b` or a class is otherwise tried at every position of the text.
    """
    return (
        # A PEM block (private keys above all): the whole body, also when the text was cut inside it.
        _Rule(
            re.compile(r"(-----BEGIN [A-Z0-9 ]{1,64}-----)(?:.*?(-----END [A-Z0-9 ]{1,64}-----)|.*)", re.DOTALL),
            r"\1" + REDACTED + r"\2",
        ),
        _Rule(
            re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
            r"\1 " + REDACTED,
            _found("bearer", "basic", lowered=True),
        ),
        # URL user-info: `scheme://user:password@`, `redis://:password@`, `scheme://token@`. A password
        # may hold '/', ':' or '@' unescaped, so after the first ':' everything up to the last '@' goes.
        _Rule(re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@:]*:\S*@"), r"\1" + REDACTED + "@", _schemes),
        _Rule(re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]+@"), r"\1" + REDACTED + "@", _schemes),
        # The name around the secret word is bounded: unbounded, a 100 000-character word took minutes.
        _Rule(
            re.compile(
                rf"(?i)([\w-]{{0,64}}(?:{_SECRET_WORDS})[\w-]{{0,64}}[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
            ),
            r"\1" + REDACTED,
            _named,
        ),
        # libpq-style DSNs (`host=db.internal user=admin password=...`): who and where are secrets too.
        _Rule(
            re.compile(r"(?i)\b((?:user|username|host|hostaddr)\s*=\s*)('[^']*'|[^\s,;&]+)"),
            r"\1" + REDACTED,
            _found("user", "host", lowered=True),
        ),
        _Rule(re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,}"), REDACTED, _found("k-", back=1)),
        _Rule(
            re.compile(r"\b(?:gh[pousr]|github_pat|xox[abprs])_?[A-Za-z0-9_-]{16,}"),
            REDACTED,
            _found("gh", "github_pat", "xox"),
        ),
        _Rule(re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED, _found("AKIA")),
        _Rule(
            re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
            REDACTED,
            _found("eyJ"),
        ),
        # Long unbroken runs mixing upper case, lower case and digits (the base62 and base64 alphabets
        # of keys and tokens) are most likely keys. Hex digests (commit SHAs, UUIDs, content hashes) and
        # lower-case names (a test's folder) lack that mix: secrets only after a label (above).
        _Rule(
            re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[a-z])(?=[A-Za-z0-9_-]*[A-Z])[A-Za-z0-9_-]{32,}\b"),
            REDACTED,
            _long_runs,
        ),
    )


def _found(*literals: str, lowered: bool = False, back: int = 0) -> _Starts:
    """Starts `back` characters before each occurrence of one of `literals` in the text (in its `_lowered` copy
    when `lowered`)."""

    def starts(text: str, low: str) -> Iterator[int]:
        view = low if lowered else text
        present = [literal for literal in literals if literal in view]
        if len(present) < 2:
            return _occurrences(view, present[0], back) if present else iter(())
        return heapq.merge(*(_occurrences(view, literal, back) for literal in present))

    return starts


def _occurrences(text: str, literal: str, back: int) -> Iterator[int]:
    found = text.find(literal, back)
    while found >= 0:
        yield found - back
        found = text.find(literal, found + 1)


_SECRET_WORD_STARTS = _found("api", "secret", "token", "passw", "pwd", "credential", "auth", lowered=True)


def _named(text: str, low: str) -> Iterator[int]:
    r"""Starts of `name = value` with a secret word in the name: the name holds the word after at most 64 name
    characters (`[\w-]`), so a match starts at the word or up to 64 name characters before it."""
    done = 0  # positions before this were given
    for word in _SECRET_WORD_STARTS(text, low):
        first = max(word - 64, done)
        for other in re.compile(r"[^\w-]").finditer(text, first, word):
            first = other.end()
        yield from range(first, word + 1)
        done = word + 1


def _long_runs(text: str, low: str) -> Iterator[int]:
    r"""Starts in a run of 32 or more key characters (`[A-Za-z0-9_-]`): the run's word boundaries (`\b`)."""
    # One byte per character (those beyond Latin-1 as '?'): b"k" for a key character, b" " for any other.
    marks = text.encode("latin-1", "replace").translate(_key_characters())
    run = marks.find(_LONG_RUN)
    while run >= 0:
        end = marks.find(b" ", run)
        end = len(marks) if end < 0 else end
        for edge in re.compile(r"\b").finditer(text, run, end - len(_LONG_RUN) + 1):
            yield edge.start()
        run = marks.find(_LONG_RUN, end)


def _schemes(text: str, low: str) -> Iterator[int]:
    r"""Starts of `scheme://`: for each `://`, the first position where a scheme may start (`\b` and a letter)
    in the run of scheme characters before it. The run holds no ':', so from every such start the scheme
    ends at this `://` and the rest of the match is the same: the first start is the only one to try."""
    chars = _scheme_characters()
    colon = text.find("://")
    while colon >= 0:
        first = colon
        while first and text[first - 1] in chars:
            first -= 1
        start = re.compile(r"(?i)\b[a-z]").search(text, first, colon)
        if start is not None:
            yield start.start()
        colon = text.find("://", colon + 1)


_LONG_RUN = b"k" * 32


@functools.cache
def _key_characters() -> bytes:
    """A `bytes.translate` table: the bytes of `[A-Za-z0-9_-]` to b"k", every other byte to b" "."""
    keys = (string.ascii_letters + string.digits + "_-").encode()
    return bytes(ord("k") if byte in keys else ord(" ") for byte in range(256))


@functools.cache
def _scheme_characters() -> frozenset[str]:
    """The characters `(?i)[a-z0-9+.-]` matches: ASCII ones, and the four others that ignoring case makes
    equal to a letter (U+0130 `I` with a dot, U+0131 dotless `i`, U+017F long `s`, U+212A Kelvin sign)."""
    return frozenset(string.ascii_letters + string.digits + "+.-\u0130\u0131\u017f\u212a")


def _lowered(text: str) -> str:
    """`text` lower-cased character for character: where a case-insensitive pattern matches an ASCII letter,
    this copy holds that letter in lower case, at the same position (U+0130, whose `lower()` is two characters,
    and U+0131 become `i`; U+017F becomes `s`)."""
    if not text.isascii():
        text = text.replace("\u0130", "i").replace("\u0131", "i").replace("\u017f", "s")
    return text.lower()


def _sub_at(rule: _Rule, starts: Iterator[int], text: str) -> str:
    """`rule.pattern.sub(rule.replacement, text)`, trying the pattern only at `starts` (no pattern matches an
    empty text, so a match always moves past its start)."""
    pieces: list[str] = []
    last = 0
    for start in starts:
        if start >= last and (match := rule.pattern.match(text, start)) is not None:
            pieces += (text[last:start], match.expand(rule.replacement))
            last = match.end()
    return "".join((*pieces, text[last:])) if pieces else text


@functools.cache
def _url_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """URL user-info, and query values whose names say they are secrets."""
    return (
        re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://).*@"),
        re.compile(rf"(?i)([?&;][\w.-]*(?:{_SECRET_WORDS})[\w.-]*=)[^&;#]*"),
    )


def redact(text: str) -> str:
    """`text` with API keys, tokens, passwords, URL credentials, DSN user and host, and PEM bodies
    replaced by `[REDACTED]`."""
    low, lowered_from = "", None  # `_lowered(lowered_from)`, made when a rule needs it
    for rule in _secret_patterns():
        if rule.starts is None:
            text = rule.pattern.sub(rule.replacement, text)
            continue
        if lowered_from is not text:
            low, lowered_from = _lowered(text), text
        text = _sub_at(rule, rule.starts(text, low), text)
    return text


def redact_url(url: str) -> str:
    """`url` with its user-info (user and password) and secret-named query values replaced by `[REDACTED]`.

    Example:
        `redact_url("redis://:hunter2@cache:6379/0")` is `"redis://[REDACTED]@cache:6379/0"`.
    """
    # Up to the last '@': a password may hold an unescaped '/' or '@' that would end it early.
    # Text that is not even `scheme://...` (a malformed URL) loses everything before its last '@'.
    userinfo, query_secret = _url_patterns()
    if "@" in url:
        url, count = userinfo.subn(r"\1" + REDACTED + "@", url, count=1)
        if not count:
            url = REDACTED + "@" + url.rpartition("@")[2]
    return query_secret.sub(r"\1" + REDACTED, url)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record's message and its formatted exception in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it when the record is emitted
            return True
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse `exc_text` once set, so the traceback is redacted wherever it goes.
            record.exc_text = redact(_TRACEBACK_FORMATTER.formatException(record.exc_info))
        return True


_TRACEBACK_FORMATTER = logging.Formatter()
_FILTER = RedactingFilter()


def redacting_logger(name: str) -> logging.Logger:
    """`logging.getLogger(name)` with every record it emits redacted; Gecko's modules log through these."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
