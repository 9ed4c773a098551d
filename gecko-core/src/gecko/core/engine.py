"""The ReAct engine: model call, validated tool calls, observations, repeat, until a final answer.

One run, step by step:

1. Before every model request the budget is checked (`max_turns`, then `UsageLimits`), so a
   run never spends past its limits.
2. The request (system prompt + the memory's window of the conversation + tool definitions,
   prepared by the `StructureEngine` when an output type is asked for) goes through the
   model middleware and the `gecko_model_request` / `gecko_model_response` hooks.
   Usage is summed from the provider-reported numbers of every request, streamed or not.
3. Tool calls are validated by the `ToolBox` before anything runs. Unknown names, bad
   arguments and calls cut off by `finish_reason="length"` are answered with error
   observations, so the model can correct itself; after `max_tool_retries` consecutive turns
   with invalid calls the run fails with the last error (`UnknownToolError`,
   `ToolArgumentsError` or `ModelOutputError`). No tool runs in a turn that ends the run.
4. Loop breaker: the `max_repeated_tool_calls`-th call with the same name and the same
   (canonical) arguments is not run; the model is told that repeating it ends the run. One
   more identical call raises `ToolLoopDetected`.
5. Tools that require approval pause the run before any tool of that turn runs: the engine
   yields a `PausedOutput` listing the pending calls; resuming with approvals runs the
   approved calls and reports the rejected ones to the model as rejected.
6. A reply without tool calls is the final answer; with an output type it is parsed by the
   `StructureEngine`, re-asked with the validation errors up to its `max_retries`, then the
   next strategy is tried; `StructuredOutputError` when all are spent.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from pydantic import BaseModel, ConfigDict, Field

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
from gecko.core.structure import OUTPUT_TOOL_NAME
from gecko.errors import (
    ApprovalError,
    CorruptCheckpointError,
    GeckoError,
    GuardrailViolation,
    MaxTurnsExceeded,
    ModelBadRequestError,
    ModelOutputError,
    StructuredOutputError,
    StructuredOutputInvalid,
    ToolArgumentsError,
    ToolError,
    ToolLoopDetected,
    UsageLimitExceeded,
)
from gecko.plugins import plugin_manager
from gecko.plugins.models import ChatModel, ModelRequest, ModelResponse, StreamAccumulator, ToolDefinition
from gecko.types import AgentOutput, Event, JSONValue, Message, TokenUsage, ToolCall

if TYPE_CHECKING:
    from gecko.core.structure import Strategy, StructureEngine
    from gecko.core.toolbox import ToolBox, ToolResult
    from gecko.plugins.manager import PluginManager

__all__ = (
    "Memory",
    "UsageLimits",
    "PendingApproval",
    "PausedOutput",
    "RunState",
    "ReActEngine",
)


class Memory(Protocol):
    """What the engine needs from a memory: the window of the conversation sent to the model."""

    async def prepare(self, messages: Sequence[Message]) -> list[Message]:
        """The messages to send, e.g. the newest ones that fit a token budget."""
        ...


@dataclass(frozen=True, slots=True)
class UsageLimits:
    """A run's budget, checked before every model request; `None` means unlimited.

    Token limits compare what was already spent (the next request's size is unknown before
    it is sent): a run stops before the request that would start past the budget.
    """

    max_requests: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_total_tokens: int | None = None

    def check(self, state: RunState) -> None:
        """Raise `UsageLimitExceeded` if one more request would break the budget."""
        if self.max_requests is not None and state.requests >= self.max_requests:
            raise UsageLimitExceeded(
                f"the next model request would exceed max_requests={self.max_requests}; "
                "raise UsageLimits.max_requests or give the agent a smaller task"
            )
        for name, limit, spent in (
            ("max_input_tokens", self.max_input_tokens, state.input_tokens),
            ("max_output_tokens", self.max_output_tokens, state.output_tokens),
            ("max_total_tokens", self.max_total_tokens, state.total_tokens),
        ):
            if limit is not None and spent >= limit:
                raise UsageLimitExceeded(
                    f"{spent} tokens spent reach {name}={limit} before the next model request; "
                    f"raise UsageLimits.{name} or shorten the conversation"
                )


class PendingApproval(BaseModel):
    """A tool call waiting for the caller's decision."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    call_id: str
    tool_name: str
    arguments: dict[str, Any]


class PausedOutput(AgentOutput):
    """A run paused on tools that need approval; resume it with `agent.resume(approvals, session_id=...)`."""

    session_id: str
    pending_approvals: list[PendingApproval] = Field(default_factory=list)


@dataclass(slots=True)
class RunState:
    """The progress of one run: conversation (without the system prompt), usage and counters.

    JSON round-trips (`to_json` / `from_json`), so a paused run resumes in another process.
    """

    messages: list[Message]
    run_id: str = field(default_factory=lambda: secrets.token_hex(8))
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    requests: int = 0
    turns: int = 0
    invalid_turns: int = 0
    call_counts: dict[str, int] = field(default_factory=dict)

    def usage(self) -> TokenUsage:
        """What the run spent so far."""
        return TokenUsage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            total_tokens=self.total_tokens,
            requests=self.requests,
        )

    def add_usage(self, usage: TokenUsage) -> None:
        """Count one request and add its provider-reported tokens."""
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.total_tokens += usage.total_tokens
        self.requests += 1

    def to_json(self) -> dict[str, JSONValue]:
        """The state as JSON data."""
        return {
            "messages": [message.model_dump(mode="json") for message in self.messages],
            "run_id": self.run_id,
            "usage": [self.input_tokens, self.output_tokens, self.total_tokens, self.requests],
            "turns": self.turns,
            "invalid_turns": self.invalid_turns,
            "call_counts": dict(self.call_counts),
        }

    @classmethod
    def from_json(cls, data: Any) -> RunState:
        """Rebuild a state saved by `to_json`; anything else is a `CorruptCheckpointError`."""
        try:
            input_tokens, output_tokens, total_tokens, requests = (int(n) for n in data["usage"])
            return cls(
                messages=[Message.model_validate(item) for item in data["messages"]],
                run_id=str(data["run_id"]),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=total_tokens,
                requests=requests,
                turns=int(data["turns"]),
                invalid_turns=int(data["invalid_turns"]),
                call_counts={str(key): int(value) for key, value in data["call_counts"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptCheckpointError(
                f"the saved agent run is not valid ({exc}); delete the session key and start a new run"
            ) from exc


@dataclass(slots=True)
class _Plan:
    """One assistant turn's tool calls, sorted after validation."""

    observations: dict[str, Message] = field(default_factory=dict)
    runnable: list[tuple[ToolCall, dict[str, Any]]] = field(default_factory=list)
    pending: list[PendingApproval] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    error: GeckoError | None = None


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
        max_tool_retries: consecutive turns with invalid tool calls answered with error
            observations before the run fails with the last error.
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
        usage_limits: UsageLimits | None = None,
        bus: EventBus | None = None,
    ) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        if max_repeated_tool_calls < 1:
            raise ValueError(f"max_repeated_tool_calls must be at least 1, got {max_repeated_tool_calls}")
        if max_tool_retries < 0:
            raise ValueError(f"max_tool_retries must not be negative, got {max_tool_retries}")
        self.model = model
        self.toolbox = toolbox
        self.name = name
        self.system_message = Message.system(system_prompt) if system_prompt else None
        self.memory = memory
        self.max_turns = max_turns
        self.max_repeated_tool_calls = max_repeated_tool_calls
        self.max_tool_retries = max_tool_retries
        self.usage_limits = usage_limits
        self.bus = bus if bus is not None else EventBus()

    def iterate(
        self,
        state: RunState,
        *,
        structure: StructureEngine[Any] | None = None,
        stream: bool = False,
        session_id: str | None = None,
        approvals: Mapping[str, bool] | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Run the loop on `state`, yielding stream events; the last one is always a `FinalOutput`.

        Without `stream`, only the `FinalOutput` is yielded. With `approvals`, the last
        message of `state` must be the assistant turn the run paused on.
        """
        run = _Run(self, state, structure, stream, session_id, usage_limits or self.usage_limits)
        return run.iterate(approvals)


class _Run:
    """One run of an engine: per-run flags computed once, then the loop."""

    __slots__ = (
        "definitions",
        "engine",
        "hook_model_request",
        "hook_model_response",
        "hook_tool_call",
        "hook_tool_result",
        "limits",
        "manager",
        "observe",
        "plain_tools",
        "session_id",
        "state",
        "stream",
        "structure",
        "tool_handler",
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
        self.observe = engine.bus.listening
        self.hook_model_request = manager.has_implementations("gecko_model_request")
        self.hook_model_response = manager.has_implementations("gecko_model_response")
        self.hook_tool_call = manager.has_implementations("gecko_tool_call")
        self.hook_tool_result = manager.has_implementations("gecko_tool_result")
        self.plain_tools = not (
            self.observe or self.hook_tool_call or self.hook_tool_result or engine.bus.has_tool_middleware
        )
        self.definitions: list[ToolDefinition] = engine.toolbox.definitions()
        self.tool_handler: ToolHandler | None = None

    # --- the loop ------------------------------------------------------------------------

    async def iterate(self, approvals: Mapping[str, bool] | None) -> AsyncIterator[StreamEvent]:
        engine, state = self.engine, self.state
        try:
            if approvals is not None:
                message = state.messages[-1] if state.messages else None
                if message is None or not message.tool_calls:
                    raise ApprovalError("the saved run is not paused on tool calls; start a new run instead")
                plan = await self._admit(message, "tool_calls", approvals)
                if isinstance(plan, FinalOutput):
                    yield plan
                    return
                if self.stream:
                    for call, _ in plan.runnable:
                        yield ToolStarted(call)
                for finished in await self._act(message, plan):
                    yield finished
            elif self.observe:
                await self._publish("agent.started", {"messages": len(state.messages)})

            structure = self.structure
            strategies: list[Strategy | None] = (
                list(structure.strategies(engine.model.capabilities)) if structure is not None else [None]
            )
            strategy_index = 0
            retries = 0
            attempt_start: int | None = None
            while True:
                strategy = strategies[strategy_index]
                if state.turns >= engine.max_turns:
                    raise MaxTurnsExceeded(
                        f"no final answer after {engine.max_turns} model requests; raise max_turns "
                        "(AgentBuilder.with_max_turns) or give the agent a simpler task"
                    )
                if self.limits is not None:
                    self.limits.check(state)
                request = await self._request(strategy)
                state.turns += 1
                try:
                    if self.stream and not engine.bus.has_model_middleware:
                        accumulator = StreamAccumulator(engine.model.model)
                        if self.hook_model_request:
                            await self.manager.model_request(request, engine.name)
                        chunks = engine.model.stream(request)
                        try:
                            async for chunk in chunks:
                                accumulator.add(chunk)
                                if chunk.text:
                                    yield TextDelta(chunk.text)
                        finally:
                            aclose = getattr(chunks, "aclose", None)
                            if aclose is not None:
                                await aclose()
                        response = accumulator.response()
                        if self.hook_model_response:
                            await self.manager.model_response(request, response, engine.name)
                    else:
                        response = await self._call_model(request)
                        if self.stream and response.message.text:
                            yield TextDelta(response.message.text)
                except ModelBadRequestError:
                    # A provider refusing a structured request shape: the next strategy may work.
                    if structure is None or strategy_index + 1 >= len(strategies):
                        raise
                    strategy_index += 1
                    retries = 0
                    if attempt_start is not None:
                        del state.messages[attempt_start:]
                        attempt_start = None
                    continue
                state.add_usage(response.usage)
                if self.observe:
                    await self._publish(
                        "model.finished",
                        {"turn": state.turns, "finish_reason": response.finish_reason, **_usage_data(response.usage)},
                    )
                message = response.message

                if message.tool_calls and not (strategy == "tool" and _has_output_call(message)):
                    state.messages.append(message)
                    plan = await self._admit(message, response.finish_reason, None)
                    if isinstance(plan, FinalOutput):
                        yield plan
                        return
                    if self.stream:
                        for call, _ in plan.runnable:
                            yield ToolStarted(call)
                    for finished in await self._act(message, plan):
                        yield finished
                    continue

                state.messages.append(message)
                data: Any = None
                content = message.text
                if structure is not None and strategy is not None:
                    try:
                        data = structure.parse(response, strategy)
                    except StructuredOutputError as exc:
                        if attempt_start is None:
                            attempt_start = len(state.messages) - 1
                        if retries < structure.max_retries:
                            retries += 1
                            state.messages.extend(_reask(structure, message, exc, strategy))
                            continue
                        strategy_index += 1
                        if strategy_index >= len(strategies):
                            raise StructuredOutputError(
                                f"no valid {structure.output_type.__name__} after trying "
                                f"{', '.join(str(item) for item in strategies)} with {structure.max_retries} "
                                f"re-asks each; last problems: {_errors_text(exc)}. Simplify the output type "
                                "or use a model with JSON-schema support"
                            ) from exc
                        # The next strategy starts from the conversation before the failed answers.
                        del state.messages[attempt_start:]
                        attempt_start = None
                        retries = 0
                        continue
                    if message.tool_calls:
                        # The output tool's call (and any other call beside it) gets its answer, so the
                        # saved conversation stays valid for the next run of the session.
                        state.messages.extend(
                            Message.tool(
                                call.id,
                                "Final result received."
                                if call.name == OUTPUT_TOOL_NAME
                                else "Not run: the final result was already given.",
                                name=call.name,
                            )
                            for call in message.tool_calls
                        )
                    if not content:
                        content = data.model_dump_json() if isinstance(data, BaseModel) else json.dumps(data)
                output = AgentOutput(content=content, data=data, messages=state.messages, usage=state.usage())
                if self.observe:
                    await self._publish("agent.finished", _usage_data(output.usage))
                yield FinalOutput(output)
                return
        except anyio.get_cancelled_exc_class():
            raise
        except GeneratorExit:
            raise
        except Exception as exc:
            if self.observe:
                with anyio.CancelScope(shield=True):
                    await self._publish("agent.failed", {"error": type(exc).__name__, "message": str(exc)})
            raise

    async def _request(self, strategy: Strategy | None) -> ModelRequest:
        engine = self.engine
        messages = self.state.messages
        if engine.system_message is not None:
            messages = [engine.system_message, *messages]
        if engine.memory is not None:
            messages = await engine.memory.prepare(messages)
        else:
            messages = list(messages)
        request = ModelRequest(messages=messages, tools=self.definitions)
        if self.structure is not None and strategy is not None:
            request = self.structure.prepare(request, strategy)
        return request

    async def _call_model(self, request: ModelRequest) -> ModelResponse:
        bus = self.engine.bus
        if bus.has_model_middleware:
            handler = bus.wrap_model(self._model_base)
            return await handler(ModelCallContext(request, self.engine.name, self.state.run_id, self.state.turns))
        if self.hook_model_request or self.hook_model_response:
            return await self._model_base(ModelCallContext(request, self.engine.name, self.state.run_id, 0))
        return await self.engine.model.complete(request)

    async def _model_base(self, context: ModelCallContext) -> ModelResponse:
        if self.hook_model_request:
            await self.manager.model_request(context.request, context.source)
        response = await self.engine.model.complete(context.request)
        if self.hook_model_response:
            await self.manager.model_response(context.request, response, context.source)
        return response

    # --- tools ---------------------------------------------------------------------------

    async def _admit(
        self, message: Message, finish_reason: str, approvals: Mapping[str, bool] | None
    ) -> _Plan | FinalOutput:
        """Validate the tool calls of `message`: the plan to run, or the paused output."""
        engine, state = self.engine, self.state
        plan = self._plan(message, finish_reason, approvals)
        if plan.pending:
            output = PausedOutput(
                session_id=self.session_id or f"run-{state.run_id}",
                pending_approvals=plan.pending,
                messages=state.messages,
                usage=state.usage(),
            )
            if self.observe:
                await self._publish("agent.paused", {"pending": [p.call_id for p in plan.pending]})
            return FinalOutput(output)
        state.call_counts.update(plan.counts)
        if plan.error is not None:
            state.invalid_turns += 1
            if state.invalid_turns > engine.max_tool_retries:
                raise type(plan.error)(
                    f"the model sent invalid tool calls {state.invalid_turns} turns in a row: {plan.error}; "
                    "no tool ran. Check the tool names and descriptions, or use a stronger model"
                ) from plan.error
        else:
            state.invalid_turns = 0
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

    def _plan(self, message: Message, finish_reason: str, approvals: Mapping[str, bool] | None) -> _Plan:
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
            if toolbox.get(call.name).requires_approval:
                needs_approval.add(call.id)
                if approvals is None:
                    plan.pending.append(
                        PendingApproval(call_id=call.id, tool_name=call.name, arguments=_json_arguments(call))
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
        if self.plain_tools:
            return await self.engine.toolbox.execute_many_validated(runnable)
        calls = [call for call, _ in runnable]
        if self.tool_handler is None:
            self.tool_handler = self.engine.bus.wrap_tool(self._tool_base)
        handler = self.tool_handler
        results: list[ToolResult | None] = [None] * len(calls)

        async def run_one(index: int, call: ToolCall) -> None:
            results[index] = await handler(ToolCallContext(call, self.engine.name, self.state.run_id))

        async with anyio.create_task_group() as group:
            for index, call in enumerate(calls):
                group.start_soon(run_one, index, call)
        return [result for result in results if result is not None]

    async def _tool_base(self, context: ToolCallContext) -> ToolResult:
        from gecko.core.toolbox import ToolResult

        call, source = context.call, context.source
        if self.observe:
            await self._publish("tool.started", {"call_id": call.id, "tool": call.name})
        if self.hook_tool_call:
            try:
                await self.manager.tool_call(call, source)
            except GuardrailViolation as exc:
                return ToolResult(call, f"Error: the call was blocked by a guardrail: {exc}", True, exc)
        result = await self.engine.toolbox.execute(call)
        if self.hook_tool_result:
            try:
                await self.manager.tool_result(call, result.content, source)
            except GuardrailViolation as exc:
                result = ToolResult(call, f"Error: the result was withheld by a guardrail: {exc}", True, exc)
        if self.observe:
            await self._publish(
                "tool.failed" if result.is_error else "tool.finished",
                {"call_id": call.id, "tool": call.name, "is_error": result.is_error},
            )
        return result

    async def _publish(self, event_type: str, data: dict[str, Any]) -> None:
        await self.engine.bus.publish(Event(event_type, self.engine.name, self.state.run_id, data))


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


def _error_message(call: ToolCall, text: str) -> Message:
    return Message.tool(call.id, f"Error: {text}", name=call.name)


def _errors_text(error: StructuredOutputError) -> str:
    return error.errors if isinstance(error, StructuredOutputInvalid) else str(error)


def _has_output_call(message: Message) -> bool:
    return any(call.name == OUTPUT_TOOL_NAME for call in message.tool_calls)


def _reask(
    structure: StructureEngine[Any], message: Message, error: StructuredOutputError, strategy: Strategy
) -> list[Message]:
    """The re-ask after a failed structured answer, with every tool call of `message` answered."""
    reask = structure.reask_message(error, strategy)
    answers = [
        Message.tool(call.id, f"Not run: call {OUTPUT_TOOL_NAME} with the final result.", name=call.name)
        for call in message.tool_calls
        if call.id != reask.tool_call_id
    ]
    return [*answers, reask]
