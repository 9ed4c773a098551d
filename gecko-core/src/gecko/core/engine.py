"""The ReAct engine: model call, validated tool calls, observations, repeat, until a final answer.

One run, step by step:

1. Before every model request the budget is checked (`max_turns`, then, after the memory chose
   the window, `UsageLimits`), so a run never spends past its limits. Code working for the run
   (hooks, middleware, tools, the memory) sees it as `current_run_usage()`: what it spends there
   on its own model calls (a judge's, a summary's) is charged to the run, counted in its usage
   and held to its limits; the budget is checked again after the `gecko_model_request` hooks,
   which may have spent. The hooks of the run's end (`agent.finished`, `agent.paused`, the end
   of its `agent.run` operation) run as the run too, and what they spend is in its output.
2. The request (system prompt + the memory's window of the conversation + tool definitions,
   set up by the `StructuredRun` when an output type is asked for) goes through the model
   middleware and the `gecko_model_request` / `gecko_model_response` hooks.
   Usage is summed from the provider-reported numbers of every request, streamed or not.
   Streamed text passes through the `gecko_stream_filter` filters of each reply, when a plugin gives any.
3. A reply's tool calls are checked as a batch first: more than `max_tool_calls_per_turn`
   calls, a call without an id, or two calls sharing an id make the batch ambiguous, so no
   call of it runs; the model is told why. Then each call is validated by the `ToolBox`
   before anything runs. Unknown names, bad arguments and calls cut off by
   `finish_reason="length"` are answered with error observations, so the model can correct
   itself; after `max_tool_retries` consecutive turns with refused or invalid calls the run
   fails with the last error (`UnknownToolError`, `ToolArgumentsError` or `ModelOutputError`).
   No tool runs in a turn that ends the run.
4. Loop breaker: the `max_repeated_tool_calls`-th call with the same name and the same
   (canonical) arguments is not run; the model is told that repeating it ends the run. One
   more identical call raises `ToolLoopDetected`.
5. Tools that require approval pause the run before any tool of that turn runs: the engine
   yields a `PausedOutput` listing the pending calls; resuming with approvals runs the
   approved calls and reports the rejected ones to the model as rejected. A `gecko_tool_admit`
   hook may hold any call for approval the same way (`ApprovalRequired`, with a reason) or
   refuse it (`GuardrailViolation`: the model is told why and the tool does not run). On resume a
   call named in the approvals takes its decision even when the hook no longer holds it.
6. Every admitted call, observed or not, runs through `ToolBox.execute_many_validated`, so
   `max_parallel` and the single validation hold on every path.
7. A reply without tool calls is the final answer; with an output type the `StructuredRun`
   parses it, re-asks or falls back to the next strategy; `StructuredOutputError` when all
   are spent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import anyio
from pydantic import BaseModel

from gecko._checks import at_least
from gecko.core._sanitize import redact, text_of, valid_text
from gecko.core.events import (
    EventBus,
    FinalOutput,
    ModelCallContext,
    StreamEvent,
    TextDelta,
    ToolCallContext,
    ToolFinished,
    ToolHandler,
    ToolStarted,
)
from gecko.core.state import (
    _STORED_LEVELS,
    PausedOutput,
    PendingApproval,
    RunState,
    RunUsage,
    UsageLimits,
    _current_run,
    _levels,
)
from gecko.core.toolbox import DEFAULT_MAX_TOOL_CALLS_PER_TURN
from gecko.errors import (
    ApprovalError,
    ApprovalRequired,
    ConfigurationError,
    GeckoError,
    GuardrailViolation,
    MaxTurnsExceeded,
    ModelBadRequestError,
    ModelOutputError,
    ToolArgumentsError,
    ToolError,
    ToolLoopDetected,
)
from gecko.plugins import plugin_manager
from gecko.plugins.models import ChatModel, ModelRequest, ModelResponse, StreamAccumulator, ToolDefinition
from gecko.types import AgentOutput, Event, Message, TokenUsage, ToolCall

if TYPE_CHECKING:
    from types import TracebackType

    from gecko.core.structure import StructuredRun, StructureEngine
    from gecko.core.toolbox import ToolBox, ToolResult
    from gecko.plugins.hookspecs import Operation, StreamFilter
    from gecko.plugins.manager import OperationScope, PluginManager

__all__ = ("DEFAULT_MAX_TOOL_CALLS_PER_TURN", "Memory", "ReActEngine")


class Memory(Protocol):
    """What the engine needs from a memory: the window of the conversation sent to the model."""

    async def prepare(self, messages: Sequence[Message]) -> list[Message]:
        """The messages to send, e.g. the newest ones that fit a token budget."""
        ...


@dataclass(slots=True)
class _Plan:
    """One assistant turn's tool calls, sorted after validation."""

    observations: dict[str, Message] = field(default_factory=dict)
    runnable: list[tuple[ToolCall, dict[str, Any]]] = field(default_factory=list)
    pending: list[PendingApproval] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    error: GeckoError | None = None


@dataclass(frozen=True, slots=True)
class _Flags:
    """What runs read from the plugins, the bus and the toolbox: computed once per change of them.

    `key` holds the plugin manager, the bus and the toolbox, each with its generation; a run
    whose key differs computes new flags (`ReActEngine.run_flags`).
    """

    key: tuple[PluginManager, int, EventBus, int, ToolBox, int]
    observe: bool
    hook_model_request: bool
    hook_model_response: bool
    hook_tool_admit: bool
    hook_tool_call: bool
    hook_tool_result: bool
    hook_stream_filter: bool
    """Streamed text passes through the filters of `gecko_stream_filter`."""
    trace: bool
    """Telemetry: operations are announced only when a plugin observes them."""
    traced_tools: bool
    """Tool calls skip the middleware path: nothing observes or wraps them (a plugin may trace them)."""
    plain_tools: bool
    """Tool calls run plain: nothing observes, wraps or traces them."""
    plain_model: bool
    """Model calls run plain: no middleware wraps them, no hook or trace observes them."""
    definitions: list[ToolDefinition]
    """The toolbox's definitions; requests copy them, nothing changes this list."""

    @classmethod
    def compute(cls, key: tuple[PluginManager, int, EventBus, int, ToolBox, int]) -> _Flags:
        manager, _, bus, _, toolbox, _ = key
        implemented = manager.implemented
        observe = bus.listening
        hook_tool_call = "gecko_tool_call" in implemented
        hook_tool_result = "gecko_tool_result" in implemented
        trace = manager.traces
        traced_tools = not (observe or hook_tool_call or hook_tool_result or bus.has_tool_middleware)
        hook_model_request = "gecko_model_request" in implemented
        hook_model_response = "gecko_model_response" in implemented
        return cls(
            key,
            observe,
            hook_model_request,
            hook_model_response,
            "gecko_tool_admit" in implemented,
            hook_tool_call,
            hook_tool_result,
            "gecko_stream_filter" in implemented,
            trace,
            traced_tools,
            traced_tools and not trace,
            not (bus.has_model_middleware or hook_model_request or hook_model_response or trace),
            toolbox.definitions(),
        )


_Step: TypeAlias = tuple[Message, _Plan] | AgentOutput | None
"""What a step of the loop leaves: a tool turn to run, the run's output (its end), or nothing (ask the model)."""


class ReActEngine:
    """Runs the ReAct loop of one agent configuration; one engine serves many concurrent runs.

    Args:
        model: the chat model.
        toolbox: the tools the model may call.
        name: the agent's name, used as `source` in events and hooks.
        system_prompt: sent first in every request (not stored in the conversation).
        memory: chooses the window of the conversation sent to the model; all of it when None.
        max_turns: the most model requests in one run (tool turns and re-asks alike).
        max_repeated_tool_calls: identical calls (same name and arguments) allowed before the
            loop breaker refuses one; a further identical call raises `ToolLoopDetected`.
        max_tool_retries: consecutive turns with refused or invalid tool calls answered with
            error observations before the run fails with the last error.
        max_tool_calls_per_turn: tool calls one reply may ask for; a reply asking for more is
            refused whole (default `DEFAULT_MAX_TOOL_CALLS_PER_TURN`, 16).
        usage_limits: request and token budget of one run.
        bus: where events are published and middleware is found.
    """

    def __init__(
        self,
        model: ChatModel,
        toolbox: ToolBox,
        *,
        name: str = "agent",
        system_prompt: str | None = None,
        memory: Memory | None = None,
        max_turns: int = 10,
        max_repeated_tool_calls: int = 3,
        max_tool_retries: int = 2,
        max_tool_calls_per_turn: int = DEFAULT_MAX_TOOL_CALLS_PER_TURN,
        usage_limits: UsageLimits | None = None,
        bus: EventBus | None = None,
    ) -> None:
        at_least(max_turns, 1, "max_turns")
        at_least(max_repeated_tool_calls, 1, "max_repeated_tool_calls")
        at_least(max_tool_retries, 0, "max_tool_retries")
        at_least(max_tool_calls_per_turn, 1, "max_tool_calls_per_turn")
        self.model = model
        self.toolbox = toolbox
        self.name = name
        self.system_message = Message.system(system_prompt) if system_prompt else None
        self.memory = memory
        self.max_turns = max_turns
        self.max_repeated_tool_calls = max_repeated_tool_calls
        self.max_tool_retries = max_tool_retries
        self.max_tool_calls_per_turn = max_tool_calls_per_turn
        self.usage_limits = usage_limits
        self.bus = bus if bus is not None else EventBus()
        self._flags: _Flags | None = None
        # Held here: each read of a model class's validator passes through its metaclass's `__getattr__`.
        self._new_output = _validate_python(AgentOutput)
        self._new_request = _validate_python(ModelRequest)

    def run_flags(self, manager: PluginManager) -> _Flags:
        """The flags of a run under `manager`: cached until a plugin, a subscriber, a middleware or a tool changes."""
        bus, toolbox = self.bus, self.toolbox
        key = (manager, manager.generation, bus, bus.generation, toolbox, toolbox.generation)
        flags = self._flags
        if flags is None or flags.key != key:
            flags = self._flags = _Flags.compute(key)
        return flags

    def iterate(
        self,
        state: RunState,
        *,
        structure: StructureEngine[Any] | None = None,
        stream: bool = False,
        session_id: str | None = None,
        approvals: Mapping[str, bool] | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Run the loop on `state`, yielding stream events; the last one is always a `FinalOutput`.

        Without `stream`, only the `FinalOutput` is yielded. With `approvals`, the last
        message of `state` must be the assistant turn the run paused on.
        """
        run = _Run(self, state, structure, stream, session_id, usage_limits or self.usage_limits)
        return run.traced(approvals) if run.flags.trace else run.iterate(approvals)

    def run(
        self,
        state: RunState,
        *,
        structure: StructureEngine[Any] | None = None,
        session_id: str | None = None,
        approvals: Mapping[str, bool] | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> Awaitable[AgentOutput]:
        """`iterate` without streaming, to its end: the run's output (a `PausedOutput` when it paused)."""
        # Not a coroutine itself: an untraced run awaits the loop's own coroutine, with no frame of ours around it.
        run = _Run(self, state, structure, False, session_id, usage_limits or self.usage_limits)
        return run.traced_complete(approvals) if run.flags.trace else run.complete(approvals)

    def new_state(self, input: Any, history: Sequence[Message] = ()) -> RunState:
        """The state a run starts from: `history`, then `input` (text, a `Message`, a list of messages, or data).

        Data other than messages becomes a user message holding its JSON (or its `str` when it has none).

        Raises:
            ConfigurationError: `input` is None.
        """
        if isinstance(input, str) and not history:
            return RunState([Message.user(valid_text(input))])
        return RunState(messages=[*history, *_as_messages(input)])


class _Run(RunUsage):
    """One run of an engine: per-run flags computed once, then the loop; its own `RunUsage` (no object more)."""

    __slots__ = (
        "engine",
        "flags",
        "manager",
        "operation",
        "session_id",
        "stream",
        "structure",
        "tool_handler",
        "validated",
    )

    def __init__(
        self,
        engine: ReActEngine,
        state: RunState,
        structure: StructureEngine[Any] | None,
        stream: bool,
        session_id: str | None,
        limits: UsageLimits | None,
    ) -> None:
        self.engine = engine
        self.state = state
        self.structure = structure
        self.stream = stream
        self.session_id = session_id
        self.limits = limits
        manager = plugin_manager()
        self.manager: PluginManager = manager
        self.flags = engine.run_flags(manager)
        self.operation: Operation | None = None
        self.tool_handler: ToolHandler | None = None
        # Arguments validated by the plan, by call id (unique within a batch), for the observed path.
        self.validated: dict[str, tuple[ToolCall, dict[str, Any]]] | None = None

    # --- the loop ------------------------------------------------------------------------

    async def traced(self, approvals: Mapping[str, bool] | None) -> AsyncGenerator[StreamEvent, None]:
        """`iterate` announced as an `agent.run` operation (only when a plugin traces).

        The `FinalOutput` (always the last event) is yielded once the operation has ended, so its usage counts
        what the operation's hooks spent for the run.
        """
        final: FinalOutput | None = None
        async with _AsRun(self, self.agent_operation()) as operation:
            self.operation = operation
            async with aclosing(self.iterate(approvals)) as events:
                async for event in events:
                    if isinstance(event, FinalOutput):
                        operation.output = event.output
                        final = event
                    else:
                        yield event
        if final is not None:
            self._respent(final.output)
            yield final

    async def traced_complete(self, approvals: Mapping[str, bool] | None) -> AgentOutput:
        """`complete` announced as an `agent.run` operation (only when a plugin traces)."""
        # Announced around the loop here rather than through `traced`: no async generator in the run. Its start and
        # end hooks run as the run (no consumer runs in this block, unlike `traced`'s).
        token = _current_run.set(self)
        try:
            async with self.agent_operation() as operation:
                self.operation = operation
                output = await self.complete(approvals)
                operation.output = output
        finally:
            _current_run.reset(token)
        self._respent(output)
        return output

    def _respent(self, output: AgentOutput) -> None:
        """Count in `output` what hooks spent for the run after it was built (every charge counts a request)."""
        state = self.state
        if output.usage.requests != state.requests:
            output.usage = state.usage()

    def agent_operation(self) -> OperationScope:
        """The `agent.run` operation of this run."""
        # Not bound as the current operation: in `traced`, a generator, its consumer runs between items.
        state = self.state
        return self.manager.operation(
            "agent.run", self.engine.name, input=state.messages, attributes={"run_id": state.run_id}, bind=False
        )

    def _model_operation(self, request: ModelRequest) -> OperationScope | nullcontext[None]:
        if not self.flags.trace:
            return nullcontext()
        model = self.engine.model
        return self.manager.operation(
            "model.call", model.model, parent=self.operation, input=request,
            attributes={"provider": model.provider, "sends_extra_headers": model.sends_extra_headers}, bind=False,
        )  # fmt: skip

    async def iterate(self, approvals: Mapping[str, bool] | None) -> AsyncGenerator[StreamEvent, None]:
        """The loop as stream events (the driver of `ReActEngine.iterate`), each step taken as the current run.

        Bound for each step, never across a yield: the consumer runs between items in its own context.
        """
        async with aclosing(self._events(approvals)) as events:
            while True:
                token = _current_run.set(self)
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    return
                finally:
                    _current_run.reset(token)
                yield event

    async def _events(self, approvals: Mapping[str, bool] | None) -> AsyncGenerator[StreamEvent, None]:
        """The steps of `iterate`; `complete` takes the same steps."""
        engine = self.engine
        try:
            step = await self._begin(approvals)
            structured = self._structured()
            while True:
                if isinstance(step, AgentOutput):
                    yield FinalOutput(step)
                    return
                if step is not None:
                    message, plan = step
                    if self.stream:
                        for call, _ in plan.runnable:
                            yield ToolStarted(call)
                    for finished in await self._act(message, plan):
                        yield finished
                messages = self._window()
                if engine.memory is not None:
                    messages = await engine.memory.prepare(messages)
                self.check()
                request = self._request(structured, messages)
                try:
                    if self.stream and not engine.bus.has_model_middleware:
                        async with self._model_operation(request) as operation:
                            accumulator = StreamAccumulator(engine.model.model)
                            if self.flags.hook_model_request:
                                await self._request_hooks(request, engine.name)
                            # One set of filters per reply: what a failed reply's filters hold is dropped with them.
                            filters = (
                                await self.manager.stream_filters(engine.name)
                                if self.flags.hook_stream_filter
                                else None
                            )
                            chunks = engine.model.stream(request)
                            try:
                                async for chunk in chunks:
                                    accumulator.add(chunk)
                                    text = valid_text(chunk.text)
                                    if text and filters:
                                        text = _fed(filters, text)
                                    if text:
                                        yield TextDelta(text)
                            finally:
                                aclose = getattr(chunks, "aclose", None)
                                if aclose is not None:
                                    await aclose()
                            response = accumulator.response()
                            if self.flags.hook_model_response:
                                await self.manager.model_response(request, response, engine.name)
                            if operation is not None:
                                operation.output = response
                            if filters:
                                text = _flushed(filters)
                                if text:
                                    yield TextDelta(text)
                    else:
                        response = await self._call_model(request)
                        text = valid_text(response.message.text) if self.stream else ""
                        if text and self.flags.hook_stream_filter:
                            filters = await self.manager.stream_filters(engine.name)
                            text = _fed(filters, text) + _flushed(filters)
                        if text:
                            yield TextDelta(text)
                except ModelBadRequestError as exc:
                    step = _rejected(structured, exc)
                    continue
                step = await self._answered(response, structured)
        except anyio.get_cancelled_exc_class():
            raise
        except GeneratorExit:
            raise
        except Exception as exc:
            await self._failed(exc)
            raise

    async def complete(self, approvals: Mapping[str, bool] | None) -> AgentOutput:
        """The loop without streaming, as one coroutine (no event generator), taken as the current run: the
        steps of `iterate`."""
        state = self.state
        token = _current_run.set(self)
        try:
            step = await self._begin(approvals) if approvals is not None or self.flags.observe else None
            structured = self._structured()
            while True:
                if step is not None:
                    # A tuple is a tool turn to run; anything else is the output (no model-class check: cheaper).
                    if not isinstance(step, tuple):
                        return step
                    await self._act(*step)
                messages = self._window()
                memory = self.engine.memory
                if memory is not None:
                    messages = await memory.prepare(messages)
                # After the memory, which may have spent for the run (a summary), before the request.
                self.check()
                request = self._request(structured, messages)
                try:
                    # A plain model call is awaited with no frame of ours around it (`_call_model`'s first case).
                    response = await (
                        self.engine.model.complete(request) if self.flags.plain_model else self._call_model(request)
                    )
                except ModelBadRequestError as exc:
                    step = _rejected(structured, exc)
                    continue
                if self.flags.observe:
                    step = await self._answered(response, structured)
                else:
                    # `_answered` without publishing: a final reply is taken with no coroutine of its own.
                    state.add_usage(response.usage)
                    settled = self._settle(response, structured)
                    step = (
                        settled
                        if settled is None or isinstance(settled, AgentOutput)
                        else await self._tool_turn(settled, response.finish_reason)
                    )
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            await self._failed(exc)
            raise
        finally:
            _current_run.reset(token)

    # --- the steps of the loop -------------------------------------------------------------

    async def _begin(self, approvals: Mapping[str, bool] | None) -> _Step:
        """Start the run: announce it, or take the approvals of the paused turn (the tool turn to run)."""
        state = self.state
        if approvals is None:
            if self.flags.observe:
                await self._publish("agent.started", {"messages": len(state.messages)})
            return None
        message = state.messages[-1] if state.messages else None
        if message is None or not message.tool_calls:
            raise ApprovalError("the saved run is not paused on tool calls; start a new run instead")
        plan = await self._admit(message, "tool_calls", approvals)
        return plan if isinstance(plan, AgentOutput) else (message, plan)

    def _structured(self) -> StructuredRun[Any] | None:
        structure = self.structure
        return None if structure is None else structure.start(self.engine.model.capabilities, self.state.messages)

    async def _answered(self, response: ModelResponse, structured: StructuredRun[Any] | None) -> _Step:
        """Take a model reply: the tool turn to run, the run's end, or None for another request."""
        state = self.state
        state.add_usage(response.usage)
        if self.flags.observe:
            await self._publish(
                "model.finished",
                {"turn": state.turns, "finish_reason": response.finish_reason, **_usage_data(response.usage)},
            )
        step = self._settle(response, structured)
        if isinstance(step, Message):
            return await self._tool_turn(step, response.finish_reason)
        if step is not None and self.flags.observe:
            await self._publish("agent.finished", _usage_data(step.usage))
            self._respent(step)
        return step

    def _settle(self, response: ModelResponse, structured: StructuredRun[Any] | None) -> AgentOutput | Message | None:
        """The counted reply's outcome, decided without awaiting: the run's output, None for another
        request, or the reply itself when its tool calls are to be admitted (`_tool_turn`)."""
        response = _valid_reply(response)
        message = response.message
        if message.tool_calls and (
            structured is None or not structured.engine.is_output_call(message, structured.strategy)
        ):
            return message
        state = self.state
        data: Any = None
        content = message.text
        if structured is None:
            state.messages.append(message)
        else:
            data = structured.answer(response)
            if data is None:
                return None
            if not content:
                # `model_dump_json()` without its Python-level keyword handling: the same serializer call.
                content = (
                    data.__pydantic_serializer__.to_json(data).decode()
                    if isinstance(data, BaseModel)
                    else json.dumps(data)
                )
        # `AgentOutput(...)` without `__init__`'s overhead: the same validator call.
        finish_reason = response.finish_reason
        output: AgentOutput = self.engine._new_output(
            {
                "content": content,
                "data": data,
                "messages": state.messages,
                "usage": state.usage(),
                # An answer given through the output tool ended as the model meant it to.
                "finish_reason": "stop" if finish_reason == "tool_calls" else finish_reason,
            }
        )
        return output

    async def _tool_turn(self, message: Message, finish_reason: str) -> _Step:
        """A reply asking for tools: refused whole (None), paused (its output), or the turn to run."""
        if not self._batch_admissible(message):
            return None
        self.state.messages.append(message)
        plan = await self._admit(message, finish_reason, None)
        return plan if isinstance(plan, AgentOutput) else (message, plan)

    async def _failed(self, error: Exception) -> None:
        if self.flags.observe:
            with anyio.CancelScope(shield=True):
                await self._publish("agent.failed", {"error": type(error).__name__, "message": redact(text_of(error))})

    def _window(self) -> list[Message]:
        """The messages of the next request before the memory chooses among them, within `max_turns`."""
        engine, state = self.engine, self.state
        if state.turns >= engine.max_turns:
            raise MaxTurnsExceeded(
                f"no final answer after {engine.max_turns} model requests; raise max_turns "
                "(AgentBuilder.with_max_turns) or give the agent a simpler task"
            )
        messages = state.messages
        if engine.system_message is not None:
            messages = [engine.system_message, *messages]
        return messages

    def _request(self, structured: StructuredRun[Any] | None, messages: list[Message]) -> ModelRequest:
        """The model request over `messages` (counted as a turn)."""
        # The request validates into lists of its own: the run's conversation is not shared with it.
        if structured is not None:
            request = structured.engine.request(messages, self.flags.definitions, structured.strategy)
        else:
            request = self.engine._new_request({"messages": messages, "tools": self.flags.definitions})
        self.state.turns += 1
        return request

    def _call_model(self, request: ModelRequest) -> Awaitable[ModelResponse]:
        """The model call of `request`, to await at once: through the middleware and hooks, or plain."""
        # Not a coroutine itself: the plain path awaits the model's own call, with no frame of ours around it.
        if self.flags.plain_model:
            return self.engine.model.complete(request)
        bus = self.engine.bus
        if bus.has_model_middleware:
            handler = bus.wrap_model(self._model_base)
            return handler(ModelCallContext(request, self.engine.name, self.state.run_id, self.state.turns))
        return self._model_base(ModelCallContext(request, self.engine.name, self.state.run_id, 0))

    async def _model_base(self, context: ModelCallContext) -> ModelResponse:
        async with self._model_operation(context.request) as operation:
            if self.flags.hook_model_request:
                await self._request_hooks(context.request, context.source)
            response = await self.engine.model.complete(context.request)
            if self.flags.hook_model_response:
                await self.manager.model_response(context.request, response, context.source)
            if operation is not None:
                operation.output = response
            return response

    async def _request_hooks(self, request: ModelRequest, source: str) -> None:
        """`gecko_model_request`, then the budget again: a hook may have spent for the run (`RunUsage.add`)."""
        await self.manager.model_request(request, source)
        self.check()

    # --- tools ---------------------------------------------------------------------------

    def _batch_admissible(self, message: Message) -> bool:
        """Whether the reply's calls can be run and answered one by one; if not, refuse them all.

        A refused reply enters the conversation as its text only (its calls cannot be answered
        call by call), followed by the reason, so the conversation stays valid for any provider.
        """
        calls = message.tool_calls
        cap = self.engine.max_tool_calls_per_turn
        reason: str | None = None
        if len(calls) > cap:
            reason = f"the reply asks for {len(calls)} tool calls; at most {cap} are allowed in one reply"
        elif any(not call.id.strip() for call in calls):
            reason = "a tool call has no id, so its result could not be matched to it"
        else:
            seen: set[str] = set()
            for call in calls:
                if call.id in seen:
                    reason = f"the call id {call.id!r} is used by more than one call, so results could not be matched"
                    break
                seen.add(call.id)
        if reason is None:
            return True
        error = ModelOutputError(f"tool calls refused: {reason}; no tool ran")
        text = message.text or f"(asked for {len(calls)} tool calls)"
        self.state.messages.append(Message.assistant(text))
        self.state.messages.append(
            Message.user(
                f"Error: your tool calls were refused and none ran: {reason}. "
                f"Ask again with at most {cap} calls, each with its own id."
            )
        )
        self._count_invalid(error)
        return False

    def _count_invalid(self, error: GeckoError | None) -> None:
        """Count a turn with refused or invalid calls; fail the run when there were too many in a row."""
        state = self.state
        if error is None:
            state.invalid_turns = 0
            return
        state.invalid_turns += 1
        if state.invalid_turns > self.engine.max_tool_retries:
            raise type(error)(
                f"the model sent invalid tool calls {state.invalid_turns} turns in a row: {error}; "
                "no tool ran. Check the tool names and descriptions, or use a stronger model"
            ) from error

    async def _admit(
        self, message: Message, finish_reason: str, approvals: Mapping[str, bool] | None
    ) -> _Plan | AgentOutput:
        """Validate the tool calls of `message`: the plan to run, or the paused output."""
        state = self.state
        plan = await self._plan(message, finish_reason, approvals)
        if plan.pending:
            output = PausedOutput(
                session_id=self.session_id or f"run-{state.run_id}",
                pending_approvals=plan.pending,
                messages=state.messages,
                usage=state.usage(),
            )
            if self.flags.observe:
                await self._publish("agent.paused", {"pending": [p.call_id for p in plan.pending]})
                self._respent(output)
            return output
        state.call_counts.update(plan.counts)
        self._count_invalid(plan.error)
        return plan

    async def _act(self, message: Message, plan: _Plan) -> list[ToolFinished]:
        """Run the admitted calls and add every observation; the `ToolFinished` events when streaming."""
        runnable = plan.runnable
        results = await self._execute(runnable) if runnable else []
        finished = {call_id: (observation, True) for call_id, observation in plan.observations.items()}
        for result in results:
            finished[result.call.id] = (result.to_message(), result.is_error)
        messages = self.state.messages
        events: list[ToolFinished] = []
        for call in message.tool_calls:
            observation, is_error = finished[call.id]
            messages.append(observation)
            if self.stream:
                events.append(ToolFinished(call, observation.text, is_error))
        return events

    async def _plan(self, message: Message, finish_reason: str, approvals: Mapping[str, bool] | None) -> _Plan:
        engine, toolbox = self.engine, self.engine.toolbox
        plan = _Plan()
        counts = self.state.call_counts
        needs_approval: set[str] = set()
        for call in message.tool_calls:
            if finish_reason == "length":
                error: GeckoError = ModelOutputError(
                    "your reply was cut off (finish_reason=length) so its tool calls may be incomplete; "
                    "no tool ran. Send shorter arguments"
                )
                plan.observations[call.id] = _error_message(call, str(error))
                plan.error = error
                continue
            try:
                arguments = toolbox.validate(call)
            except ToolError as exc:
                plan.observations[call.id] = _error_message(call, str(exc))
                plan.error = exc
                continue
            signature = _signature(call.name, arguments)
            seen = plan.counts.get(signature, counts.get(signature, 0)) + 1
            plan.counts[signature] = seen
            if seen > engine.max_repeated_tool_calls:
                raise ToolLoopDetected(
                    f"the model called {call.name} with the same arguments {seen} times; the run was stopped. "
                    "Give the tool a clearer description or raise max_repeated_tool_calls"
                )
            if seen == engine.max_repeated_tool_calls:
                plan.observations[call.id] = _error_message(
                    call,
                    f"{call.name} was already called {seen - 1} times with these arguments and was not run again; "
                    "its result will not change. Use the earlier result or answer; repeating the call ends the run.",
                )
                continue
            held: str | None = None
            if self.flags.hook_tool_admit:
                try:
                    await self.manager.tool_admit(call, self.state.messages, engine.name)
                except ApprovalRequired as exc:
                    held = redact(str(exc))
                except GuardrailViolation as exc:
                    plan.observations[call.id] = _error_message(call, f"the call was refused by a guardrail: {exc}")
                    continue
            # A call named in `approvals` was pending when the run paused: the user's decision stands even
            # when a hook would not hold it now (its state was lost with the process that paused).
            if (
                held is not None
                or toolbox.get(call.name).requires_approval
                or (approvals is not None and call.id in approvals)
            ):
                needs_approval.add(call.id)
                if approvals is None:
                    stored = _json_arguments(call)
                    if _levels(stored) > _STORED_LEVELS:
                        plan.observations[call.id] = _error_message(
                            call,
                            f"the arguments are nested deeper than {_STORED_LEVELS} levels, more than a paused "
                            "run keeps for approval; the call did not run. Send flatter arguments.",
                        )
                        continue
                    plan.pending.append(
                        PendingApproval(call_id=call.id, tool_name=call.name, arguments=stored, reason=held)
                    )
                    continue
                if call.id not in approvals:
                    raise ApprovalError(
                        f"no decision for pending call {call.id} ({call.name}); pass approvals for every pending call"
                    )
                if not approvals[call.id]:
                    plan.observations[call.id] = _error_message(
                        call, f"the user rejected this call of {call.name}; it did not run"
                    )
                    continue
            plan.runnable.append((call, arguments))
        if approvals is not None:
            unknown = sorted(set(approvals) - needs_approval)
            if unknown:
                raise ApprovalError(
                    f"approvals name calls that are not pending: {', '.join(unknown)}; "
                    f"pending: {', '.join(sorted(needs_approval)) or 'none'}"
                )
        return plan

    async def _execute(self, runnable: list[tuple[ToolCall, dict[str, Any]]]) -> list[ToolResult]:
        toolbox = self.engine.toolbox
        if self.flags.plain_tools:
            return await toolbox.execute_many_validated(runnable)
        if self.flags.traced_tools:
            return await toolbox.execute_many_validated(runnable, runner=self._traced_call)
        return await toolbox.execute_many_validated(runnable, runner=self._observed_call)

    async def _traced_call(self, call: ToolCall, arguments: dict[str, Any]) -> ToolResult:
        """One admitted call announced as a `tool.call` operation, when nothing else observes or wraps it."""
        return await self._announced_tool(call, self.engine.toolbox.execute_validated, call, arguments)

    async def _observed_call(self, call: ToolCall, arguments: dict[str, Any]) -> ToolResult:
        """One admitted call through the tool middleware, events and hooks (within the toolbox's limit)."""
        if self.tool_handler is None:
            self.tool_handler = self.engine.bus.wrap_tool(self._tool_base)
        if self.validated is None:
            self.validated = {}
        validated = self.validated
        validated[call.id] = (call, arguments)
        try:
            return await self.tool_handler(ToolCallContext(call, self.engine.name, self.state.run_id))
        finally:
            validated.pop(call.id, None)

    async def _tool_base(self, context: ToolCallContext) -> ToolResult:
        if not self.flags.trace:
            return await self._tool_exchange(context)
        return await self._announced_tool(context.call, self._tool_exchange, context)

    async def _announced_tool(
        self, call: ToolCall, run: Callable[..., Awaitable[ToolResult]], *args: Any
    ) -> ToolResult:
        """`run(*args)` as the `tool.call` operation of `call`."""
        # Bound: a tool that runs an agent or a workflow makes this call their parent.
        async with self.manager.operation("tool.call", call.name, parent=self.operation, input=call) as operation:
            result = await run(*args)
            operation.output = result.content
            if result.is_error:
                operation.error = result.error or ToolError(result.content)
            return result

    async def _tool_exchange(self, context: ToolCallContext) -> ToolResult:
        from gecko.core.toolbox import ToolResult

        call, source = context.call, context.source
        toolbox = self.engine.toolbox
        if self.flags.observe:
            await self._publish("tool.started", {"call_id": call.id, "tool": call.name})
        result: ToolResult | None = None
        if self.flags.hook_tool_call:
            try:
                await self.manager.tool_call(call, source)
            except GuardrailViolation as exc:
                result = ToolResult(call, f"Error: the call was blocked by a guardrail: {redact(str(exc))}", True, exc)
        if result is None:
            admitted = None if self.validated is None else self.validated.get(call.id)
            if admitted is not None and (admitted[0] is call or admitted[0] == call):
                result = await toolbox.execute_validated(call, admitted[1])
            else:
                # A middleware replaced the call: its arguments have not been validated yet.
                result = await toolbox.execute(call)
            if self.flags.hook_tool_result:
                try:
                    await self.manager.tool_result(call, result.content, source)
                except GuardrailViolation as exc:
                    result = ToolResult(
                        call, f"Error: the result was withheld by a guardrail: {redact(str(exc))}", True, exc
                    )
        if self.flags.observe:
            await self._publish(
                "tool.failed" if result.is_error else "tool.finished",
                {"call_id": call.id, "tool": call.name, "is_error": result.is_error},
            )
        return result

    async def _publish(self, event_type: str, data: dict[str, Any]) -> None:
        await self.engine.bus.publish(Event(event_type, self.engine.name, self.state.run_id, data))


class _AsRun:
    """An operation scope whose start and end (their `gecko_operation_*` hooks) run as `run` (`current_run_usage`).

    Only its entry and exit are bound, never the block: in a generator the consumer runs within the block.
    """

    __slots__ = ("run", "scope")

    def __init__(self, run: _Run, scope: OperationScope) -> None:
        self.run = run
        self.scope = scope

    async def __aenter__(self) -> Operation:
        token = _current_run.set(self.run)
        try:
            return await self.scope.__aenter__()
        finally:
            _current_run.reset(token)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        token = _current_run.set(self.run)
        try:
            await self.scope.__aexit__(exc_type, exc, traceback)
        finally:
            _current_run.reset(token)


def _rejected(structured: StructuredRun[Any] | None, error: ModelBadRequestError) -> _Step:
    """A refused request: with an output type, the next strategy (ask the model again); otherwise `error` again."""
    if structured is None:
        raise error
    structured.rejected(error)
    return None


def _fed(filters: list[StreamFilter], text: str) -> str:
    """`text` through each filter in turn: what the last one passes on now."""
    for stream_filter in filters:
        text = stream_filter.feed(text)
    return text


def _flushed(filters: list[StreamFilter]) -> str:
    """What the filters still hold at the end of a reply: each one's rest fed to the next, then its own rest."""
    text = ""
    for stream_filter in filters:
        text = (stream_filter.feed(text) if text else "") + stream_filter.flush()
    return text


def _validate_python(model: type[BaseModel]) -> Callable[[Any], Any]:
    """The `validate_python` of `model`'s validator, built now if its class deferred building it."""
    model.model_rebuild()
    return model.__pydantic_validator__.validate_python


def _usage_data(usage: TokenUsage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _signature(name: str, arguments: Mapping[str, Any]) -> str:
    return name + "\x00" + json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=repr)


def _json_arguments(call: ToolCall) -> dict[str, Any]:
    try:
        value = json.loads(call.arguments)
    except ValueError as exc:  # validate() accepted these arguments, so they parse
        raise ToolArgumentsError(f"arguments of {call.name} are not JSON: {exc}") from exc
    return value if isinstance(value, dict) else {}


def _valid_reply(response: ModelResponse) -> ModelResponse:
    """`response` with each lone surrogate in its text and tool calls read as U+FFFD (`valid_text`)."""
    message = response.message
    content = message.content
    calls = message.tool_calls
    if (content is None or (isinstance(content, str) and content.isascii())) and (
        not calls or all(call.id.isascii() and call.name.isascii() and call.arguments.isascii() for call in calls)
    ):
        return response
    text = valid_text(content) if isinstance(content, str) else content
    valid_calls = [_valid_call(call) for call in calls]
    if text is content and all(new is old for new, old in zip(valid_calls, calls, strict=True)):
        return response
    valid = message.model_copy(update={"content": text, "tool_calls": valid_calls})
    return response.model_copy(update={"message": valid})


def _valid_call(call: ToolCall) -> ToolCall:
    """`call` itself, or a copy whose id, name and arguments are valid text (`valid_text`)."""
    id, name, arguments = valid_text(call.id), valid_text(call.name), valid_text(call.arguments)
    if id is call.id and name is call.name and arguments is call.arguments:
        return call
    return ToolCall(id=id, name=name, arguments=arguments)


def _error_message(call: ToolCall, text: str) -> Message:
    return Message.tool(call.id, f"Error: {redact(text)}", name=call.name)


def _as_messages(input: Any) -> list[Message]:
    if isinstance(input, str):
        return [Message.user(valid_text(input))]
    if isinstance(input, Message):
        return [input]
    if isinstance(input, AgentOutput):
        return [Message.user(valid_text(input.content))]
    if isinstance(input, (list, tuple)) and input and all(isinstance(item, Message) for item in input):
        return list(input)
    if input is None:
        raise ConfigurationError("an agent run needs an input: text, a Message or a list of messages")
    try:
        return [Message.user(valid_text(json.dumps(input, ensure_ascii=False)))]
    except (TypeError, ValueError, RecursionError):  # not JSON data, or nested too deeply for it
        pass
    try:
        return [Message.user(valid_text(str(input)))]
    except Exception as exc:  # nested too deeply, an int past the digit limit, a `__str__` that raises
        raise ConfigurationError(
            f"an agent run's input cannot be written as text ({type(input).__name__}: {type(exc).__name__}); "
            "pass text, a Message or a list of messages"
        ) from exc
