"""A typed host over pluggy: engines call `manager.model_request(...)`, never `pm.hook.*`."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

import pluggy

from gecko.errors import DuplicatePluginError, PluginError, PluginLoadError, PluginNotFoundError
from gecko.plugins import _loader, hookspecs
from gecko.plugins._loader import PluginRecord
from gecko.plugins.models import ModelRequest, ModelResponse
from gecko.types import Event, ToolCall

__all__ = ("PluginManager", "plugin_manager", "aplugin_manager", "HOOK_PLUGIN_GROUP")

HOOK_PLUGIN_GROUP = "gecko.plugins"

logger = logging.getLogger("gecko.plugins")


class PluginManager:
    """Holds the hook plugins of this process and calls their hooks, awaiting async ones."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager("gecko")
        self._pm.add_hookspecs(hookspecs)
        self._records: list[PluginRecord] = []
        self._loaded = False
        self._lock = threading.Lock()

    # --- registration ----------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a hook plugin (a module or object with `@hookimpl` functions); returns its name."""
        try:
            registered = self._pm.register(plugin, name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginLoadError(f"hook plugin {name or plugin!r} cannot be registered: {exc}") from exc
        if registered is None:
            raise PluginLoadError(f"hook plugin {name or plugin!r} is blocked or already registered")
        wrappers = [
            impl.function.__name__
            for caller in self._pm.get_hookcallers(plugin) or []
            for impl in caller.get_hookimpls()
            if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper)
        ]
        if wrappers:
            self._pm.unregister(plugin)
            raise PluginLoadError(
                f"hook plugin {registered!r} declares wrapper hooks {wrappers}: Gecko awaits hooks one by one, "
                "so use plain @hookimpl functions (tryfirst/trylast set the order)"
            )
        return registered

    def unregister(self, plugin: object) -> None:
        """Remove a registered hook plugin."""
        self._pm.unregister(plugin)

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

    def has_implementations(self, hook_name: str) -> bool:
        """Whether any registered plugin implements `hook_name` (cheap; lets engines skip work)."""
        return bool(getattr(self._pm.hook, hook_name).get_hookimpls())

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
        for call in self._calls("gecko_event", {"event": event}):
            try:
                result = call()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("a gecko_event hook failed on %s", event.type)

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


    def _calls(self, hook_name: str, kwargs: dict[str, Any]) -> list[Callable[[], Any]]:
        caller = getattr(self._pm.hook, hook_name)
        # pluggy stores implementations in reverse call order.
        return [
            functools.partial(impl.function, *(kwargs[name] for name in impl.argnames))
            for impl in reversed(caller.get_hookimpls())
        ]


def _duplicated_names(records: list[PluginRecord]) -> dict[str, DuplicatePluginError]:
    owners: dict[str, list[str]] = {}
    for record in records:
        owners.setdefault(record.name, []).append(f"{record.distribution} ({record.target})")
    return {
        name: DuplicatePluginError(
            f"hook plugin {name!r} is provided by several distributions: {', '.join(found)}; "
            "uninstall all but one"
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


async def aplugin_manager() -> PluginManager:
    """`plugin_manager()` for async code: the first call scans and imports hook plugins on a worker thread.

    Engines await it when a run starts, so discovery never blocks the event loop.
    """
    if _manager is not None:
        return _manager
    import anyio.to_thread

    return await anyio.to_thread.run_sync(plugin_manager)
