"""The lifecycle every store shares: `close()` once, `async with`, and an error on use after close."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import TypeVar

from gecko.errors import StorageClosedError

__all__ = ("Closable",)

_Self = TypeVar("_Self", bound="Closable")


class Closable(ABC):
    """A resource closed once; subclasses implement `_raw_close` and call `_check_open` before each use."""

    _closed: bool = False

    async def close(self) -> None:
        """Release the backend's resources; later calls raise `StorageClosedError`."""
        if not self._closed:
            self._closed = True
            await self._raw_close()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @abstractmethod
    async def _raw_close(self) -> None:
        """Release connections and files."""

    def _check_open(self) -> None:
        if self._closed:
            raise StorageClosedError(f"{type(self).__name__} was used after close()")
