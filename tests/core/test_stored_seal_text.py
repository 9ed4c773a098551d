"""`Sealer.seal_text`: a record encoded once, with its seal, reads back as the record `seal` makes."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gecko.compose._stored import StoredAttempts
from gecko.core._stored import SEAL_FIELD, Sealer, open_stored
from gecko.errors import CorruptCheckpointError, InvalidValueError
from gecko.plugins.storage import encode_value

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=10,
)

RECORD = {"count": 2, "parked": False, "owner": "host:1:2:boot:nonce", "at": 1.5, "note": "🦎"}


@pytest.mark.parametrize("key", [None, b"k" * 16])
def test_sealed_text_is_the_sealed_record_and_opens(key: bytes | None) -> None:
    sealer = Sealer(key)
    sealed = json.loads(sealer.seal_text(RECORD, where="gecko/attempts/w/s", version=3).text)
    from_text = sealer.sealed_bytes
    assert sealed == sealer.seal(RECORD, where="gecko/attempts/w/s", version=3)
    assert from_text == sealer.sealed_bytes > 0  # what the journal counts towards `snapshot_bytes`
    opened = open_stored(sealer, StoredAttempts, sealed, where="gecko/attempts/w/s", version=3, what="the count")
    assert opened == RECORD


def test_sealed_text_is_bound_to_its_key_and_version() -> None:
    sealer = Sealer(None)
    sealed = json.loads(sealer.seal_text(RECORD, where="gecko/attempts/w/s", version=3).text)
    for where, version in (("gecko/attempts/w/other", 3), ("gecko/attempts/w/s", 4)):
        with pytest.raises(CorruptCheckpointError, match="integrity check"):
            open_stored(sealer, StoredAttempts, sealed, where=where, version=version, what="the count")


def test_sealed_text_keeps_the_key_order_of_the_record() -> None:
    record = {"z": 1, "a": {"y": 2, "b": 3}}
    sealed = json.loads(Sealer(None).seal_text(record, where="k", version=1).text)
    assert list(sealed) == ["z", "a", SEAL_FIELD]
    assert list(sealed["a"]) == ["y", "b"]


def test_empty_record_is_sealed_as_an_object_holding_only_the_seal() -> None:
    assert list(json.loads(Sealer(None).seal_text({}, where="k", version=None).text)) == [SEAL_FIELD]


def test_record_that_is_not_json_data_is_an_invalid_value_error() -> None:
    with pytest.raises(InvalidValueError):
        Sealer(None).seal_text({"at": float("nan")}, where="k", version=None)


@pytest.mark.parametrize("key", [None, b"k" * 16])
def test_record_sealed_over_its_sorted_json_by_an_earlier_version_still_opens(key: bytes | None) -> None:
    sealer = Sealer(key)
    record = {"owner": "host", "count": 2, "parked": False, "at": 1.5}
    sorted_body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    assert sorted_body != json.dumps(record, separators=(",", ":")).encode()
    stored = {**record, SEAL_FIELD: sealer._tag(sorted_body, "gecko/attempts/w/s", 3)}
    opened = open_stored(sealer, StoredAttempts, stored, where="gecko/attempts/w/s", version=3, what="the count")
    assert opened == record
    with pytest.raises(CorruptCheckpointError, match="integrity check"):
        open_stored(sealer, StoredAttempts, {**stored, "count": 3}, where="gecko/attempts/w/s", version=3, what="c")


def test_seal_covers_the_key_order_it_was_written_in() -> None:
    sealer = Sealer(None)
    record = {"owner": "host", "count": 2, "parked": False, "at": 1.5}
    stored = json.loads(sealer.seal_text(record, where="k", version=1).text)
    reordered = {name: stored[name] for name in ("count", "owner", "parked", "at", SEAL_FIELD)}
    with pytest.raises(CorruptCheckpointError, match="integrity check"):
        open_stored(sealer, StoredAttempts, reordered, where="k", version=1, what="the count")


def _reference_tag(key: bytes | None, body: bytes, where: str, version: int | None) -> str:
    """The seal as every version so far defines it: over the domain, `json.dumps([where, version])`, a NUL, the body."""
    message = b"gecko-seal/1\x00" + json.dumps([where, version]).encode() + b"\x00" + body
    if key is None:
        return "sha256:" + hashlib.sha256(message).hexdigest()
    return "hmac-sha256:" + hmac.new(key, message, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("key", [None, b"k" * 16])
def test_seals_are_the_ones_earlier_versions_wrote_and_read(key: bytes | None) -> None:
    sealer = Sealer(key)
    body = b'{"count":2}'
    wheres = [f"gecko/workflow/w/s/journal/{slot:04d}" for slot in range(300)] + ['k\u00e9y "q"\\', "\U0001f98e"]
    for where in [*wheres, *wheres[:3]]:  # more keys than the sealer keeps contexts for, then earlier ones again
        for version in (None, 0, 1, 2**70):
            assert sealer._tag(body, where, version) == _reference_tag(key, body, where, version)


def test_seal_of_a_known_record_is_unchanged() -> None:
    body, where = b'{"count":2}', "gecko/workflow/w/s/journal/0001"
    assert Sealer(None)._tag(body, where, 7) == (
        "sha256:195626189cbb9a76ab0b3875d60c6894dc15d408b2975af0ae48781324721622"
    )
    assert Sealer(b"k" * 16)._tag(body, where, 7) == (
        "hmac-sha256:c752ff2df92657bd9803d57d271c1a4932fadff07f47c7903060e8bce3e9b17d"
    )


@settings(max_examples=100, deadline=None)
@given(record=st.dictionaries(st.text(max_size=4), json_values, max_size=4))
def test_record_sealed_from_its_text_is_the_record_sealed(record: dict[str, Any]) -> None:
    sealer = Sealer(b"k" * 16)
    assert sealer.seal_encoded(encode_value(record), where="k", version=2) == sealer.seal_text(
        record, where="k", version=2
    )
