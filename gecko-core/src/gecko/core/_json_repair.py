"""A bounded, tolerant JSON reader for what weak models write around and inside their JSON.

It accepts code fences, surrounding prose, trailing commas, single-quoted strings, bare
identifier keys and the Python literals `True`/`False`/`None`. It never completes truncated
input, never guesses between readings (a repeated key, or a second JSON value beside the
first, is ambiguous), and bounds nesting depth, number length and input size, so hostile text
ends in a `JSONRepairError`, never a crash.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

__all__ = ("JSONRepairError", "loads_lenient", "repeated_key", "screen_strict")

# A fence opens and closes a line (as in Markdown), so three backticks inside a JSON string are no
# fence (a JSON line never starts with them); an inline "```json {...}```" is still read, by the
# search for containers in the prose.
_FENCE = re.compile(r"^[ \t]*```[A-Za-z0-9_+-]*[ \t]*\r?\n?(.*?)(?:^[ \t]*```|\Z)", re.DOTALL | re.MULTILINE)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_WHITESPACE = " \t\r\n"
_LITERALS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_MAX_NUMBER_CHARS = 400
_MAX_START_ATTEMPTS = 16


class JSONRepairError(ValueError):
    """The text holds no single complete JSON value within the bounds.

    `truncated` marks text that ended inside a value; `bound` marks a value beyond the limits;
    `ambiguous` marks text with more than one reading (a repeated key, or two values).
    """

    def __init__(
        self, message: str, position: int, *, truncated: bool = False, bound: bool = False, ambiguous: bool = False
    ) -> None:
        super().__init__(f"{message} at position {position}")
        self.position = position
        self.truncated = truncated
        self.bound = bound
        self.ambiguous = ambiguous

    @property
    def decisive(self) -> bool:
        """Whether no other reading of the text can succeed, so the search for a value stops."""
        return self.truncated or self.bound or self.ambiguous


class _Reader:
    __slots__ = ("max_depth", "text")

    def __init__(self, text: str, max_depth: int) -> None:
        self.text = text
        self.max_depth = max_depth

    def fail(self, message: str, position: int) -> JSONRepairError:
        return JSONRepairError(message, position, truncated=position >= len(self.text))

    def skip(self, position: int) -> int:
        text = self.text
        while position < len(text) and text[position] in _WHITESPACE:
            position += 1
        return position

    def value(self, position: int, depth: int) -> tuple[Any, int]:
        position = self.skip(position)
        if position >= len(self.text):
            raise self.fail("expected a value", position)
        char = self.text[position]
        if char == "{":
            return self.object(position + 1, depth + 1)
        if char == "[":
            return self.array(position + 1, depth + 1)
        if char in "\"'":
            return self.string(position)
        if char == "-" or char.isdigit():
            return self.number(position)
        match = _IDENTIFIER.match(self.text, position)
        if match and match.group() in _LITERALS:
            return _LITERALS[match.group()], match.end()
        raise self.fail(f"unexpected {char!r}", position)

    def check_depth(self, depth: int, position: int) -> None:
        if depth > self.max_depth:
            raise JSONRepairError(f"nesting deeper than {self.max_depth} levels", position, bound=True)

    def object(self, position: int, depth: int) -> tuple[dict[str, Any], int]:
        self.check_depth(depth, position)
        result: dict[str, Any] = {}
        text = self.text
        while True:
            position = self.skip(position)
            if position >= len(text):
                raise self.fail("unterminated object", position)
            if text[position] == "}":
                return result, position + 1
            if text[position] in "\"'":
                key, position = self.string(position)
            else:
                match = _IDENTIFIER.match(text, position)
                if not match:
                    raise self.fail("expected a key", position)
                key, position = match.group(), match.end()
            position = self.skip(position)
            if position >= len(text) or text[position] != ":":
                raise self.fail("expected ':'", position)
            if key in result:
                raise JSONRepairError(f"the key {key!r} appears twice in one object", position, ambiguous=True)
            result[key], position = self.value(position + 1, depth)
            position = self.skip(position)
            if position < len(text) and text[position] == ",":
                position += 1
            elif position < len(text) and text[position] != "}":
                raise self.fail("expected ',' or '}'", position)

    def array(self, position: int, depth: int) -> tuple[list[Any], int]:
        self.check_depth(depth, position)
        result: list[Any] = []
        text = self.text
        while True:
            position = self.skip(position)
            if position >= len(text):
                raise self.fail("unterminated array", position)
            if text[position] == "]":
                return result, position + 1
            item, position = self.value(position, depth)
            result.append(item)
            position = self.skip(position)
            if position < len(text) and text[position] == ",":
                position += 1
            elif position < len(text) and text[position] != "]":
                raise self.fail("expected ',' or ']'", position)

    def string(self, position: int) -> tuple[str, int]:
        text = self.text
        quote = text[position]
        position += 1
        parts: list[str] = []
        start = position
        while True:
            end = _find_either(text, quote, "\\", position)
            if end < 0:
                raise self.fail("unterminated string", len(text))
            if text[end] == quote:
                parts.append(text[start:end])
                return "".join(parts), end + 1
            parts.append(text[start:end])
            if end + 1 >= len(text):
                raise self.fail("unterminated string", len(text))
            escape = text[end + 1]
            if escape == "u":
                digits = text[end + 2 : end + 6]
                if len(digits) < 4:
                    raise self.fail("unterminated \\u escape", len(text))
                try:
                    code = int(digits, 16)
                except ValueError:
                    raise self.fail("bad \\u escape", end) from None
                position = end + 6
                # A UTF-16 surrogate pair, as JSON writes characters beyond the BMP.
                if 0xD800 <= code < 0xDC00 and text.startswith("\\u", position):
                    try:
                        low = int(text[position + 2 : position + 6], 16)
                    except ValueError:
                        low = 0
                    if 0xDC00 <= low < 0xE000:
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        position += 6
                parts.append(chr(code))
            else:
                parts.append(_ESCAPES.get(escape, escape))
                position = end + 2
            start = position

    def number(self, position: int) -> tuple[int | float, int]:
        match = _NUMBER.match(self.text, position)
        if not match:
            raise self.fail("malformed number", position)
        token = match.group()
        if len(token) > _MAX_NUMBER_CHARS:
            raise JSONRepairError(f"number longer than {_MAX_NUMBER_CHARS} characters", position, bound=True)
        if match.group(1) is None and match.group(2) is None:
            return int(token), match.end()
        number = float(token)
        if not math.isfinite(number):
            raise JSONRepairError("number out of range", position, bound=True)
        return number, match.end()


def _find_either(text: str, first: str, second: str, start: int) -> int:
    a = text.find(first, start)
    b = text.find(second, start)
    if a < 0:
        return b
    if b < 0:
        return a
    return min(a, b)


def _read_value(text: str, max_depth: int) -> Any:
    """The JSON value that is all of `text`."""
    reader = _Reader(text, max_depth)
    value, end = reader.value(0, 0)
    if reader.skip(end) != len(text):
        raise JSONRepairError("unexpected text after the value", end)
    return value


def _candidates(text: str) -> list[str]:
    """Fenced blocks first (a model that fences means the fence), then the text itself."""
    if "```" not in text:
        return [text]
    blocks = [match.group(1).strip() for match in _FENCE.finditer(text)]
    return [block for block in blocks if block] + [text]


def _values_in(text: str, max_depth: int, errors: list[JSONRepairError]) -> list[Any]:
    """The complete JSON values in `text`: all of it, or else the containers inside prose (at most two).

    Reads from each opening bracket in turn. A read that ran into the end of the text is
    truncated, and one beyond the bounds is too big: no fragment of either is the answer, so
    the search raises.
    """
    try:
        return [_read_value(text.strip(), max_depth)]
    except JSONRepairError as exc:
        if exc.ambiguous or exc.bound:
            raise
        errors.append(exc)
    reader = _Reader(text, max_depth)
    found: list[Any] = []
    start = -1
    for _ in range(_MAX_START_ATTEMPTS):
        start = _next_bracket(text, start + 1)
        if start < 0:
            break
        try:
            value, end = reader.value(start, 0)
        except JSONRepairError as exc:
            if exc.decisive and not found:
                raise
            errors.append(exc)
            continue
        found.append(value)
        if len(found) == 2:
            break
        start = end - 1
    return found


def loads_lenient(text: str, *, max_depth: int = 64, max_chars: int = 1_000_000) -> Any:
    """The one complete JSON value in `text`, read tolerantly.

    Raises:
        JSONRepairError: No complete value was found within the bounds, or the text is ambiguous:
            an object repeats a key, or two JSON values (two fenced blocks, or two containers in
            the prose) stand side by side.
    """
    if len(text) > max_chars:
        raise JSONRepairError(f"text longer than {max_chars} characters", max_chars, bound=True)
    errors: list[JSONRepairError] = []
    candidates = _candidates(text)
    fenced = candidates[:-1]
    if fenced:
        # Fenced blocks count together: two fenced values are as ambiguous as two in the prose.
        values = [value for block in fenced for value in _values_in(block, max_depth, errors)]
        if values:
            return _single(values)
    values = _values_in(candidates[-1], max_depth, errors)
    if values:
        return _single(values)
    decisive = [error for error in errors if error.decisive]
    raise (decisive or errors or [JSONRepairError("no JSON value found", 0)])[0]


def _single(values: list[Any]) -> Any:
    if len(values) > 1:
        raise JSONRepairError("the text holds more than one JSON value", 0, ambiguous=True)
    return values[0]


def _next_bracket(text: str, start: int) -> int:
    return _find_either(text, "{", "[", start)


class _RepeatedKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _NumberOutOfBounds(Exception):
    """A number the lenient reader refuses (not a ValueError, so the scanner's own errors stay apart)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> None:
    """`object_pairs_hook`: raise on the first key the object holds twice (the object itself is not kept)."""
    if len(dict(pairs)) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)


def _bounded_float(token: str) -> None:
    """`parse_float`: refuse what `_Reader.number` refuses (too long, or not finite), without the long parse."""
    if len(token) > _MAX_NUMBER_CHARS or not math.isfinite(float(token)):
        raise _NumberOutOfBounds


def _refuse_constant(token: str) -> None:
    """`parse_constant`: NaN, Infinity and -Infinity are no JSON."""
    raise _NumberOutOfBounds


# The standard library's C scanner reads one JSON value; number values are never built (`len`
# stands in for `int`, so no digit-count limit applies), keys are decoded, escapes included.
# `scan_once` (the scanner `raw_decode` wraps, untyped in the stubs) skips `raw_decode`'s Python frame.
_Scan = Callable[[str, int], tuple[Any, int]]
_KEYS_SCAN: _Scan = json.JSONDecoder(
    object_pairs_hook=_unique_keys, parse_int=len, parse_float=len, parse_constant=len
).scan_once  # type: ignore[attr-defined]
_STRICT_SCAN: _Scan = json.JSONDecoder(
    object_pairs_hook=_unique_keys, parse_int=len, parse_float=_bounded_float, parse_constant=_refuse_constant
).scan_once  # type: ignore[attr-defined]

# The text-level number screen: a match only sends the text to the lenient reader, which decides.
# A number whose digit runs are shorter than 190 and whose exponent has at most two digits is
# shorter than `_MAX_NUMBER_CHARS` and below 1e290, so what passes the screen that reader accepts.
_LONG_EXPONENT = re.compile(r"[0-9][eE][+-]?[0-9]{3}")
_LONG_DIGITS_CHARS = 190
_LONG_DIGITS = re.compile(f"[0-9]{{{_LONG_DIGITS_CHARS}}}")


def _has_long_digits(text: str) -> bool:
    return len(text) >= _LONG_DIGITS_CHARS and _LONG_DIGITS.search(text) is not None


def _has_suspicious_number(text: str) -> bool:
    """Whether `text` may hold a non-finite or very long number (the cheap tests first)."""
    return "NaN" in text or "Infinity" in text or _LONG_EXPONENT.search(text) is not None or _has_long_digits(text)


def repeated_key(text: str) -> str | None:
    """The first key that one object of the JSON `text` holds twice, or None.

    Keys compare decoded (`"a"` and `"\\u0061"` are one key); objects count in the order they
    close, so an inner object is judged before the one holding it. For text a strict JSON parser
    has accepted (which keeps the last of repeated keys); what the standard reader refuses, it
    cannot judge (None).
    """
    try:
        _KEYS_SCAN(text, len(text) - len(text.lstrip(_WHITESPACE)))
    except _RepeatedKey as exc:
        return exc.key
    except (ValueError, RecursionError, StopIteration):
        pass
    return None


def screen_strict(text: str) -> tuple[bool, str | None]:
    """Whether a strict parser that keeps the last of repeated keys and reads overflowing numbers
    as infinities (jiter) may read `text`, and the first repeated key (as `repeated_key` finds it).

    False means `text` may hold a number the lenient reader refuses (NaN, Infinity, a float that
    is not finite, a number longer than its bound): only the lenient reader can decide. When the
    standard reader cannot finish `text` (a repeated key ends it, or it is no strict JSON), the
    numbers are judged from the text alone.
    """
    if len(text) >= _LONG_DIGITS_CHARS and _LONG_DIGITS.search(text) is not None:  # `_has_long_digits`, inlined
        return False, None
    try:
        _STRICT_SCAN(text, len(text) - len(text.lstrip(_WHITESPACE)))
    except _NumberOutOfBounds:
        return False, None
    except _RepeatedKey as exc:
        return not _has_suspicious_number(text), exc.key
    except (ValueError, RecursionError, StopIteration):
        return not _has_suspicious_number(text), None
    return True, None
