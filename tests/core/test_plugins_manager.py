"""The typed plugin manager: awaiting hooks in order, isolating observers, refusing wrappers."""

from __future__ import annotations

import logging

import anyio
import anyio.lowlevel
import pytest

from gecko.errors import GuardrailViolation, PluginLoadError
from gecko.plugins import hookimpl
from gecko.plugins.hookspecs import Operation
from gecko.plugins.manager import PluginManager
from gecko.types import Event, ToolCall

CALL = ToolCall(id="1", name="ls", arguments="{}")


def _event() -> Event:
    return Event(type="agent.started", source="agent", run_id="r1")


async def test_acall_awaits_async_and_returns_sync_results_in_call_order() -> None:
    manager = PluginManager()

    class First:
        @hookimpl(tryfirst=True)
        async def gecko_tool_result(self, call: ToolCall, result: str, source: str) -> str:
            return "async"

    class Second:
        @hookimpl(trylast=True)
        def gecko_tool_result(self, call: ToolCall, result: str, source: str) -> str:
            return "sync"

    manager.register(Second())
    manager.register(First())
    assert await manager.acall("gecko_tool_result", call=CALL, result="r", source="s") == ["async", "sync"]


async def test_acall_runs_each_implementation_after_the_previous_one_finished() -> None:
    manager = PluginManager()
    order: list[str] = []

    class Slow:
        @hookimpl(tryfirst=True)
        async def gecko_tool_call(self, call: ToolCall, source: str) -> None:
            order.append("slow started")
            import anyio

            await anyio.sleep(0.01)
            order.append("slow finished")

    class Sync:
        @hookimpl
        def gecko_tool_call(self, call: ToolCall, source: str) -> None:
            order.append("sync")

    manager.register(Sync())
    manager.register(Slow())
    await manager.tool_call(CALL, source="s")
    assert order == ["slow started", "slow finished", "sync"]


async def test_acall_without_implementations_returns_empty() -> None:
    assert await PluginManager().acall("gecko_tool_call", call=CALL, source="s") == []


async def test_failing_implementation_stops_later_ones_and_leaves_no_unawaited_coroutine() -> None:
    manager = PluginManager()
    later: list[str] = []

    class Later:
        @hookimpl(trylast=True)
        async def gecko_tool_call(self, call: ToolCall, source: str) -> None:
            later.append("ran")

    class Blocker:
        @hookimpl(tryfirst=True)
        def gecko_tool_call(self, call: ToolCall, source: str) -> None:
            raise GuardrailViolation("no")

    manager.register(Later())
    manager.register(Blocker())
    with pytest.raises(GuardrailViolation):
        await manager.tool_call(CALL, source="s")
    assert later == []


async def test_failing_event_observer_is_logged_and_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    manager = PluginManager()
    seen: list[str] = []

    class Broken:
        @hookimpl(tryfirst=True)
        async def gecko_event(self, event: Event) -> None:
            raise RuntimeError("observer bug")

    class Healthy:
        @hookimpl(trylast=True)
        def gecko_event(self, event: Event) -> None:
            seen.append(event.type)

    manager.register(Healthy())
    manager.register(Broken())
    with caplog.at_level(logging.ERROR, logger="gecko.plugins"):
        await manager.event(_event())
    assert seen == ["agent.started"]
    assert "observer bug" in caplog.text


def test_wrapper_hookimpl_is_refused_and_not_registered() -> None:
    manager = PluginManager()

    class Wrapper:
        @hookimpl(wrapper=True)
        def gecko_event(self, event: Event) -> object:
            return (yield)

    plugin = Wrapper()
    with pytest.raises(PluginLoadError, match="wrapper"):
        manager.register(plugin)
    assert not manager.has_implementations("gecko_event")


def test_registering_the_same_name_twice_is_a_plugin_load_error() -> None:
    manager = PluginManager()

    class Observer:
        @hookimpl
        def gecko_event(self, event: Event) -> None:
            return None

    manager.register(Observer(), "audit")
    with pytest.raises(PluginLoadError, match="audit"):
        manager.register(Observer(), "audit")


def test_hookimpl_with_unknown_argument_is_a_plugin_load_error() -> None:
    manager = PluginManager()

    class Wrong:
        @hookimpl
        def gecko_event(self, event: Event, extra: int) -> None:
            return None

    with pytest.raises(PluginLoadError, match="extra"):
        manager.register(Wrong())


def test_has_implementations_follows_registration() -> None:
    manager = PluginManager()

    class Observer:
        @hookimpl
        def gecko_event(self, event: Event) -> None:
            return None

    plugin = Observer()
    assert not manager.has_implementations("gecko_event")
    manager.register(plugin)
    assert manager.has_implementations("gecko_event")
    manager.unregister(plugin)
    assert not manager.has_implementations("gecko_event")


def test_load_plugins_reports_a_requested_plugin_that_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GECKO_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("GECKO_LOAD_PLUGINS", "no-such-plugin")
    records = PluginManager().load_plugins()
    missing = [r for r in records if r.name == "no-such-plugin"]
    assert len(missing) == 1
    assert missing[0].status == "error"
    assert "install it or fix the name" in (missing[0].error or "")


async def test_operation_hooks_alone_or_beside_others_see_each_operation(caplog: pytest.LogCaptureFixture) -> None:
    # One observer takes a shortcut past the generic dispatch; its failures, awaitables and
    # shielding must behave as with several, and registering another must end the shortcut.
    manager = PluginManager()
    seen: list[tuple[str, str, str]] = []

    class Sole:
        @hookimpl
        def gecko_operation_started(self, operation: Operation) -> None:
            seen.append(("sole", "started", operation.name))
            raise RuntimeError("observer bug")

        @hookimpl
        async def gecko_operation_ended(self, operation: Operation) -> None:
            await anyio.lowlevel.checkpoint()  # would raise if the cancelled scope reached it unshielded
            seen.append(("sole", "ended", operation.status))

    class Another:
        @hookimpl
        def gecko_operation_started(self) -> None:
            seen.append(("another", "started", ""))

    manager.register(Sole())
    with caplog.at_level(logging.ERROR, logger="gecko.plugins"):
        async with manager.operation("tool.call", "first"):
            pass
    assert "a gecko_operation_started hook failed on tool.call" in caplog.text
    with anyio.CancelScope() as scope:
        async with manager.operation("tool.call", "second"):
            scope.cancel()
            await anyio.sleep(1)
    manager.register(Another())
    async with manager.operation("tool.call", "third"):
        pass
    assert seen == [
        ("sole", "started", "first"),
        ("sole", "ended", "ok"),
        ("sole", "started", "second"),
        ("sole", "ended", "cancelled"),
        ("another", "started", ""),  # registered last, called first (pluggy's order)
        ("sole", "started", "third"),
        ("sole", "ended", "ok"),
    ]
