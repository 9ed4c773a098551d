"""The storage kind: the async key-value contract, URL parsing and installed backends.

Backends subclass `Storage`, implement its small set of raw methods over JSON text, and are
registered in the `gecko.storage` entry-point group under their URL scheme. The public methods
here validate keys and values and encode JSON once, for every backend alike.
"""

from __future__ import annotations

import json
import math
import re
from abc import abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, ClassVar, NamedTuple, NoReturn

from gecko.errors import (
    InvalidKeyError,
    InvalidStorageURLError,
    InvalidValueError,
    StorageError,
)
from gecko.plugins._closable import Closable
from gecko.plugins.registry import Registry, scheme_class_validator
from gecko.redaction import redact_url

if TYPE_CHECKING:
    from gecko.types import JSONValue

__all__ = (
    "Storage",
    "StorageCapabilities",
    "StorageURL",
    "Versioned",
    "Lease",
    "JSONText",
    "storage_registry",
    "encode_value",
    "decode_value",
    "load_data",
    "checked_version",
    "validate_key",
    "decode_path",
    "MAX_KEY_LENGTH",
)

MAX_KEY_LENGTH = 512
_FORBIDDEN_KEY_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_UNUSABLE_IN_PATH = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_URL_EXAMPLES = "sqlite:///./gecko.db, sqlite:////abs/path.db, redis://localhost:6379/0, memory://"


@dataclass(frozen=True, repr=False)
class StorageURL:
    """A parsed storage URL: `scheme://netloc/path?query`.

    `raw` and `netloc` may hold credentials: messages and logs show `redacted` instead.
    """

    raw: str
    scheme: str
    netloc: str
    path: str
    query: dict[str, str] = field(default_factory=dict)

    @property
    def redacted(self) -> str:
        """The URL without credentials, for messages and logs."""
        return redact_url(self.raw)

    def __repr__(self) -> str:
        return f"StorageURL({self.redacted!r})"

    @classmethod
    def parse(cls, url: str) -> StorageURL:
        """Parse `url`, raising `InvalidStorageURLError` that shows valid forms when it is malformed.

        The query is percent-decoded; `path` and `netloc` are left as written, for the backend
        (`decode_path`). Every `%` must start an escape of UTF-8 bytes, in every part.
        """
        if not isinstance(url, str):
            raise InvalidStorageURLError(
                f"malformed storage URL: expected a string, got {type(url).__name__}; e.g. {_URL_EXAMPLES}"
            )
        if "://" not in url:
            raise InvalidStorageURLError(
                f"malformed storage URL {redact_url(url)!r}: expected 'scheme://location', e.g. {_URL_EXAMPLES}"
            )
        control = next((char for char in url if char < " " or char == "\x7f"), None)
        if control is not None:
            raise InvalidStorageURLError(
                f"malformed storage URL {redact_url(url)!r}: it contains the control character {control!r}; "
                f"percent-encode it or remove it, e.g. {_URL_EXAMPLES}"
            )
        scheme = url.split("://", 1)[0]
        if not _SCHEME.match(scheme):
            raise InvalidStorageURLError(
                f"malformed storage URL {redact_url(url)!r}: scheme {scheme!r} must be lowercase letters, "
                f"digits, '+', '-', '.'; e.g. {_URL_EXAMPLES}"
            )
        if _STRAY_PERCENT.search(url):
            raise InvalidStorageURLError(
                f"malformed storage URL {redact_url(url)!r}: it has a '%' not followed by two hex digits; "
                f"write '%' itself as %25, e.g. {_URL_EXAMPLES}"
            )
        from urllib.parse import parse_qsl, unquote, urlsplit

        try:
            parts = urlsplit(url)
            unquote(parts.netloc, errors="strict")  # checked here; the backend decodes user and password
            query = dict(
                parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query), errors="strict")
            )
        except UnicodeDecodeError:
            raise InvalidStorageURLError(
                f"malformed storage URL {redact_url(url)!r}: its host part or query does not percent-decode "
                f"to UTF-8 text; percent-encode only the UTF-8 bytes of a character, e.g. {_URL_EXAMPLES}"
            ) from None
        except ValueError as exc:
            raise InvalidStorageURLError(
                f"malformed storage URL {redact_url(url)!r}: {exc}; e.g. {_URL_EXAMPLES}"
            ) from exc
        if parts.fragment or url.endswith("#"):
            raise InvalidStorageURLError(
                f"malformed storage URL {redact_url(url)!r}: a storage URL takes no '#fragment'; "
                f"percent-encode '#' as %23 where it belongs to the location, e.g. {_URL_EXAMPLES}"
            )
        return cls(raw=url, scheme=scheme, netloc=parts.netloc, path=parts.path, query=query)


def decode_path(url: StorageURL, encoded: str) -> str:
    """`encoded`, the file path part of `url`, percent-decoded as a `file://` URL's path is.

    `sqlite:///./a%20b.db` names `./a b.db`; a `%` itself is written `%25`.

    Raises:
        InvalidStorageURLError: a `%` starts no escape, the decoded path is not UTF-8 text, or
            it holds NUL, another control character or a lone surrogate, which no file name should.
    """
    from urllib.parse import unquote

    if _STRAY_PERCENT.search(encoded):
        raise InvalidStorageURLError(
            f"storage URL {url.redacted!r}: its path {encoded!r} has a '%' not followed by two hex digits; "
            "write '%' itself as %25"
        )
    try:
        path = unquote(encoded, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidStorageURLError(
            f"storage URL {url.redacted!r}: its path {encoded!r} does not percent-decode to UTF-8 text ({exc.reason}); "
            "percent-encode only the UTF-8 bytes of a character"
        ) from None
    unusable = _UNUSABLE_IN_PATH.search(path)
    if unusable is not None:
        raise InvalidStorageURLError(
            f"storage URL {url.redacted!r}: its path decodes to {path!r}, which holds {unusable.group()!r}; "
            "a file path holds no NUL, control character or lone surrogate"
        )
    return path


class Versioned(NamedTuple):
    """A stored value with its version; versions grow by one on every write of the key."""

    value: JSONValue
    version: int


@dataclass(frozen=True)
class Lease:
    """A time-limited grant of `name` to `owner`; `token` grows with every new grant (fencing)."""

    name: str
    owner: str
    token: int
    expires_at: float


@dataclass(frozen=True)
class StorageCapabilities:
    """What a backend offers beyond the basic contract; conformance checks follow these flags."""

    ttl: bool = False
    persistent: bool = False
    leases: bool = False
    cross_process: bool = False


def validate_key(key: object) -> str:
    """Return `key` if it is a valid storage key, else raise `InvalidKeyError`."""
    if type(key) is str and key in _VALID_KEYS:
        return key
    checked = _checked_key(key)
    if len(_VALID_KEYS) >= _VALID_KEYS_KEPT:
        _VALID_KEYS.clear()
    _VALID_KEYS[checked] = None
    return checked


# Keys found valid lately: checking a key reads every character (`isprintable`, several times the
# cost of this lookup), and a durable workflow writes the same few keys (journal slots) at every step.
_VALID_KEYS: dict[str, None] = {}
_VALID_KEYS_KEPT = 256


def _checked_key(key: object) -> str:
    if not isinstance(key, str):
        raise InvalidKeyError(f"storage keys are strings, got {type(key).__name__}")
    if not key:
        raise InvalidKeyError("storage keys must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"storage key of {len(key)} characters exceeds {MAX_KEY_LENGTH}")
    if key.isascii() and key.isprintable():
        # Printable ASCII holds no control character and no surrogate: the common key needs no search.
        return key
    if _FORBIDDEN_KEY_CHARACTERS.search(key) is not None:
        if _SURROGATES.search(key):
            raise InvalidKeyError(f"storage key {key!r} contains lone surrogates, which are not valid Unicode text")
        raise InvalidKeyError(f"storage key {key!r} contains control characters")
    return key


def _encoder(*, sort_keys: bool) -> Callable[[object], str]:
    """Compact JSON text of a value (no NaN); raises TypeError, ValueError or RecursionError.

    `JSONEncoder.encode` builds its C encoder again on every call; this builds it once (without
    the cycle check: a value that contains itself ends in a RecursionError instead).
    """
    encoder = json.JSONEncoder(sort_keys=sort_keys, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    if c_make_encoder is None:  # an interpreter without the C accelerator
        return encoder.encode
    one_shot = c_make_encoder(None, encoder.default, encode_basestring, None, ":", ",", sort_keys, False, False)
    return lambda value: "".join(one_shot(value, 0))


_ENCODE = _encoder(sort_keys=False)
_ENCODE_SORTED = _encoder(sort_keys=True)


class JSONText(NamedTuple):
    """A value its writer already encoded with `encode_value`: `Storage` writes `text` as it is.

    For writers that need the exact stored text anyway (to seal it), so it is encoded once.
    Text that `encode_value` did not produce breaks whoever reads the key.
    """

    text: str


def encode_value(value: JSONValue, *, sort_keys: bool = False) -> str:
    """Encode JSON-compatible data; anything else (objects, NaN, bytes, lone surrogates) is an `InvalidValueError`.

    With `sort_keys`, object keys are sorted: equal data always encodes to the same text.
    """
    try:
        text = (_ENCODE_SORTED if sort_keys else _ENCODE)(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidValueError(f"storage values must be JSON-compatible data: {exc}") from exc
    if not text.isascii() and _SURROGATES.search(text):
        raise InvalidValueError("storage values must be valid Unicode text: a string holds a lone surrogate")
    return text


def load_data(text: str) -> JSONValue:
    """`text` decoded, if it is data `encode_value` can write: JSON without NaN, infinities,
    numbers beyond float64 (`1e999`), lone surrogates (as characters or as `"\\ud800"` escapes)
    or an object that repeats a key (a reader keeping the last would see other data than the writer).

    Raises:
        ValueError: anything else, text nested too deeply to decode included.
    """
    try:
        value = _DECODE(text)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc
    except TypeError as exc:  # not text at all: bytes a backend handed over unread
        raise ValueError(str(exc)) from exc
    # A lone surrogate sits in the text itself (from a backend that does not check its UTF-8) or
    # is decoded from an escape, which `encode_value` never writes (it writes non-ASCII text as is).
    if (not text.isascii() and _SURROGATES.search(text)) or ("\\u" in text and _holds_surrogate(value)):
        raise ValueError("a string holds a lone surrogate, which is not valid Unicode text")
    return value


def decode_value(text: str, key: str) -> JSONValue:
    """Decode a stored value; what `encode_value` never writes (`load_data`) is a `StorageError` naming the key."""
    try:
        return load_data(text)
    except ValueError as exc:
        raise StorageError(f"stored value of {key!r} is not valid JSON: {exc}") from exc


MAX_STORED_VERSION = 2**62
"""Above any version a store reaches by counting writes, and below the 64-bit limit of its counter."""


def checked_version(version: object, key: str) -> int:
    """`version`, as a backend read it for `key`, if it is one a store writes: an int from 1 to `MAX_STORED_VERSION`.

    Raises:
        StorageError: anything else (text, a float, zero or less, a number near the counter's limit).
    """
    if type(version) is int and 0 < version <= MAX_STORED_VERSION:
        return version
    raise StorageError(f"stored version of {key!r} is {version!r}, not a version this store writes")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"number {token[:40]} is beyond the range of float64")
    return value


def _refuse_constant(token: str) -> NoReturn:
    raise ValueError(f"{token} is not a JSON number")


def _object_of_unique_keys(pairs: list[tuple[str, JSONValue]]) -> dict[str, JSONValue]:
    value = dict(pairs)
    if len(value) != len(pairs):
        repeated = next(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise ValueError(f"an object repeats the key {repeated[:40]!r}")
    return value


def _holds_surrogate(value: object) -> bool:
    """Whether any string in `value`, key or item, holds a lone surrogate (a loop, not recursion: any depth)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATES.search(item) is not None:
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


_DECODE = json.JSONDecoder(
    parse_float=_finite_float, parse_constant=_refuse_constant, object_pairs_hook=_object_of_unique_keys
).decode


class Storage(Closable):
    """An async key-value store of JSON data with versioned writes and optional TTL and leases.

    Subclasses set `scheme` and `capabilities` and implement the `_raw_*` methods; keys arrive
    validated and values arrive as JSON text, which they give back as it was written (object key
    order included: checkpoint seals cover that text).
    """

    scheme: ClassVar[str]
    capabilities: ClassVar[StorageCapabilities] = StorageCapabilities()

    @classmethod
    @abstractmethod
    async def from_url(cls, url: StorageURL) -> Storage:
        """Open the backend `url` points to."""

    # --- public API ----------------------------------------------------------------

    async def get(self, key: str, default: JSONValue = None) -> JSONValue:
        """The value stored at `key`, or `default` when there is none."""
        found = await self.get_versioned(key)
        return default if found is None else found.value

    async def get_versioned(self, key: str) -> Versioned | None:
        """The value at `key` with its version, or None."""
        self._check_open()
        raw = await self._raw_get(validate_key(key))
        if raw is None:
            return None
        text, version = raw
        return Versioned(decode_value(text, key), checked_version(version, key))

    async def set(
        self, key: str, value: JSONValue | JSONText, *, ttl: float | None = None, fence: Lease | None = None
    ) -> int:
        """Store `value` (data, or its `JSONText`) at `key`, expiring after `ttl` seconds if given.

        Returns the new version.

        With `fence`, the write happens only while that lease is the current grant
        (else `FencingError`, and nothing changes).
        """
        text = self._text_to_write(key, value, ttl)
        return await self._raw_put(key, text, ttl=ttl, fence=fence, expected_version=None, check_version=False)

    def compare_and_set(
        self,
        key: str,
        value: JSONValue | JSONText,
        *,
        expected_version: int | None,
        ttl: float | None = None,
        fence: Lease | None = None,
    ) -> Awaitable[int]:
        """Store `value` only if `key` is at `expected_version` (None: absent); await it for the new version.

        Not a coroutine of its own (durable workflows call it for every step): the arguments are checked
        when it is called, and the backend's write is returned to await.

        Raises:
            VersionConflictError: the key is at another version; nothing changes.
        """
        text = self._text_to_write(key, value, ttl)
        return self._raw_put(key, text, ttl=ttl, fence=fence, expected_version=expected_version, check_version=True)

    async def delete(self, key: str, *, fence: Lease | None = None) -> bool:
        """Remove `key`; returns whether it existed."""
        self._check_open()
        return await self._raw_delete(validate_key(key), fence)

    async def list_keys(self, prefix: str = "") -> list[str]:
        """Every live key starting with `prefix`, sorted."""
        self._check_open()
        if not isinstance(prefix, str):
            raise InvalidKeyError(f"prefix must be a string, got {type(prefix).__name__}")
        return sorted(await self._raw_list(prefix))

    async def acquire_lease(self, name: str, *, owner: str, ttl: float, replacing: str | None = None) -> Lease | None:
        """Grant `name` to `owner` for `ttl` seconds if nobody holds it; None when held elsewhere.

        With `replacing`, a live grant whose owner is exactly `replacing` (a holder the caller
        knows is dead) is taken over at once; its token is superseded, so its fenced writes fail.
        Backends that cannot do this atomically grant only a free lease.
        """
        self._check_open()
        self._require_leases()
        if replacing is None:
            return await self._raw_acquire_lease(validate_key(name), owner, _positive_ttl(ttl))
        return await self._raw_take_over_lease(validate_key(name), owner, _positive_ttl(ttl), replacing)

    async def lease_owner(self, name: str) -> str | None:
        """The owner of the live grant of `name`; None when it is free (or the backend cannot tell)."""
        self._check_open()
        self._require_leases()
        return await self._raw_lease_owner(validate_key(name))

    async def renew_lease(self, lease: Lease, *, ttl: float) -> Lease:
        """Extend a lease still held; raises `FencingError` if it was lost."""
        self._check_open()
        self._require_leases()
        return await self._raw_renew_lease(lease, _positive_ttl(ttl))

    async def release_lease(self, lease: Lease) -> None:
        """Give a lease up; releasing a lease already lost does nothing."""
        self._check_open()
        self._require_leases()
        await self._raw_release_lease(lease)

    # --- what a backend implements -------------------------------------------------

    @abstractmethod
    async def _raw_get(self, key: str) -> tuple[str, int] | None:
        """JSON text and version at `key`, or None if absent or expired."""

    @abstractmethod
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
        """Atomically check the fence and (if `check_version`) the version, then write; new version."""

    @abstractmethod
    async def _raw_delete(self, key: str, fence: Lease | None) -> bool:
        """Atomically check the fence, then delete."""

    @abstractmethod
    async def _raw_list(self, prefix: str) -> list[str]:
        """Live keys starting with `prefix`, in any order."""

    async def _raw_acquire_lease(self, name: str, owner: str, ttl: float) -> Lease | None:
        raise NotImplementedError

    async def _raw_take_over_lease(self, name: str, owner: str, ttl: float, replacing: str) -> Lease | None:
        # Without an atomic check of the current owner, only a free lease can be granted.
        return await self._raw_acquire_lease(name, owner, ttl)

    async def _raw_lease_owner(self, name: str) -> str | None:
        return None

    async def _raw_renew_lease(self, lease: Lease, ttl: float) -> Lease:
        raise NotImplementedError

    async def _raw_release_lease(self, lease: Lease) -> None:
        raise NotImplementedError

    # --- helpers -------------------------------------------------------------------

    def _text_to_write(self, key: str, value: JSONValue | JSONText, ttl: float | None) -> str:
        """Check a write's key and TTL and return the JSON text to store (synchronous: no coroutine per write)."""
        self._check_open()
        validate_key(key)
        if ttl is not None:
            if not self.capabilities.ttl:
                raise StorageError(f"{type(self).__name__} does not support TTL")
            _positive_ttl(ttl)
        return value.text if type(value) is JSONText else encode_value(value)

    def _require_leases(self) -> None:
        if not self.capabilities.leases:
            raise StorageError(f"{type(self).__name__} does not support leases")


def _positive_ttl(ttl: float) -> float:
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not ttl > 0:
        raise StorageError(f"ttl must be a positive number of seconds, got {ttl!r}")
    return float(ttl)


_validate_storage_class = scheme_class_validator(Storage, "storage")


storage_registry: Registry[type[Storage]] = Registry(
    "gecko.storage",
    "storage scheme",
    validate=_validate_storage_class,
    builtins={"memory": "gecko.plugins.storage.memory:MemoryStorage"},
    install_hints={
        "sqlite": "gecko-ai-storage-sqlite",
        "redis": "gecko-ai-storage-redis",
        "rediss": "gecko-ai-storage-redis",
        "unix": "gecko-ai-storage-redis",
        "chroma": "gecko-ai-vector-chroma",
        "chroma+http": "gecko-ai-vector-chroma",
        "lancedb": "gecko-ai-vector-lancedb",
    },
)
