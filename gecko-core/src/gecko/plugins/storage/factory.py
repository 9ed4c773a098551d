"""`create_storage(url)`: open any installed backend by URL scheme."""

from __future__ import annotations

from gecko.plugins.storage import Storage, StorageURL, storage_registry

__all__ = ("create_storage",)


async def create_storage(url: str) -> Storage:
    """Open the storage backend for `url`, e.g. `sqlite:///./gecko.db` or `redis://localhost:6379/0`.

    Raises:
        InvalidStorageURLError: `url` is malformed; the message shows valid forms.
        PluginNotFoundError: no installed plugin handles the scheme; the message says what to install.

    Finding and importing the backend's plugin runs on a worker thread, never on the event loop.
    """
    parsed = StorageURL.parse(url)
    backend = await storage_registry.aget(parsed.scheme)
    return await backend.from_url(parsed)
