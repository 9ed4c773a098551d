"""The vector store kind: named collections of records searched by cosine similarity.

A store (`create_storage("chroma://./kb")`, `lancedb://`, `memory://`) holds collections; a
collection holds records (id, vector, text, metadata) of one dimension, fixed by the first
record written (or declared with `store.collection(name, dimension=...)`). Queries return hits
scored by cosine similarity, higher is better, the same number on every backend; filters use
the portable language of `gecko.plugins.vector.filters`, which each backend translates to its
native filter so that top-k is computed over the matching records only.

Backends subclass `VectorStore`, implement its `_raw_*` methods and register in the
`gecko.vector` entry-point group under their URL scheme. Everything the contract promises
about input (ids, vectors, metadata, filters, dimensions) is checked here, once for all.
"""

from __future__ import annotations

import array
import math
import re
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.to_thread

from gecko.errors import (
    DimensionMismatchError,
    InvalidStorageURLError,
    InvalidValueError,
    VectorStoreError,
)
from gecko.plugins._closable import Closable
from gecko.plugins._numbers import float_vector
from gecko.plugins.registry import Registry, scheme_class_validator
from gecko.plugins.storage import StorageURL, decode_path, validate_key
from gecko.plugins.vector.filters import Filter, MetadataValue, parse_filter

__all__ = (
    "VectorRecord",
    "VectorHit",
    "VectorStore",
    "VectorStoreCapabilities",
    "Collection",
    "Metadata",
    "vector_registry",
    "validate_collection_name",
    "local_path",
    "MAX_TOP_K",
)

T = TypeVar("T")
Metadata = Mapping[str, MetadataValue]
MAX_TOP_K = 10_000
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$")
_EMPTY_METADATA: Metadata = MappingProxyType({})
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class VectorRecord:
    """A stored item: its id, its embedding, the text it stands for and metadata to filter on."""

    id: str
    vector: Sequence[float]
    text: str = ""
    metadata: Metadata = field(default_factory=lambda: _EMPTY_METADATA)


@dataclass(frozen=True)
class VectorHit:
    """A query result: `score` is the cosine similarity to the query, in [-1, 1], higher is closer."""

    id: str
    score: float
    text: str
    metadata: Metadata


@dataclass(frozen=True)
class VectorStoreCapabilities:
    """What a backend offers beyond the basic contract; conformance checks follow these flags."""

    persistent: bool = False


def validate_collection_name(name: object) -> str:
    """Return `name` if it is a valid collection name, else raise `VectorStoreError`.

    Names are 1-63 ASCII letters, digits, `_` and `-`, starting and ending with a letter or digit,
    so that every backend can use them as they are.
    """
    if not isinstance(name, str) or not _COLLECTION_NAME.match(name):
        raise VectorStoreError(
            f"invalid collection name {name!r}: use 1-63 ASCII letters, digits, '_' and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def local_path(url: StorageURL, *, server_scheme: str | None = None) -> str:
    """The directory a file-based URL names: what follows `scheme://` up to any `?query`, percent-decoded.

    `chroma://./kb` names `./kb`, `lancedb:///srv/kb` names `/srv/kb`, `lancedb://./my%20kb` names
    `./my kb`; the query is left to the backend. A location that does not start with `/`, `./`
    or `../` begins with a host (`chroma://host:8000/kb`), which a local directory does not have.

    Raises:
        InvalidStorageURLError: the URL names no directory, names a host (the message shows the
            local forms, and `server_scheme://host` if the backend has a server client), or its
            path does not decode to a usable one.
    """
    local_forms = f"{url.scheme}://./relative/dir or {url.scheme}:///absolute/dir"
    if url.netloc not in ("", ".", ".."):
        host = url.netloc.rpartition("@")[2]  # without any credentials
        server = f"; for a server use {server_scheme}://{host}" if server_scheme else ""
        raise InvalidStorageURLError(
            f"{url.redacted!r} names the host {host!r}, but {url.scheme}:// opens a local "
            f"directory: use {local_forms}{server}"
        )
    location = url.netloc + url.path
    if not location:
        raise InvalidStorageURLError(f"{url.redacted!r} names no directory: use {local_forms}")
    return decode_path(url, location)


def _vector(values: object, what: str) -> array.array[float]:
    """`values` as float64s (`float_vector`), rejecting the zero vector too."""
    try:
        vector = float_vector(values)
    except ValueError as exc:
        raise InvalidValueError(f"{what} {exc}") from exc
    if not any(vector):
        raise InvalidValueError(f"{what} is the zero vector, which has no cosine similarity")
    return vector


def _check_text(text: str, what: str) -> None:
    if not text.isascii() and _SURROGATES.search(text):
        raise InvalidValueError(f"{what} holds a lone surrogate, which is not valid Unicode text")


def _metadata(metadata: object, record_id: str) -> Metadata:
    if not isinstance(metadata, Mapping):
        raise InvalidValueError(f"metadata of {record_id!r} must be a dict, got {type(metadata).__name__}")
    checked: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or key.startswith("$"):
            raise InvalidValueError(f"metadata keys of {record_id!r} are non-empty strings not starting with '$'")
        _check_text(key, f"metadata key {key!r} of {record_id!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidValueError(f"metadata {key!r} of {record_id!r} is {value!r}; numbers must be finite")
        if isinstance(value, (list, tuple)):
            if not value or not all(isinstance(item, str) for item in value):
                raise InvalidValueError(
                    f"metadata {key!r} of {record_id!r}: lists must be non-empty and hold only strings"
                )
            for item in value:
                _check_text(item, f"metadata {key!r} of {record_id!r}")
            checked[key] = list(value)
        elif isinstance(value, str):
            _check_text(value, f"metadata {key!r} of {record_id!r}")
            checked[key] = value
        elif isinstance(value, int) and not isinstance(value, bool) and not _INT64_MIN <= value <= _INT64_MAX:
            raise InvalidValueError(
                f"metadata {key!r} of {record_id!r} is {value}, outside the 64-bit integers backends store"
            )
        elif isinstance(value, (int, float, bool)):
            checked[key] = value
        else:
            raise InvalidValueError(
                f"metadata {key!r} of {record_id!r} is a {type(value).__name__}; "
                "use str, int, float, bool or a list of str"
            )
    return MappingProxyType(checked)


def _record(record: object) -> VectorRecord:
    if not isinstance(record, VectorRecord):
        raise InvalidValueError(f"upsert takes VectorRecord objects, got {type(record).__name__}")
    record_id = validate_key(record.id)
    if not isinstance(record.text, str):
        raise InvalidValueError(f"text of {record_id!r} must be a string, got {type(record.text).__name__}")
    _check_text(record.text, f"text of {record_id!r}")
    return VectorRecord(
        record_id,
        _vector(record.vector, f"vector of {record_id!r}"),
        record.text,
        _metadata(record.metadata, record_id),
    )


def _top_k(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TOP_K:
        raise VectorStoreError(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {value!r}")
    return value


def _ids(ids: Iterable[str] | None) -> list[str] | None:
    if ids is None:
        return None
    if isinstance(ids, str):
        raise VectorStoreError("ids must be a list of strings, not one string")
    return list(dict.fromkeys(validate_key(record_id) for record_id in ids))


class Collection:
    """A handle on one named collection of a store; creating it does no I/O.

    The collection comes into existence with its first upsert. Reads of a collection that does
    not exist yet see it empty.
    """

    def __init__(self, store: VectorStore, name: str, dimension: int | None) -> None:
        self.store = store
        self.name = name
        self._declared_dimension = dimension

    async def dimension(self) -> int | None:
        """The dimension of this collection's vectors, or None while it is empty and undeclared.

        Raises:
            DimensionMismatchError: the collection exists with another dimension than declared.
        """
        stored = await self.store._dimension(self.name)
        if stored is None:
            return self._declared_dimension
        if self._declared_dimension is not None:
            self._check_dimension(stored, self._declared_dimension, "the declaration")
        return stored

    async def upsert(self, records: Iterable[VectorRecord]) -> None:
        """Insert records, replacing those with the same id; all are checked before any is written.

        Raises:
            DimensionMismatchError: a vector's length differs from the collection's dimension.
            InvalidValueError: a vector, text or metadata value is not allowed.
            InvalidKeyError: an id is not a valid key.
        """
        self.store._check_open()
        checked = list({record.id: record for record in map(_record, records)}.values())
        if not checked:
            return
        async with self.store._write_lock(self.name):
            expected = await self.dimension()
            for record in checked:
                expected = self._check_dimension(expected, len(record.vector), f"record {record.id!r}")
            assert expected is not None  # set by the first record
            await self.store._raw_upsert(self.name, expected, checked)
            self.store._dimensions[self.name] = expected

    async def query(
        self, vector: Sequence[float], *, top_k: int = 10, where: Mapping[str, object] | None = None
    ) -> list[VectorHit]:
        """The `top_k` records most similar to `vector` among those matching `where`, best first.

        Raises:
            DimensionMismatchError: `vector` has another length than the collection's vectors.
            InvalidFilterError: `where` is not valid in the filter language.
        """
        self.store._check_open()
        query = _vector(vector, "query vector")
        limit = _top_k(top_k)
        where_tree = parse_filter(where)
        dimension = await self.dimension()
        self._check_dimension(dimension, len(query), "query vector")
        if dimension is None or not await self.store._raw_exists(self.name):
            return []
        hits = await self.store._raw_query(self.name, list(query), limit, where_tree)
        return sorted(hits, key=lambda hit: (-hit.score, hit.id))

    async def get(
        self, ids: Iterable[str] | None = None, *, where: Mapping[str, object] | None = None
    ) -> list[VectorRecord]:
        """Records with these ids (in the order asked; absent ids skipped) and/or matching `where`.

        With `where` alone the records come sorted by id; with neither, every record does.
        """
        self.store._check_open()
        wanted, where_tree = _ids(ids), parse_filter(where)
        if wanted == [] or not await self.store._raw_exists(self.name):
            return []
        found = await self.store._raw_fetch(self.name, wanted, where_tree)
        if wanted is None:
            return sorted(found, key=lambda record: record.id)
        position = {record_id: index for index, record_id in enumerate(wanted)}
        return sorted(found, key=lambda record: position[record.id])

    async def delete(self, ids: Iterable[str] | None = None, *, where: Mapping[str, object] | None = None) -> None:
        """Delete the records with these ids and/or matching `where`; absent ones are ignored.

        To empty a collection, drop it with `store.drop_collection(name)`.
        """
        self.store._check_open()
        wanted, where_tree = _ids(ids), parse_filter(where)
        if wanted is None and where_tree is None:
            raise VectorStoreError("delete needs ids or a filter; use drop_collection() to remove everything")
        if wanted == [] or not await self.store._raw_exists(self.name):
            return
        async with self.store._write_lock(self.name):
            await self.store._raw_remove(self.name, wanted, where_tree)

    async def count(self, *, where: Mapping[str, object] | None = None) -> int:
        """How many records the collection holds (matching `where`, if given)."""
        self.store._check_open()
        where_tree = parse_filter(where)
        if not await self.store._raw_exists(self.name):
            return 0
        return await self.store._raw_count(self.name, where_tree)

    def _check_dimension(self, expected: int | None, actual: int, what: str) -> int:
        if expected is not None and expected != actual:
            raise DimensionMismatchError(
                f"collection {self.name!r} holds vectors of dimension {expected}, but {what} has dimension {actual}",
                expected=expected,
                actual=actual,
            )
        return actual


class VectorStore(Closable):
    """An async store of vector collections.

    Subclasses set `scheme` and `vector_capabilities` and implement the `_raw_*` methods, whose
    names differ from the key-value contract's so that one class can implement both (`memory://`). Arguments
    arrive validated: records are unique by id, their vectors `array.array("d")` of the collection's dimension,
    filters are parsed trees, collections named by `_raw_query`, `_raw_fetch`, `_raw_remove` and
    `_raw_count` exist. Writes to one collection are serialized by the store.
    """

    scheme: ClassVar[str]
    vector_capabilities: ClassVar[VectorStoreCapabilities] = VectorStoreCapabilities()

    def __init__(self) -> None:
        """Subclasses call this from their own `__init__`."""
        self._dimensions: dict[str, int] = {}
        self._write_locks: dict[str, anyio.Lock] = {}

    @classmethod
    @abstractmethod
    async def from_url(cls, url: StorageURL) -> VectorStore:
        """Open the backend `url` points to."""

    # --- public API ----------------------------------------------------------------

    def collection(self, name: str = "default", *, dimension: int | None = None) -> Collection:
        """A handle on collection `name`; `dimension`, if given, is checked against stored vectors."""
        validate_collection_name(name)
        if dimension is not None and (not isinstance(dimension, int) or isinstance(dimension, bool) or dimension < 1):
            raise VectorStoreError(f"dimension must be a positive integer, got {dimension!r}")
        return Collection(self, name, dimension)

    async def list_collections(self) -> list[str]:
        """Names of the collections that exist, sorted."""
        self._check_open()
        return sorted(await self._raw_list_collections())

    async def drop_collection(self, name: str) -> bool:
        """Remove collection `name` and its records; returns whether it existed."""
        self._check_open()
        validate_collection_name(name)
        async with self._write_lock(name):
            self._dimensions.pop(name, None)
            return await self._raw_drop_collection(name)

    # --- what a backend implements -------------------------------------------------

    @abstractmethod
    async def _raw_dimension(self, collection: str) -> int | None:
        """The dimension of an existing collection, or None if it does not exist."""

    async def _raw_exists(self, collection: str) -> bool:
        """Whether the collection exists; by default, whether it has a dimension."""
        return await self._dimension(collection) is not None

    @abstractmethod
    async def _raw_upsert(self, collection: str, dimension: int, records: list[VectorRecord]) -> None:
        """Insert or replace `records`, creating the collection with `dimension` if needed."""

    @abstractmethod
    async def _raw_query(
        self, collection: str, vector: list[float], top_k: int, where: Filter | None
    ) -> list[VectorHit]:
        """The `top_k` best hits among records matching `where`, filtered by the backend itself."""

    @abstractmethod
    async def _raw_fetch(self, collection: str, ids: list[str] | None, where: Filter | None) -> list[VectorRecord]:
        """Records among `ids` (all if None) that match `where`, in any order, with their vectors."""

    @abstractmethod
    async def _raw_remove(self, collection: str, ids: list[str] | None, where: Filter | None) -> None:
        """Delete records among `ids` (all if None) that match `where`."""

    @abstractmethod
    async def _raw_count(self, collection: str, where: Filter | None) -> int:
        """How many records match `where`."""

    @abstractmethod
    async def _raw_list_collections(self) -> list[str]:
        """Names of existing collections, in any order."""

    @abstractmethod
    async def _raw_drop_collection(self, collection: str) -> bool:
        """Remove a collection; whether it existed."""

    # --- helpers -------------------------------------------------------------------

    async def _dimension(self, collection: str) -> int | None:
        # A collection's dimension never changes while it exists, so it is cached per handle.
        known = self._dimensions.get(collection)
        if known is None:
            known = await self._raw_dimension(collection)
            if known is not None:
                self._dimensions[collection] = known
        return known

    def _write_lock(self, collection: str) -> anyio.Lock:
        lock = self._write_locks.get(collection)
        if lock is None:
            lock = self._write_locks[collection] = anyio.Lock()
        return lock

    async def _blocking(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking client call in a worker thread, never on the event loop."""
        return await anyio.to_thread.run_sync(partial(function, *args, **kwargs))


_validate_vector_store_class = scheme_class_validator(VectorStore, "vector store")


vector_registry: Registry[type[VectorStore]] = Registry(
    "gecko.vector",
    "vector store scheme",
    validate=_validate_vector_store_class,
    builtins={"memory": "gecko.plugins.storage.memory:MemoryStorage"},
    install_hints={
        "chroma": "gecko-ai-vector-chroma",
        "chroma+http": "gecko-ai-vector-chroma",
        "lancedb": "gecko-ai-vector-lancedb",
    },
)
