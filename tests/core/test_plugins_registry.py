"""Lazy name-keyed registries: builtins, registration, errors that name the fix."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from gecko.errors import DuplicatePluginError, PluginLoadError, PluginNotFoundError
from gecko.plugins.registry import Registry
from gecko.plugins.storage import Storage, storage_registry
from gecko.plugins.storage.memory import MemoryStorage


def _accept(name: str, plugin: object) -> object:
    return plugin


def _registry() -> Registry[object]:
    return Registry(
        "gecko.test-kind-nobody-uses",
        "test scheme",
        validate=_accept,
        builtins={"builtin": "gecko.plugins.storage.memory:MemoryStorage"},
        install_hints={"known": "gecko-known-plugin"},
    )


def test_builtin_resolves_like_a_plugin() -> None:
    assert storage_registry.get("memory") is MemoryStorage


def test_unknown_name_with_a_hint_names_the_distribution_to_install() -> None:
    with pytest.raises(PluginNotFoundError, match="pip install gecko-known-plugin"):
        _registry().get("known")


def test_unknown_name_without_a_hint_names_the_entry_point_group() -> None:
    with pytest.raises(PluginNotFoundError, match=r"gecko\.test-kind-nobody-uses"):
        _registry().get("stranger")


def test_registered_plugin_resolves_until_unregistered() -> None:
    registry = _registry()
    plugin = object()
    unregister = registry.register("mine", plugin)
    assert registry.get("mine") is plugin
    assert "mine" in registry.names()
    unregister()
    with pytest.raises(PluginNotFoundError):
        registry.get("mine")


def test_registering_over_a_builtin_is_a_duplicate() -> None:
    with pytest.raises(DuplicatePluginError, match="builtin"):
        _registry().register("builtin", object())


def test_storage_class_with_mismatched_scheme_is_refused() -> None:
    class Misnamed(MemoryStorage):
        scheme = "other"

    with pytest.raises(PluginLoadError, match="declares scheme 'other'"):
        storage_registry.register("mine", Misnamed)


def test_non_storage_object_is_refused_as_storage_plugin() -> None:
    with pytest.raises(PluginLoadError, match="Storage subclass"):
        storage_registry.register("thing", object())


def test_disabled_name_says_which_variable_disabled_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GECKO_DISABLED_PLUGINS", "stranger")
    with pytest.raises(PluginNotFoundError, match="GECKO_DISABLED_PLUGINS"):
        _registry().get("stranger")


def test_builtin_records_need_no_import() -> None:
    records = [r for r in storage_registry.records() if r.name == "memory"]
    assert [(r.status, r.distribution) for r in records] == [("builtin", "gecko-ai-core")]


def test_asking_for_memory_imports_no_other_storage_backend() -> None:
    code = (
        "import sys, anyio\n"
        "from gecko.plugins.storage.factory import create_storage\n"
        "anyio.run(create_storage, 'memory://')\n"
        "print(sorted(m for m in sys.modules if m.startswith('gecko_')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_storage_registry_values_are_storage_classes() -> None:
    assert issubclass(storage_registry.get("memory"), Storage)


async def test_aget_resolves_a_first_lookup_on_a_worker_thread_and_later_ones_from_the_cache() -> None:
    threads: list[int] = []

    def validate(name: str, plugin: object) -> object:
        threads.append(threading.get_ident())
        return plugin

    registry = Registry(
        "gecko.test-kind-nobody-uses",
        "test scheme",
        validate=validate,
        builtins={"builtin": "gecko.plugins.storage.memory:MemoryStorage"},
    )
    assert await registry.aget("builtin") is MemoryStorage
    assert await registry.aget("builtin") is MemoryStorage
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()


async def test_aget_raises_what_get_raises() -> None:
    with pytest.raises(PluginNotFoundError, match="pip install gecko-known-plugin"):
        await _registry().aget("known")
