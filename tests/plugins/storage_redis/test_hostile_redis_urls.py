"""Hostile Redis URLs fail when the store is opened, with a typed error, not at the first command
with a raw TypeError (no server is needed: nothing here connects)."""

from __future__ import annotations

import pytest

from gecko.errors import InvalidStorageURLError, StorageError
from gecko.plugins.storage.factory import create_storage


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("redis://127.0.0.1:6379/0?colour=red", InvalidStorageURLError, "an option is not a Redis connection setting"),
        ("redis://127.0.0.1:6379/0?ttl=5", InvalidStorageURLError, "unexpected keyword argument 'ttl'"),
        ("unix:///run/redis.sock?db=0&x=1", InvalidStorageURLError, "unexpected keyword argument 'x'"),
        ("rediss://127.0.0.1:6380/0?colour=red", InvalidStorageURLError, "an option is not a Redis connection setting"),
        ("redis://127.0.0.1:6379/0?socket_timeout=soon", InvalidStorageURLError, "must be a number above 0"),
        ("redis://127.0.0.1:99999/0", StorageError, "Port out of range"),
        ("redis://127.0.0.1:6379/zero", StorageError, "the path must be a database number"),
        ("redis://127.0.0.1:6379/0?namespace=", StorageError, "namespace must not be empty"),
        ("redis://:secret@127.0.0.1:6379/0?colour=red", InvalidStorageURLError, "redis://[REDACTED]@127.0.0.1"),
    ],
)
async def test_hostile_redis_urls_are_typed_errors_at_open(url: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        await create_storage(url)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


async def test_known_options_still_open() -> None:
    async with await create_storage("redis://127.0.0.1:6379/0?socket_timeout=3&health_check_interval=5"):
        pass


OPTION_URL = "redis://127.0.0.1:6379/0?{}"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        # values redis-py takes but that fail at the first command, with raw ValueError or OverflowError on trio
        ("socket_timeout=-1", "socket_timeout='-1' must be a number above 0 up to 86400"),
        ("socket_timeout=0", "must be a number above 0"),
        ("socket_timeout=nan", "must be a number above 0"),
        ("socket_timeout=inf", "must be a number above 0"),
        ("socket_timeout=1e300", "must be a number above 0"),
        ("socket_connect_timeout=-1", "must be a number above 0"),
        ("health_check_interval=-5", "must be an integer from 0 up to 86400"),
        ("health_check_interval=2.5", "must be an integer from 0"),
        ("max_connections=0", "must be an integer from 1 up to 1000000"),
        ("db=-1", "db='-1' must be an integer from 0"),
        ("protocol=9", "protocol='9' must be an integer from 2 up to 3"),  # raw redis ConnectionError before
        ("retry_on_timeout=maybe", "must be true or false"),  # redis-py read it as true
        ("socket_keepalive=sometimes", "must be true or false"),
        ("client_name=a%20b", "must be printable ASCII without spaces"),
        # options that break the store itself
        ("decode_responses=true", "reads and writes UTF-8 bytes itself"),  # raw AttributeError before
        ("encoding=bogus", "reads and writes UTF-8 bytes itself"),  # raw LookupError before
        ("encoding=latin-1", "reads and writes UTF-8 bytes itself"),
        ("retry_on_error=x", "sets its own retries"),
        # percent-escapes that decode to nothing certain (U+FFFD, or a literal '%')
        ("namespace=%FF", "does not percent-decode to UTF-8 text"),
        ("namespace=a%", "'%' not followed by two hex digits"),
    ],
)
async def test_option_values_that_would_fail_later_are_refused_at_open(query: str, message: str) -> None:
    with pytest.raises(InvalidStorageURLError) as caught:
        await create_storage(OPTION_URL.format(query))
    assert message in str(caught.value)


async def test_a_password_that_does_not_decode_is_refused_without_showing_it() -> None:
    with pytest.raises(InvalidStorageURLError, match="does not percent-decode to UTF-8 text") as caught:
        await create_storage("redis://:secret%FF@127.0.0.1:6379/0")
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("query", ["socket_timeout=2.5&health_check_interval=0", "retry_on_timeout=FALSE&protocol=3"])
async def test_valid_option_values_open(query: str) -> None:
    async with await create_storage(OPTION_URL.format(query)):
        pass


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("unix://host/run/redis.sock", "a Unix socket URL has no host part, got 'host'"),  # the host was ignored
        ("unix://:secret@host/run/redis.sock", "got 'host'"),
        ("unix://", "names no socket file"),
        ("unix:///", "names no socket file"),
        ("unix:///run/?db=0", "names no socket file"),
        ("unix:///run/re%00dis.sock", "holds '\\x00'"),
        ("unix:///run/re%0Adis.sock", "holds '\\n'"),
        ("unix:///run/%FF.sock", "does not percent-decode to UTF-8 text"),
    ],
)
async def test_a_unix_socket_url_without_a_usable_socket_path_is_refused_at_open(url: str, message: str) -> None:
    # before: every one tried to connect (to the path without the host, to '', to '/') for seconds of retries
    with pytest.raises(InvalidStorageURLError) as caught:
        await create_storage(url)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)
