"""Deterministic chat models for tests: no network, every reply decided by the test."""

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import anyio

from gecko.errors import ConfigurationError
from gecko.plugins.models import (
    ChatModel,
    FinishReason,
    ModelCapabilities,
    ModelChunk,
    ModelRequest,
    ModelResponse,
    ToolCallDelta,
)
from gecko.types import Message, TokenUsage, ToolCall

__all__ = ("ScriptedModel", "FunctionModel", "Reply", "reply", "tool_calls_reply")

Reply = ModelResponse | str | list[ToolCall]
"""A scripted reply: a full response, final text, or tool calls."""

_call_ids = itertools.count(1)


@functools.lru_cache(maxsize=64)
def _usage(input_tokens: int, output_tokens: int) -> TokenUsage:
    # One frozen value per pair of counts, shared by the replies that report it.
    return TokenUsage(
        input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens, requests=1
    )


def _response(message: Message, usage: TokenUsage, finish_reason: FinishReason) -> ModelResponse:
    # `ModelResponse(...)` without `__init__`'s overhead: the same validator call.
    response: ModelResponse = ModelResponse.__pydantic_validator__.validate_python(
        {"message": message, "usage": usage, "finish_reason": finish_reason, "model": "scripted"}
    )
    return response


def reply(text: str, *, input_tokens: int = 10, output_tokens: int = 5) -> ModelResponse:
    """A final text answer with the given usage."""
    return _response(Message.assistant(text), _usage(input_tokens, output_tokens), "stop")


def tool_calls_reply(
    *calls: tuple[str, str] | ToolCall, input_tokens: int = 10, output_tokens: int = 5
) -> ModelResponse:
    """A reply asking for tools; each call is `(name, json_arguments)` or a `ToolCall`."""
    tool_calls = [
        call if isinstance(call, ToolCall) else ToolCall(id=f"call_{next(_call_ids)}", name=call[0], arguments=call[1])
        for call in calls
    ]
    return _response(Message.assistant(None, tool_calls), _usage(input_tokens, output_tokens), "tool_calls")


def _as_response(item: Reply) -> ModelResponse:
    if isinstance(item, ModelResponse):
        return item
    if isinstance(item, str):
        return reply(item)
    return tool_calls_reply(*item)


class _RecordingModel(ChatModel):
    """Shared behaviour: records requests, optional latency, chunked streaming.

    `deltas` cuts a reply's text into the streamed deltas; word by word (each space starting a delta) when None.
    """

    def __init__(
        self,
        *,
        capabilities: ModelCapabilities | None = None,
        delay: float = 0.0,
        model: str = "",
        deltas: Callable[[str], Sequence[str]] | None = None,
    ) -> None:
        self.capabilities = capabilities or ModelCapabilities(tools=True, json_schema=True, streaming=True)
        self.delay = delay
        self.deltas = deltas or _split_keep_spaces
        self.model = model or self.provider
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest) -> ModelResponse:
        # The request as sent, not a copy: the engines build a new request (with lists of its own)
        # for every call and never change one once it is sent.
        self.requests.append(request)
        if self.delay:
            await anyio.sleep(self.delay)
        return await self._respond(request)

    async def _respond(self, request: ModelRequest) -> ModelResponse:
        raise NotImplementedError

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        return self._stream(request)

    async def _stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        response = await self.complete(request)
        text = response.message.text
        # Deltas as `deltas` cuts the text (word by word unless given), as a provider would send them.
        for piece in self.deltas(text):
            yield ModelChunk(text=piece)
        for index, call in enumerate(response.message.tool_calls):
            middle = len(call.arguments) // 2
            yield ModelChunk(tool_calls=[ToolCallDelta(index=index, id=call.id, name=call.name)])
            yield ModelChunk(tool_calls=[ToolCallDelta(index=index, arguments=call.arguments[:middle])])
            yield ModelChunk(tool_calls=[ToolCallDelta(index=index, arguments=call.arguments[middle:])])
        yield ModelChunk(usage=response.usage, finish_reason=response.finish_reason)


def _split_keep_spaces(text: str) -> list[str]:
    pieces: list[str] = []
    for word in text.split(" "):
        pieces.append(word if not pieces else " " + word)
    return [piece for piece in pieces if piece]


class ScriptedModel(_RecordingModel):
    """Replies from a script, one item per call; running out of script is a test error.

    Example:
        `ScriptedModel([[("add", '{"a": 1, "b": 2}')], "3"])` asks for `add`, then answers "3".
    """

    provider = "scripted"

    def __init__(
        self,
        replies: Sequence[Reply],
        *,
        capabilities: ModelCapabilities | None = None,
        delay: float = 0.0,
        cycle: bool = False,
        model: str = "",
        deltas: Callable[[str], Sequence[str]] | None = None,
    ) -> None:
        super().__init__(capabilities=capabilities, delay=delay, model=model, deltas=deltas)
        self._replies = [_as_response(item) for item in replies]
        self._cycle = cycle
        self._position = 0

    async def _respond(self, request: ModelRequest) -> ModelResponse:
        if self._position >= len(self._replies):
            if not self._cycle or not self._replies:
                raise ConfigurationError(f"ScriptedModel ran out of replies after {self._position} calls")
            self._position = 0
        response = self._replies[self._position]
        self._position += 1
        return response


class FunctionModel(_RecordingModel):
    """Replies computed by `function(request)`, sync or async, for replies that depend on the input."""

    provider = "function"

    def __init__(
        self,
        function: Callable[[ModelRequest], Reply | Awaitable[Reply]],
        *,
        capabilities: ModelCapabilities | None = None,
        delay: float = 0.0,
        model: str = "",
        deltas: Callable[[str], Sequence[str]] | None = None,
    ) -> None:
        super().__init__(capabilities=capabilities, delay=delay, model=model, deltas=deltas)
        self._function = function

    async def _respond(self, request: ModelRequest) -> ModelResponse:
        result = self._function(request)
        if isinstance(result, (ModelResponse, str, list)):
            return _as_response(result)
        return _as_response(await result)
