"""Workflow building blocks: `@step`, `Next` jumps, the node context and `interrupt`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, overload

from gecko._checks import positive_seconds
from gecko.errors import GeckoError, WorkflowError

if TYPE_CHECKING:
    from gecko.compose._state import History

__all__ = (
    "NodeStatus",
    "Next",
    "Step",
    "step",
    "NodeContext",
    "Interrupt",
    "interrupt",
)


class NodeStatus(str, Enum):
    """Where a node stands in a run."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"


_KEEP = object()


@dataclass(frozen=True, slots=True)
class Next:
    """Returned by a node to jump to `node` instead of following its static edges.

    Any node may be the target, also one that no edge leads to. A node that declares its
    targets (`jumps=` on `@step` or `add_node`) may jump only to those.

    Args:
        node: The node to run next.
        input: What `node` receives as its last output; None keeps the current last output.
        update_state: Keys merged into the state as writes of the returning node.
    """

    node: str
    input: Any = None
    update_state: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.node, str):
            raise WorkflowError(f"Next(node=...) takes a node's name, not a {type(self.node).__name__}")
        if self.update_state is not None and not isinstance(self.update_state, Mapping):
            raise WorkflowError(
                f"Next(update_state=...) takes a mapping of state keys, not a {type(self.update_state).__name__}"
            )


class Step:
    """A function made a workflow node by `@step`; sync functions run in worker threads."""

    __slots__ = ("fn", "is_async", "jumps", "name", "timeout", "writes")

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None,
        writes: Iterable[str],
        timeout: float | None,
        jumps: Iterable[str] = (),
    ) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "step")
        self.writes = frozenset(writes)
        self.jumps = frozenset(jumps)
        self.timeout = positive_seconds(timeout, f"step {self.name!r} timeout")
        self.is_async = inspect.iscoroutinefunction(fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Step({self.name!r})"


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(
    name: str | None = None,
    /,
    *,
    writes: Iterable[str] = (),
    timeout: float | None = None,
    jumps: Iterable[str] = (),
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn_or_name: Callable[..., Any] | str | None = None,
    /,
    *,
    writes: Iterable[str] = (),
    timeout: float | None = None,
    jumps: Iterable[str] = (),
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make a sync or async function `fn(ctx)` a workflow node: `@step`, `@step("Name")` or `@step(writes=...)`.

    Args:
        fn_or_name: The function (bare use) or the step's display name.
        writes: State keys the step writes; checked against parallel branches when the graph is built.
        timeout: Seconds the step may run before the run fails with `WorkflowTimeoutError`.
        jumps: Nodes the step may return `Next` to: checked when the graph is built (a typo fails
            with a hint), drawn by `to_mermaid()`, and the only targets its `Next` may name.
    """
    if callable(fn_or_name):
        return Step(fn_or_name, name=None, writes=writes, timeout=timeout, jumps=jumps)

    def decorate(fn: Callable[..., Any]) -> Step:
        return Step(fn, name=fn_or_name, writes=writes, timeout=timeout, jumps=jumps)

    return decorate


class Interrupt(GeckoError):
    """Raised by `interrupt()` to pause the run; the engine catches it and returns a paused result."""

    def __init__(self, node: str, payload: Any) -> None:
        super().__init__(f"node {node!r} asked for human input")
        self.node = node
        self.payload = payload


class NodeContext:
    """What a running node sees.

    Attributes:
        node: The node's name.
        input: The workflow's input.
        state: This node's copy-on-write view of the workflow state; writes merge when the node finishes.
        history: The run's shared history (the same object for every node): outputs by node name.
        session_id: The run's session id.
    """

    __slots__ = ("_checkpoint", "_last", "_resume", "history", "input", "node", "session_id", "state")

    def __init__(
        self,
        node: str,
        input: Any,
        state: MutableMapping[str, Any],
        history: History,
        last: Any,
        session_id: str,
        resume: Any = _KEEP,
    ) -> None:
        self.node = node
        self.input = input
        self.state = state
        self.history = history
        self.session_id = session_id
        self._last = last
        self._resume = resume
        self._checkpoint = False

    def get_last_output(self) -> Any:
        """The value this node receives: its predecessor's output, or a `Next` jump's input."""
        return self._last

    def interrupt(self, payload: Any) -> Any:
        """Pause the run and hand `payload` to a human; returns the value given to `resume` on re-run.

        The node runs again from its start when the run resumes; `interrupt` then returns the value.
        """
        if self._resume is not _KEEP:
            value, self._resume = self._resume, _KEEP
            return value
        raise Interrupt(self.node, payload)

    def request_checkpoint(self) -> None:
        """Write a checkpoint when this node finishes (the `MANUAL` strategy's trigger)."""
        self._checkpoint = True


_current_context: ContextVar[NodeContext | None] = ContextVar("gecko_workflow_node")


def interrupt(payload: Any) -> Any:
    """Pause the run from inside a node; see `NodeContext.interrupt`."""
    ctx = _current_context.get(None)
    if ctx is None:
        raise WorkflowError("interrupt() was called outside a workflow node; call it from a node's function")
    return ctx.interrupt(payload)
