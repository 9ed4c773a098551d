"""A typed host over pluggy: engines call `manager.model_request(...)`, never `pm.hook.*`."""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import pluggy

from gecko.errors import DuplicatePluginError, PluginError, PluginLoadError, PluginNotFoundError
from gecko.plugins import _loader, hookspecs
from gecko.plugins._loader import PluginRecord
from gecko.plugins.hookspecs import Operation, OperationKind, StreamFilter
from gecko.redaction import redacting_logger

if TYPE_CHECKING:
    from gecko.plugins.models import ModelRequest, ModelResponse
    from gecko.types import Event, Message, ToolCall

__all__ = (
    "PluginManager",
    "OperationScope",
    "plugin_manager",
    "aplugin_manager",
    "plugins_loaded",
    "current_operation",
    "HOOK_PLUGIN_GROUP",
)

HOOK_PLUGIN_GROUP = "gecko.plugins"

logger = redacting_logger("gecko.plugins")

# The operation the running task is inside: every task copies its spawner's context, so
# concurrent branches, members and tool calls each see their own parent (asyncio and trio alike).
_current: ContextVar[Operation | None] = ContextVar("gecko_current_operation", default=None)
_INHERIT: Any = object()


def current_operation() -> Operation | None:
    """The operation (agent run, tool call, workflow node, team member, ...) the calling task runs in."""
    return _current.get()


class PluginManager:
    """Holds the hook plugins of this process and calls their hooks, awaiting async ones."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager("gecko")
        self._pm.add_hookspecs(hookspecs)
        self._records: list[PluginRecord] = []
        self._loaded = False
        self._lock = threading.Lock()
        # What each hook's implementations are, read on every run: rebuilt after (un)registering.
        self._implemented: frozenset[str] | None = None
        self._observers: dict[str, tuple[tuple[Callable[..., Any], tuple[str, ...]], ...]] = {}
        self._sole_observers: dict[str, Callable[[Operation], Any] | None] = {}
        self.generation = 0
        """Grows by one whenever a plugin registers or unregisters: what engines key their cached flags on."""

    # --- registration ----------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a hook plugin (a module or object with `@hookimpl` functions); returns its name."""
        try:
            registered = self._pm.register(plugin, name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginLoadError(f"hook plugin {name or plugin!r} cannot be registered: {exc}") from exc
        if registered is None:
            raise PluginLoadError(f"hook plugin {name or plugin!r} is blocked or already registered")
        self._forget_implementations()
        wrappers = [
            impl.function.__name__
            for caller in self._pm.get_hookcallers(plugin) or []
            for impl in caller.get_hookimpls()
            if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper)
        ]
        if wrappers:
            self._pm.unregister(plugin)
            self._forget_implementations()
            raise PluginLoadError(
                f"hook plugin {registered!r} declares wrapper hooks {wrappers}: Gecko awaits hooks one by one, "
                "so use plain @hookimpl functions (tryfirst/trylast set the order)"
            )
        return registered

    def unregister(self, plugin: object) -> None:
        """Remove a registered hook plugin."""
        self._pm.unregister(plugin)
        self._forget_implementations()

    def get_plugin(self, name: str) -> object | None:
        """The registered hook plugin called `name` (an entry point's name), or None."""
        found: object | None = self._pm.get_plugin(name)
        return found

    def _forget_implementations(self) -> None:
        self.generation += 1
        self._implemented = None
        self._observers.clear()
        self._sole_observers.clear()

    def load_plugins(self) -> list[PluginRecord]:
        """Load the `gecko.plugins` entry points once, honouring the `GECKO_*_PLUGIN*` variables.

        A plugin that fails to import is recorded and skipped (raised in strict mode).
        """
        with self._lock:
            if self._loaded:
                return list(self._records)
            self._loaded = True
            only = _loader.explicitly_loaded_names()
            autoload = not _loader.autoload_disabled()
            self._records = _loader.discover(HOOK_PLUGIN_GROUP)
            duplicated = _duplicated_names(self._records)
            for record in self._records:
                if record.status == "disabled" or not (autoload or record.name in only):
                    record.status = "disabled"
                    continue
                try:
                    if record.name in duplicated:
                        raise duplicated[record.name]
                    self.register(_loader.load(record), record.name)
                except PluginError as exc:
                    if _loader.strict_mode():
                        raise
                    record.status = "error"
                    record.error = record.error or str(exc)
                    logger.warning("%s", exc)
            for name in sorted(only - {record.name for record in self._records}):
                missing = PluginNotFoundError(
                    f"GECKO_LOAD_PLUGINS names hook plugin {name!r}, but no installed distribution declares it "
                    f"in the {HOOK_PLUGIN_GROUP!r} entry-point group; install it or fix the name"
                )
                if _loader.strict_mode():
                    raise missing
                logger.warning("%s", missing)
                self._records.append(
                    PluginRecord(
                        HOOK_PLUGIN_GROUP, name, "", "<not installed>", "?", status="error", error=str(missing)
                    )
                )
            return list(self._records)

    @property
    def records(self) -> list[PluginRecord]:
        """What `load_plugins` found, with statuses."""
        return list(self._records)

    @property
    def implemented(self) -> frozenset[str]:
        """The names of the hooks some registered plugin implements (cheap; lets engines skip work)."""
        found = self._implemented
        if found is None:
            found = self._implemented = frozenset(
                name for name, caller in vars(self._pm.hook).items() if caller.get_hookimpls()
            )
        return found

    def has_implementations(self, hook_name: str) -> bool:
        """Whether any registered plugin implements `hook_name` (cheap; lets engines skip work)."""
        return hook_name in self.implemented

    @property
    def traces(self) -> bool:
        """Whether any plugin observes operations (engines skip them entirely when not)."""
        implemented = self.implemented
        return "gecko_operation_started" in implemented or "gecko_operation_ended" in implemented

    # --- calling ---------------------------------------------------------------------

    async def acall(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation of `hook_name` in pluggy's order, awaiting each before the next.

        Sync and async implementations mix freely; the results come back in call order. The first
        exception stops the call and propagates.
        """
        results: list[Any] = []
        for call in self._calls(hook_name, kwargs):
            result = call()
            results.append(await result if inspect.isawaitable(result) else result)
        return results

    async def event(self, event: Event) -> None:
        """Call `gecko_event` on every observer; an observer's failure is logged, never raised."""
        await self._observe("gecko_event", {"event": event}, event.type)

    def operation(
        self,
        kind: OperationKind | str,
        name: str,
        *,
        parent: Operation | None = _INHERIT,
        input: Any = None,
        attributes: dict[str, Any] | None = None,
        carrier: dict[str, str] | None = None,
        bind: bool = True,
    ) -> OperationScope:
        """Announce an operation around a block: `gecko_operation_started`, then `_ended` on every path.

        Use as `async with manager.operation(...) as operation:`. The parent is the calling
        task's current operation unless given. With `bind`, the block runs with this operation
        as the current one (never bind inside an async generator: the consumer would see it
        between items). The block sets `output`, or `error` or `status` for an outcome it handled
        itself; an exception marks the operation `error`, cancellation or a closed generator
        marks it `cancelled`.
        """
        op = Operation(
            kind,
            name,
            _current.get() if parent is _INHERIT else parent,
            input,
            attributes if attributes is not None else {},
            carrier if carrier is not None else {},
            bound=bind,
        )
        return OperationScope(self, op)

    async def _observe(self, hook_name: str, kwargs: dict[str, Any], about: str, *, shield: bool = False) -> None:
        # Observers cannot break what they observe: a failure is logged and the others still run.
        # Only awaiting can be cancelled, so only awaits are shielded (sync observers cost no scope).
        for function, argnames in self._observers_of(hook_name):
            try:
                result = function(*[kwargs[name] for name in argnames])
                if result is not None and inspect.isawaitable(result):
                    await _settle(result, shield)
            except Exception:
                logger.exception("a %s hook failed on %s", hook_name, about)

    def _observers_of(self, hook_name: str) -> tuple[tuple[Callable[..., Any], tuple[str, ...]], ...]:
        """The implementations of an observer hook in call order, with the arguments each takes."""
        found = self._observers.get(hook_name)
        if found is None:
            # pluggy stores implementations in reverse call order.
            impls = reversed(getattr(self._pm.hook, hook_name).get_hookimpls())
            found = self._observers[hook_name] = tuple((impl.function, tuple(impl.argnames)) for impl in impls)
        return found

    def _sole_observer(self, hook_name: str) -> Callable[[Operation], Any] | None:
        """The implementation of an operation hook when it is the only one and takes the operation, else None."""
        try:
            return self._sole_observers[hook_name]
        except KeyError:
            observers = self._observers_of(hook_name)
            sole = observers[0][0] if len(observers) == 1 and observers[0][1] == ("operation",) else None
            self._sole_observers[hook_name] = sole
            return sole

    async def _observe_operation(self, hook_name: str, operation: Operation, *, shield: bool = False) -> None:
        """`_observe` for an operation hook, without its generic dispatch when one plugin observes."""
        sole = self._sole_observer(hook_name)
        if sole is None:
            await self._observe(hook_name, {"operation": operation}, operation.kind, shield=shield)
            return
        try:
            result = sole(operation)
            if result is not None and inspect.isawaitable(result):
                await _settle(result, shield)
        except Exception:
            logger.exception("a %s hook failed on %s", hook_name, operation.kind)

    async def model_request(self, request: ModelRequest, source: str) -> None:
        """Call `gecko_model_request`; a raised guardrail error blocks the request."""
        await self.acall("gecko_model_request", request=request, source=source)

    async def model_response(self, request: ModelRequest, response: ModelResponse, source: str) -> None:
        """Call `gecko_model_response`."""
        await self.acall("gecko_model_response", request=request, response=response, source=source)

    async def tool_call(self, call: ToolCall, source: str) -> None:
        """Call `gecko_tool_call`."""
        await self.acall("gecko_tool_call", call=call, source=source)

    async def tool_result(self, call: ToolCall, result: str, source: str) -> None:
        """Call `gecko_tool_result`."""
        await self.acall("gecko_tool_result", call=call, result=result, source=source)

    async def tool_admit(self, call: ToolCall, messages: list[Message], source: str) -> None:
        """Call `gecko_tool_admit`."""
        await self.acall("gecko_tool_admit", call=call, messages=messages, source=source)

    async def stream_filters(self, source: str) -> list[StreamFilter]:
        """Call `gecko_stream_filter`: the filters a streaming run passes its text through, in hook order."""
        return [found for found in await self.acall("gecko_stream_filter", source=source) if found is not None]

    def _calls(self, hook_name: str, kwargs: dict[str, Any]) -> list[Callable[[], Any]]:
        caller = getattr(self._pm.hook, hook_name)
        # pluggy stores implementations in reverse call order.
        return [
            functools.partial(impl.function, *(kwargs[name] for name in impl.argnames))
            for impl in reversed(caller.get_hookimpls())
        ]


class OperationScope:
    """The `async with` block of `PluginManager.operation`; yields the `Operation`."""

    __slots__ = ("_manager", "_operation", "_token")

    def __init__(self, manager: PluginManager, operation: Operation) -> None:
        self._manager = manager
        self._operation = operation
        self._token: Token[Operation | None] | None = None

    async def __aenter__(self) -> Operation:
        op = self._operation
        await self._manager._observe_operation("gecko_operation_started", op)
        if op.bound:
            self._token = _current.set(op)
        return op

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        op = self._operation
        if exc is None:
            if op.status == "running":
                op.status = "error" if op.error is not None else "ok"
        elif isinstance(exc, (anyio.get_cancelled_exc_class(), GeneratorExit)):
            op.status = "cancelled"
        else:
            op.status, op.error = "error", exc
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        await self._manager._observe_operation("gecko_operation_ended", op, shield=True)


async def _settle(result: Awaitable[Any], shield: bool) -> None:
    """Await an observer's result, shielded from cancellation when `shield`."""
    if shield:
        with anyio.CancelScope(shield=True):
            await result
    else:
        await result


def _duplicated_names(records: list[PluginRecord]) -> dict[str, DuplicatePluginError]:
    owners: dict[str, list[str]] = {}
    for record in records:
        owners.setdefault(record.name, []).append(f"{record.distribution} ({record.target})")
    return {
        name: DuplicatePluginError(
            f"hook plugin {name!r} is provided by several distributions: {', '.join(found)}; uninstall all but one"
        )
        for name, found in owners.items()
        if len(found) > 1
    }


_manager: PluginManager | None = None
_manager_lock = threading.Lock()


def plugin_manager() -> PluginManager:
    """The process-wide manager; hook plugins are loaded on first use, never at `import gecko`."""
    global _manager
    if _manager is None:
        with _manager_lock:
            if _manager is None:
                manager = PluginManager()
                manager.load_plugins()
                _manager = manager
    return _manager


def plugins_loaded() -> bool:
    """Whether the process-wide manager exists, its hook plugins loaded: `aplugin_manager()` would not wait."""
    return _manager is not None


async def aplugin_manager() -> PluginManager:
    """`plugin_manager()` for async code: the first call scans and imports hook plugins on a worker thread.

    Engines await it when a run starts, so discovery never blocks the event loop.
    """
    if _manager is not None:
        return _manager
    import anyio.to_thread

    return await anyio.to_thread.run_sync(plugin_manager)
