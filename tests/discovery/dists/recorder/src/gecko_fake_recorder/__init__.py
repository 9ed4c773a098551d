"""A hook plugin implementing every Gecko hook; it records what each one received in `CALLS`.

Sync and async implementations are mixed on purpose: the host awaits whichever it gets.
"""

from __future__ import annotations

from typing import Any

from gecko.plugins import hookimpl
from gecko.plugins.hookspecs import Operation
from gecko.plugins.models import ModelRequest, ModelResponse
from gecko.types import Event, ToolCall

CALLS: list[tuple[str, Any]] = []


@hookimpl
async def gecko_event(event: Event) -> None:
    CALLS.append(("gecko_event", event))


@hookimpl
def gecko_model_request(request: ModelRequest, source: str) -> None:
    CALLS.append(("gecko_model_request", (request, source)))


@hookimpl
async def gecko_model_response(request: ModelRequest, response: ModelResponse, source: str) -> None:
    CALLS.append(("gecko_model_response", (response, source)))


@hookimpl
def gecko_tool_call(call: ToolCall, source: str) -> None:
    CALLS.append(("gecko_tool_call", (call, source)))


@hookimpl
async def gecko_tool_result(call: ToolCall, result: str, source: str) -> None:
    CALLS.append(("gecko_tool_result", (call, result, source)))


@hookimpl
def gecko_operation_started(operation: Operation) -> None:
    CALLS.append(("gecko_operation_started", operation))


@hookimpl
async def gecko_operation_ended(operation: Operation) -> None:
    CALLS.append(("gecko_operation_ended", operation))
