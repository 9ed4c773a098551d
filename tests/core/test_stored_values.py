"""`decode_value` reads back exactly what `encode_value` can write: anything else a tampered store
holds (NaN, a number beyond float64, a lone surrogate escape, a repeated object key, a non-version) is a
`StorageError`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gecko.errors import InvalidValueError, StorageError
from gecko.plugins.storage import checked_version, decode_value, encode_value
from gecko.plugins.storage.memory import MemoryStorage

# Every scalar Python's json module can produce, the ones encode_value refuses included.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats()
    | st.text(max_size=4)
    | st.text(alphabet="a\x00é😀\ud800\udfff", max_size=4)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
# Tokens of no JSON value but of the texts a store can be made to hold.
fragments = st.sampled_from(
    [
        "NaN",
        "-Infinity",
        "1e999",
        "-1e400",
        '"\\ud800"',
        '"\\uDFFF x"',
        '"\\ud83d\\ude00"',
        '"\\\\ud800"',
        "[",
        "]",
        ",",
    ]
)


@given(value=values, ascii_only=st.booleans())
def test_a_stored_text_reads_back_as_a_value_that_can_be_written_again_or_is_a_storage_error(
    value: Any, ascii_only: bool
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    try:
        read = decode_value(text, "k")
    except StorageError:
        with pytest.raises(InvalidValueError):  # what encode_value refuses, and only that
            encode_value(value)
        return
    assert decode_value(encode_value(read), "k") == read


@given(parts=st.lists(fragments, min_size=1, max_size=6))
def test_texts_built_of_hostile_tokens_read_as_writable_values_or_storage_errors(parts: list[str]) -> None:
    try:
        read = decode_value("[" + ",".join(parts) + "]", "k")
    except StorageError:
        return
    encode_value(read)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("NaN", "NaN is not a JSON number"),
        ('{"a": [1, -Infinity]}', "-Infinity is not a JSON number"),
        ('{"a": 1e999}', "number 1e999 is beyond the range of float64"),
        ('["ok", {"k\\udc00": 1}]', "holds a lone surrogate"),
        ('{"a": "\\ud800"}', "holds a lone surrogate"),
        ('{"é": "\\ud800"}', "holds a lone surrogate"),
        ('{"a": "é\ud800"}', "holds a lone surrogate"),
        ('{"a": 1, "a": 2}', "an object repeats the key 'a'"),
        ('{"a": 1, "b": 2, "a": 1}', "an object repeats the key 'a'"),
        ('[{"ok": {"é": [], "\\u00e9": [], "é": []}}]', "an object repeats the key 'é'"),
        ('{"k": {"x": null, "y": 0, "x": 0}}', "an object repeats the key 'x'"),
    ],
)
async def test_values_encode_value_never_writes_are_storage_errors_on_read(text: str, problem: str) -> None:
    store = MemoryStorage()
    await store._raw_put("k", text, ttl=None, fence=None, expected_version=None, check_version=False)
    with pytest.raises(StorageError, match=problem) as caught:
        await store.get("k")
    assert str(caught.value).startswith("stored value of 'k' ")
    assert (await store._raw_get("k")) == (text, 1), "a read changed the stored value"


def test_escaped_text_that_is_no_surrogate_reads_as_written() -> None:
    assert decode_value('["\\ud83d\\ude00", "\\\\ud800", "\\u00e9"]', "k") == ["😀", "\\ud800", "é"]


@pytest.mark.parametrize("version", [0, -1, 2**62 + 1, 2**63 - 1, 1.0, "1", b"1", None, True])
def test_a_stored_version_that_no_store_writes_is_a_storage_error(version: object) -> None:
    with pytest.raises(StorageError, match=r"stored version of 'k' is .*, not a version this store writes"):
        checked_version(version, "k")
