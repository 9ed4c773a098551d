"""`create_storage` URL handling: malformed URLs and unknown schemes say what to do."""

from __future__ import annotations

from typing import Literal

import pytest

from gecko.errors import InvalidStorageURLError, PluginNotFoundError
from gecko.plugins.storage import StorageURL, decode_path
from gecko.plugins.storage.factory import create_storage
from gecko.plugins.storage.memory import MemoryStorage


@pytest.mark.parametrize("url", ["", "gecko.db", "sqlite:/x.db", "/tmp/x.db", 42])
async def test_url_without_scheme_separator_shows_valid_forms(url: object) -> None:
    with pytest.raises(InvalidStorageURLError, match=r"sqlite:///\./gecko\.db"):
        await create_storage(url)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["SQLite:///x.db", "1db://x", "my_db://x"])
async def test_url_with_invalid_scheme_shows_valid_forms(url: str) -> None:
    with pytest.raises(InvalidStorageURLError, match="must be lowercase"):
        await create_storage(url)


@pytest.mark.parametrize("url", ["sqlite:///./a\x00b.db", "memory://\n", "redis://host:6379/0\x7f", "chroma://./kb\t"])
async def test_url_with_a_control_character_is_refused_before_any_backend_opens(url: str) -> None:
    with pytest.raises(InvalidStorageURLError, match="control character"):
        await create_storage(url)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("sqlite:///./x.db#frag", "kv"),
        ("sqlite:///./x.db#", "kv"),
        ("memory://#a", "kv"),
        ("redis://:pa#ss@host:6379/0", "kv"),
        ("chroma://./kb#part", "vector"),
        ("lancedb://./kb#part", "vector"),
    ],
)
async def test_url_with_a_fragment_is_refused_before_any_backend_opens(url: str, kind: Literal["kv", "vector"]) -> None:
    with pytest.raises(InvalidStorageURLError, match="no '#fragment'") as caught:
        await create_storage(url, kind=kind)
    assert "pa#ss" not in str(caught.value)


async def test_unknown_scheme_says_how_to_find_and_install_a_provider() -> None:
    with pytest.raises(PluginNotFoundError) as raised:
        await create_storage("nosuchstore://x")
    message = str(raised.value)
    assert "'nosuchstore'" in message
    assert "pip install" in message
    assert "'gecko.storage' entry-point group" in message
    assert "`gecko plugins`" in message


def test_parse_splits_location_and_query() -> None:
    url = StorageURL.parse("redis://localhost:6379/0?timeout=3")
    assert (url.scheme, url.netloc, url.path, url.query) == ("redis", "localhost:6379", "/0", {"timeout": "3"})


async def test_memory_url_opens_a_memory_store() -> None:
    async with await create_storage("memory://") as store:
        assert isinstance(store, MemoryStorage)
        await store.set("k", 1)
        assert await store.get("k") == 1


@pytest.mark.parametrize(
    ("encoded", "path"),
    [
        ("./a%20b.db", "./a b.db"),
        ("./100%25.db", "./100%.db"),
        ("/srv/%E4%B8%AD.db", "/srv/\u4e2d.db"),
        ("./x%2Fy", "./x/y"),
        ("./plain", "./plain"),
    ],
)
def test_decode_path_percent_decodes_like_a_file_url(encoded: str, path: str) -> None:
    assert decode_path(StorageURL.parse(f"any://{encoded}"), encoded) == path


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("%00x.db", "holds '\\x00'"),
        ("./a%0Ab", "holds '\\n'"),
        ("./a%7F", "holds '\\x7f'"),
        ("./\ud800", "lone surrogate"),
        ("./%ff.db", "does not percent-decode to UTF-8 text"),
        ("./%C3", "does not percent-decode to UTF-8 text"),
        ("./%ED%A0%80", "does not percent-decode to UTF-8 text"),  # an encoded surrogate
        ("./50%.db", "'%' not followed by two hex digits"),
        ("./%zz", "'%' not followed by two hex digits"),
        ("./%2", "'%' not followed by two hex digits"),
    ],
)
def test_decode_path_refuses_what_names_no_usable_file(encoded: str, message: str) -> None:
    with pytest.raises(InvalidStorageURLError) as caught:
        decode_path(StorageURL.parse("any:///x"), encoded)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("any://host/0?a=%FF", "does not percent-decode to UTF-8 text"),
        ("any://host/0?%C3=1", "does not percent-decode to UTF-8 text"),
        ("any://user:p%FF@host/0", "does not percent-decode to UTF-8 text"),
        ("any://host/0?a=50%", "'%' not followed by two hex digits"),
        ("any://host/0?a=%zz", "'%' not followed by two hex digits"),
        ("any://us%r@host/0", "'%' not followed by two hex digits"),
        ("any:///50%.db", "'%' not followed by two hex digits"),
    ],
)
def test_parse_refuses_percent_escapes_that_decode_to_nothing_certain(url: str, message: str) -> None:
    with pytest.raises(InvalidStorageURLError) as caught:
        StorageURL.parse(url)
    assert message in str(caught.value)
    assert "p%FF" not in str(caught.value)


def test_parse_decodes_the_query_and_leaves_path_and_host_as_written() -> None:
    url = StorageURL.parse("any://us%40er@host/a%20b?name=%C3%A9%25")
    assert (url.netloc, url.path, url.query) == ("us%40er@host", "/a%20b", {"name": "\u00e9%"})
