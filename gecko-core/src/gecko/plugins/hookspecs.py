"""The hooks a `gecko.plugins` entry point may implement.

Every hook may be a plain function or a coroutine function: the host awaits whatever an
implementation returns. Implementations run in pluggy's order (last registered first).
Async-capable hooks never use `firstresult`: every implementation runs.

A plugin implements hooks with `gecko.plugins.hookimpl`::

    from gecko.plugins import hookimpl

    @hookimpl
    async def gecko_model_request(request, source):
        ...
"""

from __future__ import annotations

from collections.abc import Awaitable

import pluggy

from gecko.plugins.models import ModelRequest, ModelResponse
from gecko.types import Event, Message, ToolCall

__all__ = ("hookspec", "hookimpl")

hookspec = pluggy.HookspecMarker("gecko")
hookimpl = pluggy.HookimplMarker("gecko")


@hookspec
def gecko_event(event: Event) -> Awaitable[None] | None:
    """Observe one event published by an agent, workflow or team.

    Fires for every event on every event bus (`agent.started`, `model.finished`,
    `tool.failed`, `workflow.node.skipped`, ...). Return values are ignored. An exception is
    logged and never stops the run: observers cannot break what they observe.
    """


@hookspec
def gecko_model_request(request: ModelRequest, source: str) -> Awaitable[None] | None:
    """Inspect or edit a model request just before it is sent.

    `source` names the calling agent. An implementation may edit `request.messages` in place
    (e.g. redact input) or raise `GuardrailViolation` to block the call; the exception reaches
    the caller and no request is sent. Return values are ignored.
    """


@hookspec
def gecko_model_response(request: ModelRequest, response: ModelResponse, source: str) -> Awaitable[None] | None:
    """Inspect a model response before the engine acts on it.

    Fires once per model call, after streaming completes. Raising `GuardrailViolation` rejects
    the response: the run fails with that error and no tool call in the response runs.
    Return values are ignored.
    """


@hookspec
def gecko_tool_call(call: ToolCall, source: str) -> Awaitable[None] | None:
    """Inspect a validated tool call just before the tool runs.

    Raising `GuardrailViolation` blocks the call; the model is told the call was blocked and
    the tool does not run. Return values are ignored.
    """


@hookspec
def gecko_tool_result(call: ToolCall, result: str, source: str) -> Awaitable[None] | None:
    """Inspect a tool's result (the text the model will see) after the tool ran.

    Raising `GuardrailViolation` replaces the result with a notice that it was withheld.
    Return values are ignored.
    """


@hookspec
def gecko_tool_admit(call: ToolCall, messages: list[Message], source: str) -> Awaitable[None] | None:
    """Decide whether a validated tool call may run, before the run's approval step.

    `messages` is the conversation so far (without the system prompt), ending with the reply
    that asks for `call`; read it, do not edit it. Raise `ApprovalRequired` to hold the call for
    the user's approval (the run pauses with a `PausedOutput`; its message is the pending call's
    `reason`), or `GuardrailViolation` to refuse it: the tool does not run and the model is told
    why. Fires again for the same call when a paused run resumes. Return values are ignored.
    """
