"""Events of agent runs: the typed stream events, an async event bus, and middleware around calls.

Two audiences:

* `agent.stream(...)` yields the stream events defined here (`TextDelta`, `ToolStarted`,
  `ToolFinished`, `FinalOutput`).
* Observers subscribe to an `EventBus` and receive `gecko.types.Event` records
  (`agent.started`, `model.finished`, `tool.finished`, ...). Every event published on a bus is
  also sent to the hook plugins' `gecko_event`. Middleware (`async def mw(context, call_next)`)
  wraps every model call and every tool call; hook plugins intercept the same calls through
  `gecko_model_request` / `gecko_model_response` / `gecko_tool_call` / `gecko_tool_result`,
  which run innermost, right around the model or the tool.

Nothing is built when nobody listens: the engine asks `EventBus.listening` once per run.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from gecko.plugins import aplugin_manager, plugin_manager
from gecko.plugins.models import ModelRequest, ModelResponse
from gecko.redaction import redacting_logger
from gecko.types import AgentOutput, Event, ToolCall

if TYPE_CHECKING:
    from gecko.core.toolbox import ToolResult

__all__ = (
    "TextDelta",
    "ToolStarted",
    "ToolFinished",
    "FinalOutput",
    "StreamEvent",
    "ModelCallContext",
    "ToolCallContext",
    "ModelHandler",
    "ToolHandler",
    "ModelMiddleware",
    "ToolMiddleware",
    "EventHandler",
    "EventBus",
)

logger = redacting_logger("gecko.events")


# --- stream events ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the model's text, as the provider streamed it."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolStarted:
    """A validated tool call is about to run."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class ToolFinished:
    """A tool call ended; `content` is the observation the model will see."""

    call: ToolCall
    content: str
    is_error: bool


@dataclass(frozen=True, slots=True)
class FinalOutput:
    """The run ended: `output` is what `Agent.run` returns (a `PausedOutput` when approvals are pending)."""

    output: AgentOutput


StreamEvent: TypeAlias = "TextDelta | ToolStarted | ToolFinished | FinalOutput"


# --- middleware ------------------------------------------------------------------------


@dataclass(slots=True)
class ModelCallContext:
    """One model call seen by middleware; a middleware may replace `request` before `call_next`."""

    request: ModelRequest
    source: str
    run_id: str
    turn: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ToolCallContext:
    """One validated tool call seen by middleware."""

    call: ToolCall
    source: str
    run_id: str
    extra: dict[str, Any] = field(default_factory=dict)


ModelHandler: TypeAlias = Callable[[ModelCallContext], Awaitable[ModelResponse]]
ToolHandler: TypeAlias = "Callable[[ToolCallContext], Awaitable[ToolResult]]"
ModelMiddleware: TypeAlias = Callable[[ModelCallContext, ModelHandler], Awaitable[ModelResponse]]
ToolMiddleware: TypeAlias = "Callable[[ToolCallContext, ToolHandler], Awaitable[ToolResult]]"
EventHandler: TypeAlias = Callable[[Event], "Awaitable[None] | None"]


def _chain(middleware: list[Any], handler: Any) -> Any:
    for layer in reversed(middleware):
        handler = _bind(layer, handler)
    return handler


def _bind(layer: Any, call_next: Any) -> Any:
    async def wrapped(context: Any) -> Any:
        return await layer(context, call_next)

    return wrapped


# --- the bus ---------------------------------------------------------------------------


class EventBus:
    """Delivers events to subscribers and to the `gecko_event` hook; holds call middleware.

    Subscriber failures are logged and never stop a run: observers cannot break what they
    observe. Middleware failures do propagate, since middleware intercepts.

    Example:
        ```python
        bus = EventBus()
        bus.subscribe(print, types=["tool.*"])

        async def timing(context, call_next):
            response = await call_next(context)
            return response

        bus.use_model_middleware(timing)
        agent = AgentBuilder().with_model(model).with_event_bus(bus).build()
        ```
    """

    def __init__(self, *, forward_to_plugins: bool = True) -> None:
        self._handlers: list[tuple[EventHandler, tuple[str, ...] | None]] = []
        self._model_middleware: list[ModelMiddleware] = []
        self._tool_middleware: list[ToolMiddleware] = []
        self._forward = forward_to_plugins
        self.generation = 0
        """Grows by one whenever a subscriber or a middleware is added or removed."""

    # --- observing -----------------------------------------------------------------------

    def subscribe(
        self, handler: EventHandler, *, types: list[str] | tuple[str, ...] | None = None
    ) -> Callable[[], None]:
        """Call `handler(event)` (sync or async) for every event, or only for `types`.

        A type ending in `*` matches by prefix (`"tool.*"`). Returns a function that unsubscribes.
        """
        entry = (handler, None if types is None else tuple(types))
        self._handlers.append(entry)
        self.generation += 1

        def unsubscribe() -> None:
            if entry in self._handlers:
                self._handlers.remove(entry)
                self.generation += 1

        return unsubscribe

    @property
    def listening(self) -> bool:
        """Whether publishing would reach anyone (a subscriber or a `gecko_event` hook)."""
        if self._handlers:
            return True
        return self._forward and plugin_manager().has_implementations("gecko_event")

    async def publish(self, event: Event) -> None:
        """Deliver `event` to the matching subscribers, then to the `gecko_event` hook."""
        for handler, types in list(self._handlers):
            if types is not None and not _matches(event.type, types):
                continue
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("event handler %r failed on %s", handler, event.type)
        if self._forward:
            manager = await aplugin_manager()
            if manager.has_implementations("gecko_event"):
                await manager.event(event)

    # --- intercepting --------------------------------------------------------------------

    def use_model_middleware(self, middleware: ModelMiddleware) -> None:
        """Wrap every model call: `await middleware(context, call_next)` returns the `ModelResponse`.

        The first middleware added is the outermost.
        """
        self._model_middleware.append(middleware)
        self.generation += 1

    def use_tool_middleware(self, middleware: ToolMiddleware) -> None:
        """Wrap every validated tool call: `await middleware(context, call_next)` returns the `ToolResult`."""
        self._tool_middleware.append(middleware)
        self.generation += 1

    @property
    def has_model_middleware(self) -> bool:
        """Whether model calls are wrapped."""
        return bool(self._model_middleware)

    @property
    def has_tool_middleware(self) -> bool:
        """Whether tool calls are wrapped."""
        return bool(self._tool_middleware)

    def wrap_model(self, handler: ModelHandler) -> ModelHandler:
        """`handler` wrapped in the model middleware, outermost first."""
        wrapped: ModelHandler = _chain(list(self._model_middleware), handler)
        return wrapped

    def wrap_tool(self, handler: ToolHandler) -> ToolHandler:
        """`handler` wrapped in the tool middleware, outermost first."""
        wrapped: ToolHandler = _chain(list(self._tool_middleware), handler)
        return wrapped


def _matches(event_type: str, types: tuple[str, ...]) -> bool:
    for pattern in types:
        if pattern.endswith("*"):
            if event_type.startswith(pattern[:-1]):
                return True
        elif event_type == pattern:
            return True
    return False
