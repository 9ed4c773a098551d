"""A transport wrapper that ends a session at the first message breaking JSON-RPC.

The SDK drops what it cannot use: a line that is not a JSON-RPC message (garbage, the wrong
`jsonrpc` version, a response whose `result` is not an object) reaches only a debug log, and so
does a response to a request never sent. A request whose reply was among them would wait for its
timeout. Here the first such message ends the read stream instead: the SDK fails every request in
flight at once with "connection closed", and `ProtocolGuard.violation` says what the server sent.
Imported when a server connects (it imports the SDK), never by `import gecko_tools_mcp`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import anyio
from mcp.shared.dispatcher import coerce_request_id
from mcp_types import JSONRPCError, JSONRPCRequest, JSONRPCResponse
from pydantic import ValidationError

if TYPE_CHECKING:
    from mcp.client._transport import ReadStream, TransportStreams, WriteStream
    from mcp.shared.message import SessionMessage
    from mcp_types import RequestId
    from typing_extensions import Self

__all__ = ("ProtocolGuard",)


class _Closable(Protocol):
    async def aclose(self) -> None: ...


StreamT = TypeVar("StreamT", bound=_Closable)


class ProtocolGuard:
    """Watches one session's messages; `violation` is set by the first one that breaks the protocol."""

    def __init__(self) -> None:
        self.violation: str | None = None
        self._unanswered: set[RequestId] = set()  # ids of our requests no response has named yet

    @asynccontextmanager
    async def watch(self, transport: AbstractAsyncContextManager[TransportStreams]) -> AsyncIterator[TransportStreams]:
        """`transport`, its streams wrapped: what the server sends is checked, our request ids recorded."""
        async with transport as (read_stream, write_stream):
            yield _CheckedRead(read_stream, self), _RecordedWrite(write_stream, self)

    def sent(self, message: SessionMessage) -> None:
        if isinstance(message.message, JSONRPCRequest):
            self._unanswered.add(coerce_request_id(message.message.id))

    def check(self, item: SessionMessage | Exception) -> str | None:
        """What is wrong with `item`, a message from the server, or None if nothing is."""
        if isinstance(item, Exception):
            return f"it sent what is not a JSON-RPC 2.0 message ({_summary(item)})"
        message = item.message
        if not isinstance(message, (JSONRPCResponse, JSONRPCError)):
            return None
        if message.id is None:
            error = message.error.message if isinstance(message, JSONRPCError) else ""
            return f"it answered no request with an error: {error[:200]!r}"
        request_id = coerce_request_id(message.id)
        if request_id not in self._unanswered:
            return f"it answered request id {message.id!r}, which was never sent or was answered already"
        self._unanswered.discard(request_id)
        return None


class _Wrapper(Generic[StreamT]):
    """Closing and the context manager, passed on to the wrapped stream."""

    def __init__(self, inner: StreamT) -> None:
        self._inner: StreamT = inner

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()


class _CheckedRead(_Wrapper["ReadStream[SessionMessage | Exception]"]):
    """The transport's read stream, ending (as at EOF) after the first message that breaks the protocol."""

    def __init__(self, inner: ReadStream[SessionMessage | Exception], guard: ProtocolGuard) -> None:
        super().__init__(inner)
        self._guard = guard

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        if self._guard.violation is not None:
            raise anyio.EndOfStream
        item = await self._inner.receive()
        violation = self._guard.check(item)
        if violation is not None:
            self._guard.violation = violation
            raise anyio.EndOfStream
        return item

    def __aiter__(self) -> _CheckedRead:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


class _RecordedWrite(_Wrapper["WriteStream[SessionMessage]"]):
    """The transport's write stream, recording the id of every request sent."""

    def __init__(self, inner: WriteStream[SessionMessage], guard: ProtocolGuard) -> None:
        super().__init__(inner)
        self._guard = guard

    async def send(self, item: SessionMessage, /) -> None:
        self._guard.sent(item)  # before sending: the answer may come before `send` returns
        await self._inner.send(item)


def _summary(error: Exception) -> str:
    """What was wrong with the message, in one short line."""
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            return str(first["msg"])[:200]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}, got {repr(first['input'])[:200]}"
    return (str(error).splitlines() or [type(error).__name__])[0][:200]
