"""`create_storage(url)`: open any installed backend, key-value or vector, by URL scheme."""

from __future__ import annotations

from typing import Any, Literal, overload

from gecko.errors import InvalidStorageURLError
from gecko.plugins.storage import Storage, StorageURL, storage_registry
from gecko.plugins.vector import VectorStore, vector_registry

__all__ = ("create_storage",)


@overload
async def create_storage(url: str, *, kind: Literal["kv"]) -> Storage: ...
@overload
async def create_storage(url: str, *, kind: Literal["vector"]) -> VectorStore: ...
@overload
async def create_storage(url: str, *, kind: None = None) -> Any: ...  # the URL's scheme decides the type


async def create_storage(url: str, *, kind: Literal["kv", "vector"] | None = None) -> Storage | VectorStore:
    """Open the backend for `url`, e.g. `sqlite:///./gecko.db`, `redis://localhost:6379/0`, `chroma://./kb`.

    The scheme picks the backend from the `gecko.storage` (key-value) or `gecko.vector` entry-point
    group; `memory://` is in both and serves both contracts. `kind` asks for one contract and types
    the result accordingly (without it the type depends on the URL, so it is `Any` to a type checker).

    Raises:
        InvalidStorageURLError: `url` is malformed (the message shows valid forms), or its scheme
            is of the other kind than `kind` asks for.
        PluginNotFoundError: no installed plugin handles the scheme; the message says what to install.

    Finding and importing the backend's plugin runs on a worker thread, never on the event loop.
    """
    parsed = StorageURL.parse(url)
    import anyio.to_thread  # on first use only: importing the facade stays cheap

    backend = await anyio.to_thread.run_sync(_backend, parsed.scheme, url, kind)
    return await backend.from_url(parsed)


def _backend(scheme: str, url: str, kind: Literal["kv", "vector"] | None) -> type[Storage] | type[VectorStore]:
    # Scans entry points and imports the plugin: called on a worker thread.
    is_vector = scheme != "memory" and scheme not in storage_registry.names() and scheme in vector_registry.names()
    if kind == "kv" and is_vector:
        raise InvalidStorageURLError(f"{url!r} opens a vector store; a key-value store is needed here")
    if kind == "vector" or is_vector:
        return vector_registry.get(scheme)
    return storage_registry.get(scheme)
