"""Safe entry-point discovery: each entry point loads in isolation and is timed.

A plugin that fails to import is recorded with its error and never breaks the host, unless
`GECKO_STRICT_PLUGINS=1` asks for the error to be raised.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from gecko.errors import PluginLoadError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = (
    "PluginRecord",
    "PluginStatus",
    "discover",
    "load",
    "strict_mode",
    "disabled_names",
    "autoload_disabled",
    "explicitly_loaded_names",
)

PluginStatus = Literal["builtin", "available", "loaded", "error", "disabled"]


@dataclass
class PluginRecord:
    """What is known about one plugin: where it comes from and how loading it went."""

    group: str
    name: str
    target: str
    distribution: str
    version: str
    status: PluginStatus = "available"
    error: str | None = None
    import_seconds: float | None = None
    entry_point: EntryPoint | None = None


def _env_names(variable: str) -> frozenset[str]:
    return frozenset(name.strip() for name in os.environ.get(variable, "").split(",") if name.strip())


def strict_mode() -> bool:
    """Whether `GECKO_STRICT_PLUGINS` asks for plugin errors to be raised."""
    return os.environ.get("GECKO_STRICT_PLUGINS", "").lower() in {"1", "true", "yes"}


def disabled_names() -> frozenset[str]:
    """Plugin names listed in `GECKO_DISABLED_PLUGINS` (comma separated)."""
    return _env_names("GECKO_DISABLED_PLUGINS")


def autoload_disabled() -> bool:
    """Whether `GECKO_DISABLE_PLUGIN_AUTOLOAD` turns off automatic loading of hook plugins."""
    return os.environ.get("GECKO_DISABLE_PLUGIN_AUTOLOAD", "").lower() in {"1", "true", "yes"}


def explicitly_loaded_names() -> frozenset[str]:
    """Hook plugins named in `GECKO_LOAD_PLUGINS`, loaded even when autoload is disabled."""
    return _env_names("GECKO_LOAD_PLUGINS")


def discover(group: str, name: str | None = None) -> list[PluginRecord]:
    """Entry points of `group` (only `name` if given), without importing them.

    The same distribution seen twice on `sys.path` counts once.
    """
    # Imported here: scanning installed distributions is only needed when a plugin is asked for.
    from importlib.metadata import entry_points

    selected = entry_points(group=group, name=name) if name else entry_points(group=group)
    records: dict[tuple[str, str, str], PluginRecord] = {}
    for entry_point in selected:
        dist = entry_point.dist
        dist_name = dist.metadata["Name"] if dist is not None else "<unknown>"
        version = dist.version if dist is not None else "?"
        key = (entry_point.name, dist_name, entry_point.value)
        records.setdefault(
            key,
            PluginRecord(
                group=group,
                name=entry_point.name,
                target=entry_point.value,
                distribution=dist_name,
                version=version,
                status="disabled" if entry_point.name in disabled_names() else "available",
                entry_point=entry_point,
            ),
        )
    return list(records.values())


def load(record: PluginRecord) -> object:
    """Import the object behind `record`, updating its status, error and import time.

    Raises:
        PluginLoadError: the import failed; `record` keeps the error text either way.
    """
    if record.entry_point is None:
        raise PluginLoadError(f"plugin {record.name!r} has no entry point to load")
    started = time.perf_counter()
    try:
        loaded = record.entry_point.load()
    except Exception as exc:  # a plugin may fail in any way; it must not break the host
        record.status = "error"
        record.error = f"{type(exc).__name__}: {exc}"
        record.import_seconds = time.perf_counter() - started
        raise PluginLoadError(
            f"plugin {record.name!r} from {record.distribution} {record.version} "
            f"({record.group}) failed to import: {record.error}"
        ) from exc
    record.status = "loaded"
    record.import_seconds = time.perf_counter() - started
    return loaded
