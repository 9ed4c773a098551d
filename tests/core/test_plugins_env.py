"""The GECKO_*_PLUGIN* environment variables are read at call time."""

from __future__ import annotations

import pytest

from gecko.errors import PluginNotFoundError
from gecko.plugins import _loader
from gecko.plugins.manager import PluginManager


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_strict_mode_is_on_for_truthy_values(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GECKO_STRICT_PLUGINS", value)
    assert _loader.strict_mode()


@pytest.mark.parametrize("value", ["", "0", "no"])
def test_strict_mode_is_off_otherwise(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GECKO_STRICT_PLUGINS", value)
    assert not _loader.strict_mode()


def test_disabled_names_are_comma_separated_and_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GECKO_DISABLED_PLUGINS", " a, b ,,c ")
    assert _loader.disabled_names() == {"a", "b", "c"}


def test_load_plugins_names_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GECKO_LOAD_PLUGINS", "audit,otel")
    assert _loader.explicitly_loaded_names() == {"audit", "otel"}


def test_autoload_disable_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GECKO_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    assert not _loader.autoload_disabled()
    monkeypatch.setenv("GECKO_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert _loader.autoload_disabled()


def test_strict_mode_raises_for_a_requested_plugin_that_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GECKO_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("GECKO_LOAD_PLUGINS", "no-such-plugin")
    monkeypatch.setenv("GECKO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginNotFoundError, match="no-such-plugin"):
        PluginManager().load_plugins()
