"""Gecko's plugin machinery (hookspecs, manager, registries) and one facade module per plugin kind."""

from __future__ import annotations

from gecko.plugins._loader import PluginRecord
from gecko.plugins.hookspecs import hookimpl
from gecko.plugins.manager import PluginManager, aplugin_manager, plugin_manager, plugins_loaded

__all__ = (
    "hookimpl",
    "PluginManager",
    "PluginRecord",
    "plugin_manager",
    "aplugin_manager",
    "plugins_loaded",
    "load_plugins",
)


def load_plugins() -> list[PluginRecord]:
    """Load the installed hook plugins (once) and return what was found, with statuses."""
    return plugin_manager().load_plugins()
