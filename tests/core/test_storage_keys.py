"""`validate_key`: exactly the control characters (C0, DEL) and lone surrogates are refused, in any key."""

from __future__ import annotations

import pytest

from gecko.errors import InvalidKeyError
from gecko.plugins.storage import validate_key


def _forbidden(code: int) -> bool:
    return code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF


def test_every_code_point_is_refused_exactly_when_it_is_a_control_character_or_a_surrogate() -> None:
    for code in range(0x110000):
        key = f"gecko/{chr(code)}/k"
        if _forbidden(code):
            with pytest.raises(InvalidKeyError):
                validate_key(key)
        else:
            assert validate_key(key) == key


@pytest.mark.parametrize("key", ["gecko/wf/s\x00", "\x1fgecko", "gecko\x7f", "ü/\n", "日本/\ud800"])
def test_forbidden_character_is_refused_in_ascii_and_non_ascii_keys(key: str) -> None:
    with pytest.raises(InvalidKeyError, match=r"control characters|surrogates"):
        validate_key(key)
