"""Copy-on-write state views, merge rules and the bounded shared history of a workflow run."""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, Literal

from gecko.errors import WorkflowDefinitionError

__all__ = ("DELETED", "MISSING", "History", "MergeRule", "StateView", "resolve_merge_rule")

MergeRule = Literal["append", "add", "merge"] | Callable[[Any, Any], Any]

# A state key that a node removed; `DELETED` never leaves the engine.
DELETED: Any = type("_Deleted", (), {"__repr__": lambda self: "DELETED"})()
# An unset key, as merge rules receive it.
MISSING: Any = object()
# A set, not a tuple: `in` hashes the type instead of comparing it with each entry.
_MUTABLE = frozenset((list, dict, set))


class StateView(MutableMapping[str, Any]):
    """One node's isolated view of the state: reads see `base`, writes stay local until merged.

    `base` is never mutated (the run replaces its state dict on every merge), so concurrent
    nodes never see each other's writes. Mutable values read from `base` are shallow-copied on
    first read; if the node changes such a copy in place, the change counts as a write.
    `_copies` stays None until the node reads a mutable value or deletes a key: while it is None,
    `_writes` are the node's whole diff, values to set (no `DELETED`).
    """

    __slots__ = ("_base", "_copies", "_writes")

    def __init__(self, base: dict[str, Any]) -> None:
        self._base = base
        self._writes: dict[str, Any] = {}
        self._copies: dict[str, Any] | None = None

    def __getitem__(self, key: str) -> Any:
        writes = self._writes
        if key in writes:
            value = writes[key]
            if value is DELETED:
                raise KeyError(key)
            return value
        value = self._base[key]
        if type(value) in _MUTABLE:
            copies = self._copies
            if copies is None:
                copies = self._copies = {}
            if key not in copies:
                copies[key] = value.copy()
            return copies[key]
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """`self[key]`, or `default` when the key is unset."""
        if key in self._writes:
            value = self._writes[key]
            return default if value is DELETED else value
        value = self._base.get(key, default)
        if type(value) in _MUTABLE and key in self._base:
            # A mutable state value (not a mutable `default`) is copied on first read, as `self[key]` does.
            return self[key]
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self._writes[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._writes[key] = DELETED
        if self._copies is None:
            self._copies = {}

    def __contains__(self, key: object) -> bool:
        writes = self._writes
        if key in writes:
            return writes[key] is not DELETED
        return key in self._base

    def __iter__(self) -> Iterator[str]:
        writes = self._writes
        for key in self._base:
            if writes.get(key, MISSING) is not DELETED:
                yield key
        for key, value in writes.items():
            if key not in self._base and value is not DELETED:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"StateView({dict(self)!r})"

    def diff(self) -> dict[str, Any]:
        """The node's writes, including in-place changes to copied values; `DELETED` marks removals."""
        copies = self._copies
        if copies:
            writes = self._writes
            base = self._base
            for key, value in copies.items():
                if key not in writes and value != base[key]:
                    writes[key] = value
        return self._writes


class History(Mapping[str, Any]):
    """The run's history: each executed node's latest output, plus the last `limit` executions in order.

    Skipped nodes never appear. Entries beyond `limit` are dropped oldest first, so long cyclic
    runs keep memory flat; `last_output` always survives.
    """

    __slots__ = ("_entries", "_latest", "last_output")

    def __init__(self, limit: int) -> None:
        self._entries: deque[tuple[str, Any]] = deque(maxlen=limit)
        self._latest: dict[str, Any] = {}
        self.last_output: Any = None

    def record(self, node: str, output: Any) -> None:
        """Add one execution of `node`."""
        self._entries.append((node, output))
        self._latest[node] = output
        self.last_output = output

    def __getitem__(self, node: str) -> Any:
        return self._latest[node]

    def __iter__(self) -> Iterator[str]:
        return iter(self._latest)

    def __len__(self) -> int:
        return len(self._latest)

    def entries(self) -> list[tuple[str, Any]]:
        """The retained executions, oldest first, as `(node, output)` pairs."""
        return list(self._entries)

    @property
    def limit(self) -> int:
        """How many executions are retained."""
        return self._entries.maxlen or 0

    def __repr__(self) -> str:
        return f"History({self._latest!r})"


def _append(current: Any, contribution: Any) -> Any:
    items = contribution if isinstance(contribution, (list, tuple)) else [contribution]
    return [*([] if current is MISSING else current), *items]


def _add(current: Any, contribution: Any) -> Any:
    return contribution if current is MISSING else current + contribution


def _merge(current: Any, contribution: Any) -> Any:
    return {**({} if current is MISSING else current), **contribution}


def _custom(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(current: Any, contribution: Any) -> Any:
        return fn(None if current is MISSING else current, contribution)

    return apply


_BUILTIN_RULES: dict[str, Callable[[Any, Any], Any]] = {"append": _append, "add": _add, "merge": _merge}


def resolve_merge_rule(key: str, rule: MergeRule) -> Callable[[Any, Any], Any]:
    """The function `(current, contribution) -> value` for a merge rule; current is `MISSING` when unset."""
    if isinstance(rule, str):
        try:
            return _BUILTIN_RULES[rule]
        except KeyError:
            raise WorkflowDefinitionError(
                f"unknown merge rule {rule!r} for state key {key!r}; use 'append', 'add', 'merge' or a function"
            ) from None
    if callable(rule):
        if inspect.iscoroutinefunction(rule) or inspect.iscoroutinefunction(getattr(rule, "__call__", None)):  # noqa: B004
            raise WorkflowDefinitionError(
                f"merge rule for state key {key!r} is async; contributions are folded synchronously, so pass a "
                "plain function"
            )
        return _custom(rule)
    raise WorkflowDefinitionError(f"merge rule for state key {key!r} must be a name or a function, got {rule!r}")
