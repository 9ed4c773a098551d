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
import logging
import re

__all__ = ("REDACTED", "RedactingFilter", "redact", "redact_url", "redacting_logger")

REDACTED = "[REDACTED]"

_SECRET_WORDS = r"api[_-]?key|secret|token|passw(?:or)?d|passwd|pwd|credential|auth(?:orization)?"


@functools.cache
def _secret_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """Each pattern matches one kind of secret; the replacement keeps the label.

    Compiled by the first redaction, not at import.
    """
    return (
        # A PEM block (private keys above all): the whole body, also when the text was cut inside it.
        (
            re.compile(r"(-----BEGIN [A-Z0-9 ]{1,64}-----)(?:.*?(-----END [A-Z0-9 ]{1,64}-----)|.*)", re.DOTALL),
            r"\1" + REDACTED + r"\2",
        ),
        (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
        # URL user-info: `scheme://user:password@`, `redis://:password@`, `scheme://token@`. A password
        # may hold '/', ':' or '@' unescaped, so after the first ':' everything up to the last '@' goes.
        (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@:]*:\S*@"), r"\1" + REDACTED + "@"),
        (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]+@"), r"\1" + REDACTED + "@"),
        # The name around the secret word is bounded: unbounded, a 100 000-character word took minutes.
        (
            re.compile(
                rf"(?i)([\w-]{{0,64}}(?:{_SECRET_WORDS})[\w-]{{0,64}}[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
            ),
            r"\1" + REDACTED,
        ),
        # libpq-style DSNs (`host=db.internal user=admin password=...`): who and where are secrets too.
        (re.compile(r"(?i)\b((?:user|username|host|hostaddr)\s*=\s*)('[^']*'|[^\s,;&]+)"), r"\1" + REDACTED),
        (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,}"), REDACTED),
        (re.compile(r"\b(?:gh[pousr]|github_pat|xox[abprs])_?[A-Za-z0-9_-]{16,}"), REDACTED),
        (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),
        (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), REDACTED),
        # Long unbroken runs mixing upper case, lower case and digits (the base62 and base64 alphabets
        # of keys and tokens) are most likely keys. Hex digests (commit SHAs, UUIDs, content hashes) and
        # lower-case names (a test's folder) lack that mix: secrets only after a label (above).
        (
            re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[a-z])(?=[A-Za-z0-9_-]*[A-Z])[A-Za-z0-9_-]{32,}\b"),
            REDACTED,
        ),
    )


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
    for pattern, replacement in _secret_patterns():
        text = pattern.sub(replacement, text)
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
