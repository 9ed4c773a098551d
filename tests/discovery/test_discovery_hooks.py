"""Hook plugins from installed distributions and the variables that select them."""

from __future__ import annotations

import pytest

from gecko.errors import DuplicatePluginError, PluginLoadError
from gecko.plugins.manager import PluginManager
from gecko.types import Event

from .conftest import imported_off_the_event_loop


def _statuses(manager: PluginManager) -> dict[tuple[str, str], str]:
    return {(r.name, r.distribution): r.status for r in manager.load_plugins()}


def test_good_plugin_loads_and_broken_and_duplicated_ones_are_reported() -> None:
    manager = PluginManager()
    statuses = _statuses(manager)
    assert statuses[("fakegood", "gecko-fake-good")] == "loaded"
    assert statuses[("fakebroken", "gecko-fake-broken")] == "error"
    assert statuses[("fakedup", "gecko-fake-dup-a")] == "error"
    assert statuses[("fakedup", "gecko-fake-dup-b")] == "error"
    errors = {r.name: r.error or "" for r in manager.records}
    assert "exploded on import" in errors["fakebroken"]
    assert "gecko-fake-dup-a" in errors["fakedup"]
    assert "gecko-fake-dup-b" in errors["fakedup"]


async def test_loaded_hook_plugin_observes_events() -> None:
    from gecko_fake_good import hooks

    manager = PluginManager()
    manager.load_plugins()
    hooks.SEEN.clear()
    await manager.event(Event(type="workflow.started", source="w", run_id="r"))
    assert hooks.SEEN == ["workflow.started"]


def test_autoload_disabled_loads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GECKO_DISABLE_PLUGIN_AUTOLOAD", "1")
    manager = PluginManager()
    assert set(_statuses(manager).values()) == {"disabled"}
    assert not manager.has_implementations("gecko_event")


def test_load_plugins_variable_loads_only_named_plugins_when_autoload_is_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GECKO_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("GECKO_LOAD_PLUGINS", "fakegood")
    statuses = _statuses(PluginManager())
    assert statuses[("fakegood", "gecko-fake-good")] == "loaded"
    assert statuses[("fakebroken", "gecko-fake-broken")] == "disabled"


def test_disabled_plugins_variable_skips_named_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GECKO_DISABLED_PLUGINS", "fakebroken,fakedup")
    statuses = _statuses(PluginManager())
    assert statuses[("fakegood", "gecko-fake-good")] == "loaded"
    assert statuses[("fakebroken", "gecko-fake-broken")] == "disabled"
    assert statuses[("fakedup", "gecko-fake-dup-a")] == "disabled"


def test_strict_mode_raises_on_a_plugin_that_fails_to_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GECKO_STRICT_PLUGINS", "1")
    monkeypatch.setenv("GECKO_DISABLED_PLUGINS", "fakedup")
    with pytest.raises(PluginLoadError, match="exploded on import"):
        PluginManager().load_plugins()


def test_strict_mode_raises_on_a_duplicated_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GECKO_STRICT_PLUGINS", "1")
    monkeypatch.setenv("GECKO_DISABLED_PLUGINS", "fakebroken")
    with pytest.raises(DuplicatePluginError, match="gecko-fake-dup-a"):
        PluginManager().load_plugins()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_first_agent_run_imports_hook_plugins_on_a_worker_thread_not_the_event_loop(backend: str) -> None:
    body = """
        from gecko import AgentBuilder
        from gecko.testing.models import ScriptedModel
        agent = AgentBuilder().with_model(ScriptedModel(["hello"])).build()
        assert (await agent.run("hi")).content == "hello"
    """
    assert imported_off_the_event_loop("gecko_fake_good.hooks", body, backend)
