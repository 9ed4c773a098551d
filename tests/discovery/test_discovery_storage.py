"""Storage schemes from installed distributions: lazy, isolated, duplicates named."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gecko.errors import DuplicatePluginError, PluginLoadError, PluginNotFoundError
from gecko.plugins.registry import Registry
from gecko.plugins.storage import Storage, _validate_storage_class
from gecko.plugins.storage.factory import create_storage

from .conftest import imported_off_the_event_loop


def _fresh() -> Registry[type[Storage]]:
    return Registry("gecko.storage", "storage scheme", validate=_validate_storage_class)


async def test_installed_scheme_opens_through_create_storage() -> None:
    async with await create_storage("fakegood://") as store:
        assert type(store).__module__ == "gecko_fake_good.storage"
        await store.set("k", 1)
        assert await store.get("k") == 1


def test_asking_for_one_scheme_imports_no_other_plugin_module() -> None:
    code = (
        "import sys\n"
        "from gecko.plugins.storage import storage_registry\n"
        "storage_registry.get('fakegood')\n"
        "print(sorted(m for m in sys.modules if m.startswith('gecko_fake')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "['gecko_fake_good', 'gecko_fake_good.storage']"


def test_scheme_that_fails_to_import_is_a_load_error_naming_its_distribution() -> None:
    with pytest.raises(PluginLoadError, match=r"gecko-fake-broken 0\.0\.1.*exploded on import"):
        _fresh().get("fakebroken")


def test_scheme_claimed_by_two_distributions_names_both() -> None:
    with pytest.raises(DuplicatePluginError) as error:
        _fresh().get("fakedup")
    assert "gecko-fake-dup-a" in str(error.value)
    assert "gecko-fake-dup-b" in str(error.value)


def test_records_isolate_the_broken_and_duplicated_schemes() -> None:
    statuses = {(r.name, r.distribution): (r.status, r.error or "") for r in _fresh().records()}
    assert statuses[("fakegood", "gecko-fake-good")] == ("loaded", "")
    assert statuses[("fakebroken", "gecko-fake-broken")][0] == "error"
    assert "RuntimeError: gecko-fake-broken exploded on import" in statuses[("fakebroken", "gecko-fake-broken")][1]
    for dist in ("gecko-fake-dup-a", "gecko-fake-dup-b"):
        status, error = statuses[("fakedup", dist)]
        assert status == "error"
        assert "gecko-fake-dup-a" in error
        assert "gecko-fake-dup-b" in error


def test_strict_mode_raises_from_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GECKO_STRICT_PLUGINS", "1")
    monkeypatch.setenv("GECKO_DISABLED_PLUGINS", "fakedup")
    with pytest.raises(PluginLoadError, match="exploded"):
        _fresh().records()


def test_disabled_scheme_is_not_found_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GECKO_DISABLED_PLUGINS", "fakegood")
    with pytest.raises(PluginNotFoundError, match="GECKO_DISABLED_PLUGINS"):
        _fresh().get("fakegood")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_create_storage_imports_the_plugin_on_a_worker_thread_not_the_event_loop(backend: str) -> None:
    body = """
        from gecko.plugins.storage.factory import create_storage
        async with await create_storage("fakeother://"):
            pass
    """
    assert imported_off_the_event_loop("gecko_fake_good.other", body, backend)
