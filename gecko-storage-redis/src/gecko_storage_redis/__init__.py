"""Redis storage for Gecko: atomic versioned writes and fenced leases as Lua scripts.

On asyncio the store uses `redis.asyncio`; on trio it uses the synchronous client on a worker
thread (`ThreadedRedis`), with the same scripts and the same guarantees.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gecko.errors import (
    FencingError,
    InvalidStorageURLError,
    StorageError,
    StorageUnavailableError,
    VersionConflictError,
)
from gecko.plugins.storage import Lease, Storage, StorageCapabilities, StorageURL, decode_path
from gecko.redaction import redact_url
from gecko_storage_redis._threaded import ThreadedRedis

__version__ = "0.1.0"
__all__ = ("RedisStorage", "RedissStorage", "UnixSocketRedisStorage")

T = TypeVar("T")

_RETRIES = 10
_FENCE_REJECTED = -2
_VERSION_CONFLICT = -1

# KEYS: data key, lease key (the data key again when unfenced).
# ARGV: text, ttl ms ('' = none), check version ('1'/'0'), expected version, fence token ('' = none), write id.
# The write id makes a retry idempotent: a client that lost the reply and sends the script again
# finds its own write already applied and gets its version back instead of a false conflict.
_PUT = """
if redis.call('HGET', KEYS[1], 'w') == ARGV[6] then return {tonumber(redis.call('HGET', KEYS[1], 'n')), 0} end
if ARGV[5] ~= '' and redis.call('HGET', KEYS[2], 'token') ~= ARGV[5] then return {-2, 0} end
local version = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if ARGV[3] == '1' and version ~= tonumber(ARGV[4]) then return {-1, version} end
version = version + 1
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'n', version, 'w', ARGV[6])
if ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) else redis.call('PERSIST', KEYS[1]) end
return {version, 0}
"""

# KEYS: data key, lease key (the data key again when unfenced). ARGV: fence token ('' = none).
_DELETE = """
if ARGV[1] ~= '' and redis.call('HGET', KEYS[2], 'token') ~= ARGV[1] then return -2 end
return redis.call('DEL', KEYS[1])
"""

# KEYS: lease key, the namespace's token counter, the name's own counter of earlier versions.
# ARGV: owner, ttl ms, owner of a live grant to replace.
# One counter for the namespace, so no key per lease name outlives its lease; a name's own counter
# (kept by earlier versions) is folded in once and deleted, so a token is never granted twice.
_ACQUIRE = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] and owner ~= ARGV[3] then return 0 end
local token = redis.call('INCR', KEYS[2])
local legacy = tonumber(redis.call('GET', KEYS[3]) or '0')
if legacy >= token then
  token = legacy + 1
  redis.call('SET', KEYS[2], token)
end
if legacy > 0 then redis.call('DEL', KEYS[3]) end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return token
"""

# KEYS: lease key. ARGV: token, ttl ms.
_RENEW = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: lease key. ARGV: token.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

_URL_EXAMPLES = "redis://localhost:6379/0, rediss://host:6380/0, unix:///run/redis.sock?db=0"
_GLOB_SPECIALS = str.maketrans({c: "\\" + c for c in "*?[]\\"})
_DAY = 86_400.0
# name: (lowest, highest, type); a float option must be above its lowest.
_NUMBER_OPTIONS: dict[str, tuple[float, float, type]] = {
    "socket_timeout": (0.0, _DAY, float),
    "socket_connect_timeout": (0.0, _DAY, float),
    "health_check_interval": (0, _DAY, int),
    "max_connections": (1, 1_000_000, int),
    "db": (0, 1_000_000, int),
    "protocol": (2, 3, int),
    "socket_read_size": (1, 2**26, int),
}
_BOOLEAN_OPTIONS = ("socket_keepalive", "retry_on_timeout", "ssl_check_hostname")
_REFUSED_OPTIONS = {
    "decode_responses": "is not for this store, which reads and writes UTF-8 bytes itself",
    "encoding": "is not for this store, which reads and writes UTF-8 bytes itself",
    "encoding_errors": "is not for this store, which reads and writes UTF-8 bytes itself",
    "legacy_responses": "is not for this store, which reads the client's default replies",
    "retry_on_error": "is not for this store, which sets its own retries (see its README)",
}


def _milliseconds(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


class RedisStorage(Storage):
    """`redis://host:port/db`: shared, persistent as far as the server persists, safe across processes."""

    scheme = "redis"
    capabilities = StorageCapabilities(ttl=True, persistent=True, leases=True, cross_process=True)

    def __init__(
        self, client: redis.asyncio.Redis | ThreadedRedis, *, namespace: str = "gecko", location: str = ""
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._location = location
        self._put = client.register_script(_PUT)
        self._remove = client.register_script(_DELETE)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @classmethod
    async def from_url(cls, url: StorageURL) -> RedisStorage:
        options = dict(url.query)
        namespace = options.pop("namespace", "gecko")
        if not namespace:
            raise StorageError(f"{url.redacted!r}: namespace must not be empty")
        _check_options(url, options)
        if url.scheme == "unix":
            _check_socket_path(url)
        elif url.path not in ("", "/") and not url.path[1:].isdigit():
            raise StorageError(
                f"invalid Redis URL {url.redacted!r}: the path must be a database number; e.g. {_URL_EXAMPLES}"
            )
        location = f"{url.scheme}://{url.netloc}{url.path}"
        # Spelled out rather than urlunsplit, which drops the "//" of unix:///path (the sync client refuses that).
        client_url = f"{location}?{urlencode(options)}" if options else location
        settings: dict[str, Any] = {
            "retry_on_error": [RedisConnectionError, RedisTimeoutError],
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
        }
        # At least ~4 s of retries in all (at most ~7.5 s): enough to ride through a Redis restart.
        backoff = EqualJitterBackoff(cap=1.0, base=0.05)
        client: redis.asyncio.Redis | ThreadedRedis
        try:
            if _on_asyncio():
                client = redis.asyncio.from_url(
                    client_url, retry=redis.asyncio.retry.Retry(backoff, _RETRIES), **settings
                )
            else:
                sync_client = redis.from_url(client_url, retry=redis.retry.Retry(backoff, _RETRIES), **settings)
                client = ThreadedRedis(sync_client)
        except ValueError as exc:
            raise StorageError(f"invalid Redis URL {url.redacted!r}: {exc}; e.g. {_URL_EXAMPLES}") from exc
        pool = (sync_client if isinstance(client, ThreadedRedis) else client).connection_pool
        try:  # redis-py passes options it does not parse to the connection, which refuses them only when first used
            pool.connection_class(**pool.connection_kwargs)
        except (TypeError, ValueError, RedisError) as exc:
            raise InvalidStorageURLError(
                f"invalid Redis URL {url.redacted!r}: an option is not a Redis connection setting ({exc}); "
                f"e.g. {_URL_EXAMPLES}"
            ) from None
        return cls(client, namespace=namespace, location=redact_url(location))

    def _data_key(self, key: str) -> str:
        return f"{self._namespace}:kv:{key}"

    def _lease_key(self, name: str) -> str:
        return f"{self._namespace}:lease:{name}"

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StorageUnavailableError(f"Redis at {self._location} is unreachable after retries: {exc}") from exc
        except RedisError as exc:
            raise StorageError(f"Redis at {self._location} failed: {exc}") from exc

    async def _raw_get(self, key: str) -> tuple[str, int] | None:
        found: list[Any] = await self._call(lambda: self._client.hmget(self._data_key(key), ["v", "n"]))
        text, version = found
        if text is None or version is None:
            return None
        return _stored_text(text, repr(key)), _stored_version(version, key)

    async def _raw_put(
        self,
        key: str,
        text: str,
        *,
        ttl: float | None,
        fence: Lease | None,
        expected_version: int | None,
        check_version: bool,
    ) -> int:
        data_key = self._data_key(key)
        write_id = secrets.token_hex(8)
        result: list[int] = await self._call(
            lambda: self._put(
                keys=[data_key, self._lease_key(fence.name) if fence else data_key],
                args=[
                    text,
                    "" if ttl is None else _milliseconds(ttl),
                    "1" if check_version else "0",
                    expected_version or 0,
                    "" if fence is None else str(fence.token),
                    write_id,
                ],
            )
        )
        status, current = int(result[0]), int(result[1])
        if status == _FENCE_REJECTED:
            raise FencingError(f"lease {fence.name if fence else ''!r} token is no longer the current grant")
        if status == _VERSION_CONFLICT:
            raise VersionConflictError(f"{key!r} is at version {current}, expected {expected_version}")
        return status

    async def _raw_delete(self, key: str, fence: Lease | None) -> bool:
        data_key = self._data_key(key)
        removed = int(
            await self._call(
                lambda: self._remove(
                    keys=[data_key, self._lease_key(fence.name) if fence else data_key],
                    args=["" if fence is None else str(fence.token)],
                )
            )
        )
        if removed == _FENCE_REJECTED:
            raise FencingError(f"lease {fence.name if fence else ''!r} token is no longer the current grant")
        return removed == 1

    async def _raw_list(self, prefix: str) -> list[str]:
        start = len(self._data_key(""))
        # The namespace is escaped as well: `namespace=a*` must not list the keys of namespace `ab`.
        pattern = f"{self._namespace.translate(_GLOB_SPECIALS)}:kv:{prefix.translate(_GLOB_SPECIALS)}*"

        async def scan() -> list[str]:
            return [
                _stored_text(raw, "a key")[start:] async for raw in self._client.scan_iter(match=pattern, count=1000)
            ]

        return await self._call(scan)

    async def _raw_acquire_lease(self, name: str, owner: str, ttl: float) -> Lease | None:
        return await self._raw_take_over_lease(name, owner, ttl, owner)

    async def _raw_take_over_lease(self, name: str, owner: str, ttl: float, replacing: str) -> Lease | None:
        token = int(
            await self._call(
                lambda: self._acquire(
                    keys=[
                        self._lease_key(name),
                        f"{self._namespace}:lease-tokens",
                        f"{self._namespace}:lease-token:{name}",
                    ],
                    args=[owner, _milliseconds(ttl), replacing],
                )
            )
        )
        if token == 0:
            return None
        return Lease(name=name, owner=owner, token=token, expires_at=time.time() + ttl)

    async def _raw_lease_owner(self, name: str) -> str | None:
        owner = await self._call(lambda: self._client.hget(self._lease_key(name), "owner"))
        if owner is None:
            return None
        return _stored_text(owner, f"the owner of lease {name!r}") if isinstance(owner, bytes) else str(owner)

    async def _raw_renew_lease(self, lease: Lease, ttl: float) -> Lease:
        renewed = int(
            await self._call(
                lambda: self._renew(keys=[self._lease_key(lease.name)], args=[lease.token, _milliseconds(ttl)])
            )
        )
        if not renewed:
            raise FencingError(f"lease {lease.name!r} token {lease.token} was lost before renewal")
        return Lease(name=lease.name, owner=lease.owner, token=lease.token, expires_at=time.time() + ttl)

    async def _raw_release_lease(self, lease: Lease) -> None:
        await self._call(lambda: self._release(keys=[self._lease_key(lease.name)], args=[lease.token]))

    async def _raw_close(self) -> None:
        await self._client.aclose()


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class RedissStorage(RedisStorage):
    """`rediss://host:port/db`: Redis over TLS."""

    scheme = "rediss"


class UnixSocketRedisStorage(RedisStorage):
    """`unix:///path/to/redis.sock?db=0`: Redis over a Unix socket."""

    scheme = "unix"


def _check_socket_path(url: StorageURL) -> None:
    """Refuse a `unix://` URL with a host, or without a socket path that decodes to a usable file name."""
    forms = "use unix:///path/to/redis.sock, optionally with ?db=0"
    if url.netloc:
        raise InvalidStorageURLError(
            f"invalid Redis URL {url.redacted!r}: a Unix socket URL has no host part, got "
            f"{url.netloc.rpartition('@')[2]!r}; {forms} (or redis://host:6379/0 for a server over TCP)"
        )
    path = decode_path(url, url.path)  # redis-py decodes it the same way
    if not path.strip("/") or path.endswith("/"):
        raise InvalidStorageURLError(f"invalid Redis URL {url.redacted!r} names no socket file; {forms}")


def _check_options(url: StorageURL, options: dict[str, str]) -> None:
    """Refuse, with `InvalidStorageURLError`, a client option the store cannot work with or a value
    redis-py would take but fail on at the first command (a negative or NaN timeout, `protocol=9`,
    `retry_on_timeout=maybe`); options not named here go to the client as they are."""
    for name, value in options.items():
        problem = None
        if name in _REFUSED_OPTIONS:
            problem = _REFUSED_OPTIONS[name]
        elif name in _NUMBER_OPTIONS:
            low, high, kind = _NUMBER_OPTIONS[name]
            try:
                number = float(value) if kind is float else int(value)
            except ValueError:
                number = math.nan
            if not low <= number <= high or (kind is float and number == low):
                what = f"a number above {low:g}" if kind is float else f"an integer from {low:g}"
                problem = f"must be {what} up to {high:.0f}"
        elif name in _BOOLEAN_OPTIONS and value.lower() not in ("true", "false", "yes", "no", "1", "0"):
            problem = "must be true or false"
        elif name == "client_name" and not all("!" <= char <= "~" for char in value):
            problem = "must be printable ASCII without spaces (Redis refuses other names)"
        if problem is not None:
            raise InvalidStorageURLError(
                f"invalid Redis URL {url.redacted!r}: option {name}={value[:40]!r} {problem}; e.g. {_URL_EXAMPLES}"
            )


def _stored_text(raw: bytes, what: str) -> str:
    """`raw` as text; bytes that are not UTF-8 (written around Gecko) are a `StorageError`."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StorageError(f"Redis holds bytes that are not UTF-8 for {what}: {exc}") from exc


def _stored_version(raw: bytes, key: str) -> int:
    """The version stored beside `key`'s value; anything but a whole number is a `StorageError`."""
    try:
        return int(raw)
    except ValueError as exc:
        raise StorageError(f"Redis holds a version of {key!r} that is not a whole number: {raw!r}") from exc
