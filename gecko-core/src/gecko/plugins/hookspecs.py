"""The hooks a `gecko.plugins` entry point may implement.

Every hook may be a plain function or a coroutine function: the host awaits whatever an
implementation returns. Implementations run in pluggy's order (last registered first).
Async-capable hooks never use `firstresult`: every implementation runs. Return values are ignored,
except `gecko_stream_filter`'s.

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
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pluggy

if TYPE_CHECKING:
    from gecko.plugins.models import ModelRequest, ModelResponse
    from gecko.types import Event, Message, ToolCall

__all__ = ("hookspec", "hookimpl", "Operation", "OperationKind", "OperationStatus", "StreamFilter")

OperationKind = Literal[
    "agent.run", "model.call", "tool.call", "workflow.run", "workflow.node", "team.run", "team.member"
]
"""The kinds of the engines' operations; other layers announce kinds of their own (any other string)."""
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
            `team.run` or `team.member`; a kind of another layer's (`guardrails.judge`).
        name: The agent, model, tool, workflow, node or team name; a member's is `<team>[<index>]`.
        parent: The enclosing operation, or None.
        input: What the operation works on: the `ModelRequest` of a model call (hooks may edit
            its `settings`, e.g. add `extra_headers`), the `ToolCall` of a tool call, the input of
            a run, node or member.
        attributes: Details by kind: `session_id` (workflow.run), `strategy` (team.run),
            `member_index` (team.member), `run_id` (agent.run), `resumed` (workflow.run),
            `provider` and `sends_extra_headers` (model.call: whether the model sends
            `input.settings["extra_headers"]` as HTTP headers).
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
        bound: Whether the operation's body runs with it as the current operation: then both
            hooks run in the task and context of that body, so an implementation may set context
            variables in `gecko_operation_started` (the body sees them) and reset them in
            `gecko_operation_ended`. False for operations announced inside async generators
            (agent runs, model calls), whose consumer would see such variables between items.
    """

    kind: OperationKind | str
    name: str
    parent: Operation | None = None
    input: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)
    carrier: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=lambda: format(next(_operation_ids), "x"))
    status: OperationStatus = "running"
    output: Any = None
    error: BaseException | None = None
    bound: bool = False


class StreamFilter(Protocol):
    """Rewrites the text of a run's streamed replies before the caller sees it (`gecko_stream_filter`).

    It may hold text back (a secret cut across two deltas is seen whole once its end arrives);
    what it holds it returns, rewritten, from a later `feed` or from `flush`.
    """

    def feed(self, text: str) -> str:
        """The text to pass on now, given the next delta of a reply (may be empty: held back)."""
        ...

    def flush(self) -> str:
        """The rest of what was held back, rewritten: the reply's text has ended."""
        ...


@hookspec
def gecko_event(event: Event) -> Awaitable[None] | None:
    """Observe one event published by an agent, workflow or team.

    Sync or async. Observers only: an exception is logged on the `gecko.plugins` logger, and the
    other observers and the run continue. Return values are ignored. The events:

    - agent (its `EventBus`): `agent.started`, `agent.finished`, `agent.failed`, `agent.paused`,
      `model.finished`, `tool.started`, `tool.finished`, `tool.failed`;
    - workflow: `workflow.started`, `workflow.finished`, `workflow.failed`, `workflow.paused`,
      `workflow.cancelled`, `workflow.node.started`, `workflow.node.finished`,
      `workflow.node.failed`, `workflow.node.cancelled`, `workflow.node.skipped`,
      `workflow.state.diff`;
    - team: `team.started`, `team.finished`, `team.failed`, `team.cancelled`,
      `team.member.started`, `team.member.finished`, `team.member.failed`,
      `team.member.cancelled` (a RACE loser, a member stopped by the team timeout).

    A workflow's node events reach the hook in order, at the latest before the next node starts;
    `Workflow.stream()` yields its own events as before (no `failed`/`cancelled` node events there).
    """


@hookspec
def gecko_model_request(request: ModelRequest, source: str) -> Awaitable[None] | None:
    """Inspect or edit a model request just before it is sent.

    `source` names the calling agent. Sync or async. Edit `request.messages` in place (e.g.
    redaction) or raise `GuardrailViolation` to block the call: the exception reaches the caller
    and nothing is sent. Return values are ignored.
    """


@hookspec
def gecko_model_response(request: ModelRequest, response: ModelResponse, source: str) -> Awaitable[None] | None:
    """Inspect a model response before the engine acts on it.

    Fires once per model call, after streaming completes. Sync or async. Raising
    `GuardrailViolation` fails the run with that error; no tool call in the response runs.
    Return values are ignored.
    """


@hookspec
def gecko_tool_call(call: ToolCall, source: str) -> Awaitable[None] | None:
    """Inspect a validated tool call just before the tool runs.

    Sync or async. Raising `GuardrailViolation` blocks the call: the tool does not run and the
    model is told the call was blocked. Return values are ignored.
    """


@hookspec
def gecko_tool_result(call: ToolCall, result: str, source: str) -> Awaitable[None] | None:
    """Inspect a tool's result (the text the model will see) after the tool ran.

    Sync or async. Raising `GuardrailViolation` replaces the result with a notice that it was
    withheld. Return values are ignored.

    Retrieved content: results of `gecko.plugins.knowledge.RetrievalTool` are JSON objects that
    start with `{"content_origin": "retrieved", "trust": "untrusted", ...}` and list `chunks` with
    `id`, `source` and `text`, so an implementation can treat them as untrusted data (spotlight,
    scan, taint the run); the tool class carries `content_origin = "retrieved"`. Recalls of
    `LongTermMemory` reach the model as a system message starting with
    `gecko.core.long_term_memory.RECALL_HEADER`.
    """


@hookspec
def gecko_operation_started(operation: Operation) -> Awaitable[None] | None:
    """An agent run, model call, tool call, workflow run or node, team run or member starts.

    Sync or async. Observers only: an exception is logged and the run continues. Return values
    are ignored. This hook and `gecko_operation_ended` are what a tracing plugin needs to open a
    span at the start of an operation and close it at its end, under the right parent:

    - `operation.kind` is `agent.run`, `model.call`, `tool.call`, `workflow.run`,
      `workflow.node`, `team.run` or `team.member`; `operation.name` the agent, model, tool,
      workflow, node or team (`<team>[<index>]` for a member); `operation.id` is unique in the
      process.
    - `operation.parent` is the operation it runs inside, found through a context variable that
      every task copies from the task that spawned it, so parallel tool calls, workflow branches
      and RACE/ALL members each get their own parent on asyncio and trio alike: a model or tool
      call sits under its agent run, an agent run under the workflow node, team member or tool
      call that runs it, a node under its workflow run, a member under its team run.
    - The hook fires in the task that runs the operation, after its parent started and before
      anything inside it starts. Both hooks get the same object: keep per-operation state keyed
      by `operation.id` (or by the object). For a `bound` operation (tool calls, workflow runs
      and nodes, team runs and members) both hooks run in the context of its body, so a context
      variable set here (the telemetry plugin's current span) is seen by the body and by the
      tasks it starts, and is reset in `gecko_operation_ended`.
    - `operation.input` is the `ModelRequest` of a model call (an implementation may add to
      `request.settings`, e.g. `extra_headers` for W3C `traceparent`, but only when
      `operation.attributes["sends_extra_headers"]` is true: the model's
      `ChatModel.sends_extra_headers`, set by the litellm-based models; other models may reject
      unknown settings), the `ToolCall` of a tool call, the input of a run, node or member. A
      model call's `attributes` also hold its `provider`.
    - Other layers may announce operations of their own kinds the same way
      (`async with plugin_manager().operation(kind, name, attributes=...)`): an observer should
      handle a kind it does not know generically (the telemetry plugin makes it a span with its
      scalar attributes).
    - `operation.carrier` (workflow runs only) holds string trace-propagation fields: filled from
      the checkpoint when a session resumes (empty for a new run); an implementation may replace
      its content with the context of this operation; the engine stores what it then holds with
      every snapshot of the run, so a run resumed in another process can continue the same trace.
    - No operation is built when no plugin implements either hook.
    """


@hookspec
def gecko_operation_ended(operation: Operation) -> Awaitable[None] | None:
    """The operation that `gecko_operation_started` announced has ended (once, on every path).

    Fires after every operation inside it has ended, shielded from cancellation, so a cancelled
    RACE loser or a stopped stream is still reported. Sync or async. Observers only: an exception
    is logged and never stops the run. Return values are ignored.

    `operation.status` is `ok` (with `operation.output`: the `ModelResponse`, the tool's result
    text, the `AgentOutput`, the node's output, the workflow's last output, the member's result,
    the team's `MemberResult` list), `error` (with `operation.error`: the exception, a failing
    tool's `ToolError`, the failed node's error) or `cancelled` (a RACE loser, a timeout, a
    generator closed early). A paused workflow run ends `ok` with
    `attributes["interrupted_node"]`.
    """


@hookspec
def gecko_tool_admit(call: ToolCall, messages: list[Message], source: str) -> Awaitable[None] | None:
    """Decide whether a validated tool call may run, before the run's approval step.

    Fires for each validated tool call of a reply while the engine plans the turn, before any tool
    of that turn runs. `messages` is the conversation so far (without the system prompt), ending
    with the reply that asks for `call`; read it, do not edit it. Sync or async. Raise
    `ApprovalRequired` (a `GuardrailViolation`) to hold the call for the user's approval: the run
    ends with a `PausedOutput` whose pending call carries the message as `reason`, exactly as for a
    tool declared `requires_approval=True`, and `agent.resume(approvals, session_id=...)` decides
    it (the hook fires again on resume; a call it held takes the approvals' decision even when the
    hook would not hold it then). Raise `GuardrailViolation` to refuse the call: the tool
    does not run and the model is told why. The guardrails plugin uses it to hold sensitive tools
    once a run has read untrusted content. Return values are ignored.
    """


@hookspec
def gecko_stream_filter(source: str) -> Awaitable[StreamFilter | None] | StreamFilter | None:
    """A filter for the text of one reply an agent run streams to its caller, or None to leave it as it is.

    Called by `agent.stream(...)` once per model reply, before its first text delta (`source` names
    the agent); sync or async. Every `TextDelta` of the reply passes through the filters of all
    implementations in hook order, each feeding the next: the engine passes each delta to
    `StreamFilter.feed` and yields what comes out (nothing when it is empty); when the reply's text
    has ended and `gecko_model_response` has accepted it, it yields what `StreamFilter.flush`
    returns. So a reply's deltas concatenate to its filtered text. When the model call fails or the
    run is cancelled or closed early, what a filter holds is dropped with it, never yielded. Runs
    that do not stream never call it, and a run checks nothing per delta when no plugin implements
    it. The final reply (`FinalOutput`, the conversation) is what `gecko_model_response` leaves: a
    plugin that rewrites the stream rewrites the response there the same way. The guardrails
    plugin redacts secrets with it, also one cut across deltas.
    """
