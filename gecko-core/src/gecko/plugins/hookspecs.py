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

import itertools
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pluggy

if TYPE_CHECKING:
    from gecko.plugins.models import ModelRequest, ModelResponse
    from gecko.types import Event, Message, ToolCall

__all__ = ("hookspec", "hookimpl", "Operation", "OperationKind", "OperationStatus")

OperationKind = Literal[
    "agent.run", "model.call", "tool.call", "workflow.run", "workflow.node", "team.run", "team.member"
]
OperationStatus = Literal["running", "ok", "error", "cancelled"]

_operation_ids = itertools.count(1)

hookspec = pluggy.HookspecMarker("gecko")
hookimpl = pluggy.HookimplMarker("gecko")


@dataclass(eq=False, slots=True)
class Operation:
    """One unit of work an engine runs, seen by `gecko_operation_started` and `gecko_operation_ended`.

    Both hooks receive the same object, so a plugin may keep per-operation data keyed by `id`.
    `parent` is the operation this one runs inside (a tool call's agent run, a member's team
    run, an agent run's workflow node), also across concurrent tasks; None for a root.

    Attributes:
        kind: What runs: `agent.run`, `model.call`, `tool.call`, `workflow.run`, `workflow.node`,
            `team.run` or `team.member`.
        name: The agent, model, tool, workflow, node or team name; a member's is `<team>[<index>]`.
        parent: The enclosing operation, or None.
        input: What the operation works on: the `ModelRequest` of a model call (hooks may edit
            its `settings`, e.g. add `extra_headers`), the `ToolCall` of a tool call, the input of
            a run, node or member.
        attributes: Details by kind: `session_id` (workflow.run), `strategy` (team.run),
            `member_index` (team.member), `run_id` (agent.run), `resumed` (workflow.run).
        carrier: Trace propagation fields (strings) of a `workflow.run`: the engine fills it from
            the checkpoint when a session is resumed, a plugin may replace it at start with the
            context of this operation, and the engine stores what it then holds with every
            checkpoint of the run. Empty and unused for other kinds.
        id: Unique in the process.
        status: `running` until the end; then `ok`, `error` or `cancelled` (a RACE loser, a
            stopped stream, a timeout).
        output: The result once ended `ok`: the `ModelResponse`, the tool's result text, the
            `AgentOutput`, the node's output, the workflow's last output, the
            member's result, or the team's list of `MemberResult`.
        error: The exception of an `error` end (a failing tool's `ToolError` included).
    """

    kind: OperationKind
    name: str
    parent: Operation | None = None
    input: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)
    carrier: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=lambda: format(next(_operation_ids), "x"))
    status: OperationStatus = "running"
    output: Any = None
    error: BaseException | None = None


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
def gecko_operation_started(operation: Operation) -> Awaitable[None] | None:
    """An agent run, model call, tool call, workflow run or node, team run or member starts.

    Fires before the work begins, in the task that runs it, after the start of its `parent`
    and before the start of any operation inside it; concurrent operations (parallel tool
    calls, workflow branches, team members) each fire in their own task. Sync or async.
    Observers only: an exception is logged and never stops the run. Return values are ignored.
    """


@hookspec
def gecko_operation_ended(operation: Operation) -> Awaitable[None] | None:
    """The operation that `gecko_operation_started` announced has ended (once, on every path).

    `operation.status` says how: `ok` (with `output`), `error` (with `error`) or `cancelled`.
    Fires after every operation inside it has ended, shielded from cancellation so a cancelled
    RACE loser is still reported. Sync or async. Observers only: an exception is logged and
    never stops the run. Return values are ignored.
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
