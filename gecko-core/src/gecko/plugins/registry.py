"""Lazy, name-keyed registries over entry-point groups.

A registry resolves one name at a time: builtins first, then only the entry points with that
name, so asking for `sqlite` never imports the `redis` plugin. Two distributions claiming one
name is an error naming both. Async code resolves with `aget`, which scans the entry points and
imports the plugin on a worker thread, so discovery never blocks the event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Generic, TypeVar

from gecko.errors import DuplicatePluginError, PluginLoadError, PluginNotFoundError
from gecko.plugins import _loader
from gecko.plugins._loader import PluginRecord

__all__ = ("Registry", "scheme_class_validator")

T = TypeVar("T")
C = TypeVar("C", bound=type)

BUILTIN_DISTRIBUTION = "gecko-ai-core"


class Registry(Generic[T]):
    """Plugins of one kind, keyed by name, loaded on first use.

    Args:
        group: the entry-point group, e.g. `gecko.storage`.
        kind: a human name for errors, e.g. `storage scheme`.
        builtins: names provided by gecko-ai-core itself, as `module:attribute` targets.
        install_hints: distribution to install for well-known names that are missing.
        validate: checks a loaded object and returns it typed; raises `PluginLoadError`.
    """

    def __init__(
        self,
        group: str,
        kind: str,
        *,
        validate: Callable[[str, object], T],
        builtins: Mapping[str, str] | None = None,
        install_hints: Mapping[str, str] | None = None,
    ) -> None:
        self.group = group
        self.kind = kind
        self._validate = validate
        self._builtins = dict(builtins or {})
        self._install_hints = dict(install_hints or {})
        self._loaded: dict[str, T] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> T:
        """The plugin registered under `name`, importing it on first use.

        Raises:
            PluginNotFoundError: nothing provides `name`; the message says what to install.
            DuplicatePluginError: several distributions provide `name`.
            PluginLoadError: the provider failed to import or is not a valid plugin.
        """
        found = self._loaded.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._loaded.get(name)
            if found is None:
                found = self._resolve(name)
                self._loaded[name] = found
            return found

    async def aget(self, name: str) -> T:
        """`get` for async code: a first lookup scans and imports on a worker thread; later ones return at once.

        Raises:
            The errors of `get`.
        """
        found = self._loaded.get(name)
        if found is not None:
            return found
        import anyio.to_thread  # on first use only: importing a facade stays cheap

        return await anyio.to_thread.run_sync(self.get, name)

    def register(self, name: str, plugin: object) -> Callable[[], None]:
        """Register `plugin` under `name` in this process; returns a function that unregisters it."""
        checked = self._validate(name, plugin)
        with self._lock:
            if name in self._loaded or name in self._builtins:
                raise DuplicatePluginError(f"{self.kind} {name!r} is already registered")
            self._loaded[name] = checked

        def unregister() -> None:
            with self._lock:
                self._loaded.pop(name, None)

        return unregister

    def names(self) -> list[str]:
        """Every name available, builtins included, without importing anything."""
        return sorted({*self._builtins, *self._loaded, *(r.name for r in _loader.discover(self.group))})

    def records(self) -> list[PluginRecord]:
        """A record per provider of this group, each loaded in isolation to report its status."""
        records = [
            PluginRecord(self.group, name, target, BUILTIN_DISTRIBUTION, _core_version(), status="builtin")
            for name, target in sorted(self._builtins.items())
        ]
        discovered = sorted(_loader.discover(self.group), key=lambda r: (r.name, r.distribution))
        providers: dict[str, list[str]] = {name: [f"{BUILTIN_DISTRIBUTION} (builtin)"] for name in self._builtins}
        for record in discovered:
            providers.setdefault(record.name, []).append(f"{record.distribution} ({record.target})")
        for record in discovered:
            records.append(record)
            if record.status == "disabled":
                continue
            if len(providers[record.name]) > 1:
                duplicate = DuplicatePluginError(
                    f"{self.kind} {record.name!r} is provided by several distributions: "
                    f"{', '.join(providers[record.name])}; uninstall all but one"
                )
                if _loader.strict_mode():
                    raise duplicate
                record.status = "error"
                record.error = str(duplicate)
                continue
            try:
                self._validate(record.name, _loader.load(record))
            except PluginLoadError as exc:
                if _loader.strict_mode():
                    raise
                record.status = "error"
                record.error = record.error or str(exc)
        return records

    def _resolve(self, name: str) -> T:
        if name in _loader.disabled_names():
            raise PluginNotFoundError(
                f"{self.kind} {name!r} is disabled by GECKO_DISABLED_PLUGINS; remove it from that variable to use it"
            )
        discovered = _loader.discover(self.group, name)
        providers = [f"{r.distribution} ({r.target})" for r in discovered]
        if name in self._builtins:
            providers.insert(0, f"{BUILTIN_DISTRIBUTION} (builtin {self._builtins[name]})")
        if len(providers) > 1:
            raise DuplicatePluginError(
                f"{self.kind} {name!r} is provided by several distributions: "
                f"{', '.join(providers)}; uninstall all but one"
            )
        if name in self._builtins:
            module_name, _, attribute = self._builtins[name].partition(":")
            return self._validate(name, getattr(import_module(module_name), attribute))
        if not discovered:
            raise PluginNotFoundError(self._not_found_message(name))
        return self._validate(name, _loader.load(discovered[0]))

    def _not_found_message(self, name: str) -> str:
        available = ", ".join(self.names()) or "none"
        hint = self._install_hints.get(name)
        if hint:
            return f"no plugin provides {self.kind} {name!r}: run `pip install {hint}` (installed: {available})"
        return (
            f"no installed plugin provides {self.kind} {name!r} (installed: {available}). Install the distribution "
            f"that provides it with `pip install <distribution>`: a provider declares {name!r} in the "
            f"{self.group!r} entry-point group (Gecko's own distributions are named gecko-ai-*; search the package "
            "index for 'gecko' plugins). `gecko plugins` lists what is installed and why a plugin failed to load"
        )


def _core_version() -> str:
    from gecko._version import __version__

    return __version__


def scheme_class_validator(base: C, kind: str) -> Callable[[str, object], C]:
    """A `validate` for registries of backend classes: a subclass of `base` whose `scheme` is its entry-point name.

    Args:
        base: the contract class every backend subclasses.
        kind: a human name for errors, e.g. `storage`.
    """

    def validate(name: str, plugin: object) -> C:
        if not isinstance(plugin, type) or not issubclass(plugin, base):
            raise PluginLoadError(f"{kind} plugin {name!r} must be a {base.__name__} subclass, got {plugin!r}")
        if getattr(plugin, "scheme", None) != name:
            raise PluginLoadError(
                f"{kind} plugin registered as {name!r} declares scheme {getattr(plugin, 'scheme', None)!r}"
            )
        return plugin  # type: ignore[return-value]  # issubclass narrowed it to a subclass of `base`

    return validate
