"""The strict-JSON screen before jiter: repeated keys and out-of-bounds numbers, against simple references.

Generated documents spell keys many ways (escapes, `\\u` forms, `\\/`, unicode, `":` inside
strings, whitespace before the colon) and carry numbers near and beyond the lenient reader's bounds.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from gecko.core._json_repair import repeated_key, screen_strict
from gecko.core.structure import StructureEngine
from gecko.core.toolbox import tool
from gecko.errors import StructuredOutputInvalid, ToolArgumentsError
from gecko.plugins.models import ModelResponse
from gecko.types import Message

_KEYS = ["a", "b", "é", "a/", " :x", '":', "\\", "\n", "𝄞", ""]


def _spell_string(text: str, draw: Any) -> str:
    """`text` as a JSON string, each character plain or escaped as the drawn choice says."""
    out = []
    for char in text:
        way = draw(st.integers(0, 2))
        if char in '"\\' or ord(char) < 0x20 or way == 1:
            out.append(json.dumps(char)[1:-1] if way != 1 else "".join(f"\\u{unit:04x}" for unit in _utf16(char)))
        elif char == "/" and way == 2:
            out.append("\\/")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _utf16(char: str) -> list[int]:
    data = char.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


_NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr).filter(lambda t: "inf" not in t),
    st.sampled_from(["1e999", "-1E+400", "1e-999", "1e100", "9" * 250 + "e60", "9" * 185 + "." + "9" * 185 + "e9"]),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1" * 320, "0." + "0" * 200 + "1", "1" * 199 + "." + "1" * 199]),
)


@st.composite
def _documents(draw: Any, depth: int = 0) -> str:
    kind = draw(st.integers(0, 3 if depth < 3 else 1))
    if kind == 0:
        number: str = draw(_NUMBERS)
        return number
    if kind == 1:
        return _spell_string(draw(st.sampled_from([*_KEYS, "x:y", "true", "NaN"])), draw)
    if kind == 2:
        return "[" + ", ".join(draw(st.lists(_documents(depth + 1), max_size=3))) + "]"
    pairs = draw(st.lists(st.tuples(st.sampled_from(_KEYS), _documents(depth + 1)), max_size=4))
    space = draw(st.sampled_from(["", " ", "\n "]))
    return "{" + ", ".join(f"{_spell_string(key, draw)}{space}: {value}" for key, value in pairs) + "}"


def _first_repeated_key(value: Any) -> str | None:
    """Reference: objects as lists of pairs, judged in the order they close (children first)."""
    if isinstance(value, list) and value and all(isinstance(item, tuple) for item in value):
        for _, item in value:
            found = _first_repeated_key(item)
            if found is not None:
                return found
        keys = [key for key, _ in value]
        return next((key for i, key in enumerate(keys) if key in keys[:i]), None)
    if isinstance(value, list):
        for item in value:
            found = _first_repeated_key(item)
            if found is not None:
                return found
    return None


def _numbers_bounded(text: str) -> bool:
    """Reference: every number is one the lenient reader accepts (no constants, <= 400 chars, finite)."""
    tokens: list[str] = []

    def keep(token: str) -> float:
        tokens.append(token)
        return 0.0

    def refuse(token: str) -> float:
        tokens.append("nan")
        return 0.0

    json.loads(text, parse_float=keep, parse_int=keep, parse_constant=refuse)
    return all(
        token != "nan" and len(token) <= 400 and (token.lstrip("-").isdigit() or math.isfinite(float(token)))
        for token in tokens
    )


def _reference(text: str) -> str | None:
    # `object_pairs_hook=list` keeps every pair; an empty object becomes [] (no key to repeat).
    return _first_repeated_key(json.loads(text, object_pairs_hook=lambda pairs: [tuple(p) for p in pairs]))


@given(_documents())
@example('{"q": "v", " :x": 1, "w": "v",  " :x": 2}')
@example('{"a" : 1, "a" : 2}')
@example('{"a": 1, "\\u0061": 2}')
@example('{"a": {"b": 1, "b": 2}, "a": 3}')
@example('[{"a": 1}, {"a": 2}]')
@settings(max_examples=600)
def test_repeated_key_matches_the_reference(text: str) -> None:
    json.loads(text)  # the generator writes strict JSON
    assert repeated_key(text) == _reference(text)


@given(_documents())
@example('{"x": ' + "9" * 250 + "e60}")
@example('{"x": ' + "1" * 199 + "." + "1" * 199 + "}")
@example('{"x": "NaN and 1e999 in a string"}')
@settings(max_examples=600)
def test_screen_lets_through_only_bounded_numbers_and_finds_the_repeated_key(text: str) -> None:
    fast, repeated = screen_strict(text)
    bounded = _numbers_bounded(text)
    expected = _reference(text)
    if fast:
        assert bounded
        assert repeated == expected
    if expected is None and bounded and re.search("[0-9]{190}", text) is None:
        # A complete reading judges every number exactly; only long digit runs go to the lenient reader unread.
        assert fast


def test_a_leading_space_is_read() -> None:
    assert screen_strict('  {"a": 1, "a": 2}') == (True, "a")
    assert repeated_key('\n{"a": 1, "a": 2}') == "a"


class _Value(BaseModel):
    x: float


def _parse(text: str) -> _Value:
    return StructureEngine(_Value, strategy="prompted").parse(
        ModelResponse(message=Message.assistant(text)), "prompted"
    )


@pytest.mark.parametrize(
    "number",
    ["9" * 250 + "e60", "1" * 200 + "." + "1" * 200, "1e999", "-1E+400", "NaN", "-Infinity"],
)
def test_a_number_beyond_the_lenient_bounds_is_refused_on_the_fast_path_too(number: str) -> None:
    with pytest.raises(StructuredOutputInvalid, match=r"number|unexpected"):
        _parse('{"x": ' + number + "}")


@pytest.mark.parametrize("text", ['{"x": 1e100}', '{"x": 1.5, "note": "NaN 1e999"}', '{"x": ' + "1" * 150 + ".5}"])
def test_bounded_numbers_validate(text: str) -> None:
    assert _parse(text) == _Value.model_validate_json(text)


def test_a_key_repeated_behind_whitespace_or_a_colon_in_a_key_is_ambiguous() -> None:
    for text in ['{"x": 1, "x" : 2}', '{"q": "v", " :x": 1, "x": 2.0,  " :x": 2}']:
        with pytest.raises(StructuredOutputInvalid, match="appears twice"):
            _parse(text)


@tool
def _echo(a: int) -> int:
    """Return `a`."""
    return a


@pytest.mark.parametrize("raw", ['{"a" : 1, "a" : 2}', '{"a": 1,\n "a"\n: 2}', '{"\\u0061": 1, "a": 2}'])
def test_a_tool_argument_repeated_behind_whitespace_is_refused(raw: str) -> None:
    with pytest.raises(ToolArgumentsError, match="appears twice"):
        _echo.validate_arguments(raw)
