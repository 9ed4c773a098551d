"""The `gecko.plugins` entry point: each hook hands over to the configured `Guardrails`, if any (with a judge, the
checks that may ask it return a coroutine the host awaits)."""

from __future__ import annotations

from collections.abc import Awaitable

from gecko.plugins import hookimpl
from gecko.plugins.models import ModelRequest, ModelResponse
from gecko.types import Message, ToolCall
from gecko_guardrails.guard import current
from gecko_guardrails.stream import StreamRedactor


@hookimpl
def gecko_model_request(request: ModelRequest, source: str) -> Awaitable[None] | None:
    guardrails = current()
    return None if guardrails is None else guardrails.check_request(request, source)


@hookimpl
def gecko_model_response(request: ModelRequest, response: ModelResponse, source: str) -> None:
    guardrails = current()
    if guardrails is not None:
        guardrails.redact_response(response)


@hookimpl
def gecko_stream_filter(source: str) -> StreamRedactor | None:
    guardrails = current()
    return None if guardrails is None else guardrails.stream_redactor()


@hookimpl
def gecko_tool_admit(call: ToolCall, messages: list[Message], source: str) -> Awaitable[None] | None:
    guardrails = current()
    return None if guardrails is None else guardrails.admit(call, messages, source)


@hookimpl
async def gecko_tool_call(call: ToolCall, source: str) -> None:
    guardrails = current()
    if guardrails is not None:
        await guardrails.check_arguments(call, source)


@hookimpl
def gecko_tool_result(call: ToolCall, result: str, source: str) -> Awaitable[None] | None:
    guardrails = current()
    return None if guardrails is None else guardrails.check_result(call, result, source)
