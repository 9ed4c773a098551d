"""One workflow run: dependency-counting scheduler, copy-on-write merges, journal and replay.

Everything here runs on one event loop thread, so the bookkeeping needs no locks: a node's
completion (merge, history, successors, journal record) happens without an await in between,
except for async conditions, which are shielded (and serialized) so a cancellation never leaves
half a completion behind. Under `ALWAYS` a completion returns its successors only once its
record is durable (`_make_durable`); a cancellation that arrives during that write leaves the
completion merged and its successors pending, which the run's final snapshot (always written,
shielded) records. Under `ASYNC` one writer task writes the journal behind the nodes, at most
`max_lag` records behind (see `gecko.compose._checkpoint` for the format).

The run reads only its `Plan` (graph, rules, strategy, limits), never the `Workflow` builder.
Node start and finish are `_execute` and `_finish_now`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from sys import getrefcount
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from gecko.compose._checkpoint import FORMAT, Checkpoint, CheckpointStore
from gecko.compose._graph import AGENT, ASYNC, SYNC, CheckpointStrategy, Plan, unknown_node_hint
from gecko.compose._state import _BUILTIN_RULES, DELETED, MISSING, History, StateView
from gecko.compose._values import storable
from gecko.compose.nodes import _KEEP, Interrupt, Next, NodeContext, NodeStatus, _current_context
from gecko.core._sanitize import text_of
from gecko.errors import (
    CheckpointError,
    CorruptCheckpointError,
    GeckoError,
    StorageError,
    UnstorableValueError,
    WorkflowError,
    WorkflowMaxStepsExceeded,
    WorkflowStateConflict,
    WorkflowTimeoutError,
)
from gecko.plugins import plugin_manager
from gecko.redaction import redacting_logger
from gecko.types import Event

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectSendStream

__all__ = ("Run", "to_json")

logger = redacting_logger("gecko.workflow")

_SCALARS = (str, int, float, bool, type(None))
# Values `storable` returns as they are, checked by type alone (a float also needs `math.isfinite`):
# journal records and snapshots skip the call, and the description it would need, for these.
_ATOMS = frozenset((str, int, bool, type(None)))
# A node's status as a snapshot stores it: running and failed nodes run again on resume.
_STORED_STATUS = {
    status: (NodeStatus.PENDING if status in (NodeStatus.RUNNING, NodeStatus.FAILED) else status).value
    for status in NodeStatus
}
# Read once: an enum member lookup costs several dict lookups, and every node does two.
_RUNNING = NodeStatus.RUNNING
_SUCCESS = NodeStatus.SUCCESS


def to_json(value: Any) -> Any:
    """JSON data for a node output: pydantic models and dataclasses are dumped, containers walked."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {text_of(value)}"
    return value


class Run:
    """The mutable state of one execution of a workflow."""

    def __init__(
        self,
        plan: Plan,
        session_id: str,
        run_id: str,
        *,
        store: CheckpointStore | None,
        durable: bool,
        sink: MemoryObjectSendStream[Event] | None,
    ) -> None:
        self.plan = plan
        self.session_id = session_id
        self.run_id = run_id
        self.store = store
        journal = durable and plan.strategy in (CheckpointStrategy.ALWAYS, CheckpointStrategy.ASYNC)
        self.journaling = journal and store is not None
        # How many records the journal may trail the nodes: 0 is `ALWAYS` (durable before successors).
        self.lag = plan.max_lag if plan.strategy is CheckpointStrategy.ASYNC else 0
        # The highest record number known durable, and whether this run has written its snapshot yet.
        self.durable = 0
        self.snapshotted = False
        # A checkpoint write failed: the storage is the problem, so the run stops without a final write.
        self.store_failed = False
        self.sink = sink
        # Events wait here until `_drain` hands them to the stream's bounded buffer and the hook.
        self.outbox: deque[tuple[Event, bool]] = deque()
        self.rules = plan.rules
        self.max_steps = plan.max_steps
        self.input: Any = None
        self.state: dict[str, Any] = {}
        self.history = History(plan.history_limit)
        # Each node's count of predecessors yet to finish: set by `start` or `restore`.
        self.remaining: dict[str, int] = {}
        self.activated: set[str] = set()
        self.status: dict[str, NodeStatus] = {}
        self.inbox: dict[str, Any] = {}
        self.pending: dict[str, Any] = {}
        # The state (and record number) each ready node was made ready with: siblings share one base.
        self.bases: dict[str, tuple[dict[str, Any], int]] = {}
        self.running: set[str] = set()
        self.steps = 0
        self.rec = 0
        self.writers: dict[str, tuple[str, int]] = {}
        self.rule_logs: dict[str, tuple[Any, list[tuple[int, int, Any]]]] = {}
        self.journal: list[list[Any]] = []
        self.error: BaseException | None = None
        self.failed_node: str | None = None
        self.interrupts: list[Interrupt] = []
        self.resume_values: dict[str, Any] = {}
        # Agent nodes paused for tool approvals: node -> the pause's payload, kept (and saved) until
        # the agent's run continues with decisions it accepts.
        self.approvals: dict[str, dict[str, Any]] = {}
        self.stopping = False
        self.manual = False
        self._tg: TaskGroup | None = None
        self.queue: deque[str] = deque()
        self.spares = 0
        # Workers running now (a spare counts once it starts): `_run_lean` defers its bookkeeping
        # while its worker is the only one and nothing is queued, so no other task reads the run.
        self.workers = 0
        self._lock = anyio.Lock() if plan.async_conditions else None
        # Whether a checkpoint write is in flight, and the event its waiters (if any) wait on.
        self._writing = False
        self._writer_done: anyio.Event | None = None
        # The task group of an eager run, whose writer task writes the journal behind the nodes.
        self._behind: TaskGroup | None = None
        self._flushing = False
        # Telemetry (hook plugins): the run and its nodes are announced only when a plugin observes.
        manager = plugin_manager()
        self.manager = manager
        self.trace = manager.traces
        self.hook_events = manager.has_implementations("gecko_event")
        self.observed = self.trace or self.hook_events
        self.emitting = sink is not None or self.hook_events
        # The run's trace context, kept with every snapshot so a resume continues the same trace.
        self.carrier: dict[str, str] = {}
        self.resumed = False

    # --- setup -----------------------------------------------------------------------

    def start(self, node: str, value: Any, *, input: Any) -> None:
        """Prepare a fresh run that begins at `node` with `value` as its last output."""
        self.input = input
        # Only predecessors inside the started region can ever finish (jump targets outside it
        # run only when jumped to, and then re-arm their own region).
        self.remaining = self.plan.arming(node).copy()
        self.activated.add(node)
        self.pending[node] = value
        self.bases[node] = (self.state, self.rec)

    async def restore(self, checkpoint: Checkpoint) -> None:
        """Rebuild the run from a snapshot and replay the journal records after it.

        The checkpoint's shape was validated when it was loaded (`gecko.compose._stored`).

        Raises:
            CorruptCheckpointError: the checkpoint does not fit this workflow's graph or merge rules.
        """
        snap = checkpoint.snapshot
        self.input = snap["input"]
        self.rec = snap["rec"]
        self.state = dict(snap["state"])
        for node, output in snap["history"]["entries"]:
            self.history.record(node, output)
        self.history._latest.update(snap["history"]["latest"])
        self.history.last_output = snap["history"]["last"]
        self.pending = dict(snap["pending"])
        self.inbox = dict(snap["inbox"])
        self.remaining = {**self.plan.indegree, **snap["remaining"]}
        self.activated = set(snap["activated"])
        self.status = {node: NodeStatus(value) for node, value in snap["nodes"].items()}
        self.steps = snap["steps"]
        self.carrier = dict(snap.get("trace") or {})
        self.resumed = True
        for key, merges in snap.get("merges", {}).items():
            base = merges["base"][0] if merges["base"] else MISSING
            self.rule_logs[key] = (base, [(rank, rec, value) for rank, rec, value in merges["log"]])
        self._check_restored(snap)
        paused = snap.get("interrupt")
        if paused is not None and isinstance(paused["payload"], dict) and "approval" in paused["payload"]:
            approval = paused["payload"]["approval"]
            from gecko.compose._approvals import is_pause

            if not is_pause(approval):
                raise CorruptCheckpointError(
                    f"the snapshot of session {self.session_id!r} pauses node {paused['node']!r} for an approval "
                    "that names no agent session or team results"
                )
            self.approvals[paused["node"]] = paused["payload"]
        for record in checkpoint.records:
            self.steps += 1
            self.rec += 1
            await self._replay(record)
        self.durable = self.rec
        self.snapshotted = True

    def _check_restored(self, snap: dict[str, Any]) -> None:
        # The snapshot's shape is validated on load; these checks need the graph.
        sid = self.session_id
        nodes = self.plan.nodes
        named = [*self.pending, *self.inbox, *self.status, *self.activated, *snap["remaining"], *self.history._latest]
        named += [node for node, _ in self.history.entries()]
        interrupt = snap.get("interrupt")
        if interrupt is not None:
            named.append(interrupt["node"])
        unknown = sorted({node for node in named if node not in nodes})
        if unknown:
            raise CorruptCheckpointError(
                f"session {sid!r} was written by a different graph (unknown nodes {unknown}); "
                "resume it with the workflow that wrote it"
            )
        if snap.get("graph") not in (None, self.plan.shape):
            # Counts of edges still to arrive were taken over the old edges: resuming would skip nodes or wait forever.
            raise CorruptCheckpointError(
                f"session {sid!r} was written by a workflow whose nodes, entry point or edges differ from this one's; "
                "resume it with the workflow that wrote it, or start a new session"
            )
        unruled = sorted(key for key in self.rule_logs if key not in self.rules)
        if unruled:
            raise CorruptCheckpointError(
                f"the snapshot of session {sid!r} has merge contributions for state keys {unruled}, which have no "
                "merge rule in this workflow; resume it with the workflow that wrote it"
            )
        for key, (base, log) in self.rule_logs.items():
            self._check_folded(key, base, log)
        for node in self.pending:
            if self.status.get(node) in (NodeStatus.SUCCESS, NodeStatus.SKIPPED):
                raise CorruptCheckpointError(
                    f"the snapshot of session {sid!r} has node {node!r} both pending and {self.status[node].value}"
                )
        for node in self.activated:
            if self.remaining[node] > 0 and node not in self.inbox and node not in self.pending:
                raise CorruptCheckpointError(
                    f"the snapshot of session {sid!r} has node {node!r} activated with no input waiting for it"
                )

    def _check_folded(self, key: str, base: Any, log: list[tuple[int, int, Any]]) -> None:
        # A builtin rule is a pure function of the logged contributions, so folding them again
        # must give the stored value; a custom rule may keep state of its own and is not re-run.
        rule = self.rules[key]
        if rule not in _BUILTIN_RULES.values():
            return
        folded = base
        try:
            for _, _, contribution in sorted(log, key=lambda item: item[:2]):
                folded = rule(folded, contribution)
        except Exception as exc:
            raise CorruptCheckpointError(
                f"the snapshot of session {self.session_id!r} has merge contributions to state key {key!r} that "
                f"its merge rule cannot fold: {exc}"
            ) from exc
        if self.state.get(key, MISSING) != folded:
            raise CorruptCheckpointError(
                f"the snapshot of session {self.session_id!r} holds state key {key!r} = {self.state.get(key)!r}, but "
                f"its merge contributions fold to {folded!r}"
            )

    async def _replay(self, record: dict[str, Any]) -> None:
        """Apply one journal record (validated on load) as the completion it records."""
        sid = self.session_id
        node = record["n"]
        if node not in self.plan.nodes:
            raise CorruptCheckpointError(
                f"record {self.rec} of the journal of session {sid!r} names node {node!r}, which this workflow "
                "does not have; resume it with the workflow that wrote it"
            )
        if node not in self.pending:
            raise CorruptCheckpointError(
                f"record {self.rec} of the journal of session {sid!r} completes {node!r}, which was not runnable"
            )
        writes = dict(record.get("d") or {})
        for key in record.get("x") or ():
            writes[key] = DELETED
        jump = None if record.get("j") is None else Next(record["j"][0], record["j"][1])
        try:
            if jump is not None:
                self._check_jump(node, jump)
            # A merge rule that accepted these values when the node ran accepts them again, so a
            # rule failing here means the record was changed.
            self._merge(node, writes, None)
        except Exception as exc:
            raise CorruptCheckpointError(
                f"record {self.rec} of the journal of session {sid!r} (node {node!r}, state keys {sorted(writes)}) "
                f"cannot be replayed: {exc}"
            ) from exc
        try:
            await self._complete(node, record["o"], jump)
        except WorkflowError as exc:
            raise CorruptCheckpointError(
                f"record {self.rec} of the journal of session {sid!r} (node {node!r}) cannot be replayed: {exc}"
            ) from exc

    # --- driving -----------------------------------------------------------------------

    async def drive(self, layered: bool, parallel: bool) -> None:
        """Run every pending node and what follows until the graph is done, paused or failed."""
        if not self.observed:
            await self._drive(layered, parallel)
            return
        await self._publish("workflow.started", {"session_id": self.session_id, "nodes": sorted(self.pending)})
        try:
            if self.trace:
                attributes = {"session_id": self.session_id, "run_id": self.run_id, "resumed": self.resumed}
                async with self.manager.operation(
                    "workflow.run", self.plan.name, input=self.input, attributes=attributes, carrier=self.carrier
                ) as operation:
                    await self._drive(layered, parallel)
                    if self.error is not None:
                        operation.error = self.error
                    elif self.interrupts:
                        operation.attributes["interrupted_node"] = self.interrupts[0].node
                    else:
                        operation.output = self.history.last_output
            else:
                await self._drive(layered, parallel)
        except anyio.get_cancelled_exc_class():
            await self._publish("workflow.cancelled", {"running": sorted(self.running)})
            raise
        if self.error is not None:
            await self._publish("workflow.failed", {"node": self.failed_node, "error": repr(self.error)})
        elif self.interrupts:
            await self._publish("workflow.paused", {"node": self.interrupts[0].node})
        else:
            await self._publish("workflow.finished", {"output": to_json(self.history.last_output)})

    async def _drive(self, layered: bool, parallel: bool) -> None:
        ready = sorted(self.pending, key=self.plan.index.__getitem__)
        if layered:
            await self._drive_layers(ready, parallel)
            return
        async with anyio.create_task_group() as tg:
            self._tg = self._behind = tg
            # The first worker is this task itself; spares and the journal writer are children.
            self.queue.extend(ready)
            self.spares = 1
            await self._worker()
        if self.outbox:
            await self._drain()

    def _dispatch(self, nodes: list[str]) -> None:
        # Ready nodes wait in a queue served by workers. While a worker runs nodes inline, one
        # spare is kept scheduled: nodes that never suspend all run in the worker already running
        # (no task per node; the spare finds nothing and exits). A spare that finds work proves
        # the workers before it suspended, so before taking a node it schedules two more spares
        # (while nodes remain for them): the spares double every loop turn, and spawning a task
        # is interleaved with starting a node, so the first nodes of a wide fan-out start at
        # once instead of after every task is spawned (see `_worker`).
        self.queue.extend(nodes)
        if not self.spares and self.queue:
            assert self._tg is not None
            self.spares = 1
            self._tg.start_soon(self._worker)

    async def _worker(self) -> None:
        self.workers += 1
        try:
            await self._work()
        finally:
            self.workers -= 1

    async def _work(self) -> None:
        # Spawning all spares at once would start no node until every task is spawned and then
        # start them all together, bunching their completions; doubling spreads both evenly.
        self.spares -= 1
        queue = self.queue
        tg = self._tg
        assert tg is not None
        for _ in range(min(2, len(queue) - 1 - self.spares)):
            self.spares += 1
            tg.start_soon(self._worker)
        execute = self._execute_observed if self.observed else self._execute_node
        # Without async conditions (a lock and a shield) or a journal write, a node whose edges
        # need no await completes synchronously here: no coroutine per completion.
        shielded = self._lock is not None
        inline = not self.journaling
        unconditional = self.plan.unconditional
        # A run nobody observes runs its direct nodes, and the chains they start, in `_run_lean`.
        lean = self.plan.direct if inline and not (shielded or self.observed or self.emitting) else {}
        node: str | None = None
        outcome: tuple[NodeContext, Any, int] | None
        while not self.stopping:
            if node is None:
                if not queue:
                    return
                node = queue.popleft()
                if queue and not self.spares:
                    self.spares = 1
                    tg.start_soon(self._worker)
            if node in lean:
                handed = await self._run_lean(node)
                if handed is None:
                    node = None
                    continue
                node, outcome = handed
            else:
                outcome = await execute(node)
            if outcome is None:
                node = None
                continue
            try:
                if shielded:
                    ready = await self._finish(node, *outcome)
                elif (settled := self._settle(node, *outcome)) is None:
                    ready = []
                elif settled[1] is None and node in unconditional and not self.manual:
                    # `_follow` for a completion that needs no await unless its record must be made durable.
                    ready = self._complete_unconditional(node, settled[0])
                    if not inline and not await self._make_durable(ready):
                        ready = []
                else:
                    ready = await self._follow(node, *settled)
            except Exception as exc:
                self._fail(node, exc)
                return
            if self.outbox:
                await self._drain()
            if len(ready) > 1:
                self._dispatch(ready[1:])
            # A chain continues in this task: no task per node.
            node = ready[0] if ready else None

    async def _run_lean(self, node: str) -> tuple[str, tuple[NodeContext, Any, int]] | None:
        """Run direct `node` in this task, then the direct nodes it makes ready, while completions are plain.

        Plain: the node is unconditional (`Plan.direct` lists its successors), returned no `Next`
        and asked for no checkpoint. Such a completion is `_settle` and `_complete_unconditional`
        minus journal and events (a lean run has neither), and a chain link (the only successor,
        waiting for nothing else) is run next without any queue. Returns the first node whose
        completion is not plain, with its outcome, for the worker to complete; None when the run
        stopped or nothing ready is left for this task (ready nodes that are not direct wait at the
        queue's front).

        While this worker is the only one and nothing is queued (solo), no other task reads the
        run between its nodes: the step and record counts and the nodes' status, input, running
        mark, `remaining`, `activated` and `inbox` entries are left to `_record`, called wherever
        the loop stops or another task may run; `writers` are not kept at all (no view older than
        the loop's own exists). The state and the history stay current: nodes read them.
        """
        direct = self.plan.direct
        remaining = self.remaining
        queue = self.queue
        resume = self.resume_values
        limit = sys.maxsize if self.max_steps is None else self.max_steps
        rules = self.rules
        writers = self.writers
        run_input = self.input
        session_id = self.session_id
        # `History.record`, spelled out below.
        history = self.history
        executed = history._entries.append
        latest = history._latest
        # Nodes completed, in order, whose bookkeeping `_record` has yet to do: the first was
        # recorded ready before, each later one (and `node`, while this is not empty) was made
        # ready by its predecessor's chain link.
        done: list[str] = []
        solo = False
        steps = self.steps
        rec = self.rec
        # `node`'s input, and the state its view starts from with that state's record number.
        last = self.pending[node]
        found = self.bases.pop(node, None)
        base, start = found if found is not None else (self.state, rec)
        fn, after, link = direct[node]
        # `StateView(base)` and `NodeContext(...)` are built without their `__init__` frames: every
        # slot is set as the constructors set it (a test checks that none is left unset), the view's
        # `_copies` and the context's `_checkpoint` where each is made (a node leaves them set only
        # on paths that reset `_copies` or leave this loop), the rest below, for every node.
        # The next node gets them again unless this one kept a reference to either: CPython's
        # reference counts are then what they are here (neither type takes weak references). The
        # context variable `interrupt()` reads holds the context; it is reset once, at the end.
        view = object.__new__(StateView)
        view._copies = None
        ctx = object.__new__(NodeContext)
        ctx.state = view
        ctx._checkpoint = False
        token = _current_context.set(ctx)
        ctx_refs = getrefcount(ctx)
        view_refs = getrefcount(view)
        try:
            # `while True`: CPython 3.11 specializes a frame's instructions once an unconditional
            # jump back has run a few times, which `while <condition>` never compiles to.
            while True:
                if not solo:
                    if self.stopping:
                        self._record(done, node, last, False, rec, steps)
                        return None
                    solo = self.workers == 1 and not queue
                steps += 1
                if steps > limit:
                    self._record(done, node, last, False, rec, steps)
                    self._fail_steps(node)
                    return None
                if not solo:
                    # Other workers may run while this node runs: they see it recorded as running.
                    self._record(done, node, last, True, rec, steps)
                view._base = base
                view._writes = {}
                ctx.node = node
                ctx.input = run_input
                ctx.state = view
                ctx.history = history
                ctx.session_id = session_id
                ctx._last = last
                ctx._resume = resume.pop(node, _KEEP) if resume else _KEEP
                try:
                    output = await fn(ctx)
                except BaseException as exc:
                    if solo:
                        self._record(done, node, last, True, rec, steps)
                    if isinstance(exc, Interrupt):
                        self._pause(node, exc)
                        return None
                    if isinstance(exc, Exception):
                        self._fail(node, exc)
                        return None
                    raise
                if not solo:
                    # The counts as the other workers left them.
                    rec = self.rec
                    steps = self.steps
                # `output is not None` first: a node that only writes state skips the type check.
                if after is None or ctx._checkpoint or (output is not None and type(output) is Next):
                    self._record(done, node, last, True, rec, steps)
                    return node, (ctx, output, start)
                rec += 1
                writes = view._writes
                if writes or view._copies is not None:
                    if view._copies is None and start == rec - 1 and not rules:
                        # `_merge` for plain writes (no deletion, no copied value) onto the latest
                        # state (`base`), without merge rules.
                        self.state = base | writes
                        if not solo:
                            written = (node, rec)
                            for key in writes:
                                writers[key] = written
                    else:
                        self._record(done, node, last, True, rec, steps)
                        if not self._merged(node, view.diff(), start):
                            return None
                        view._copies = None
                if getrefcount(ctx) != ctx_refs or getrefcount(view) != view_refs:
                    view = object.__new__(StateView)
                    view._copies = None
                    ctx = object.__new__(NodeContext)
                    ctx.state = view
                    ctx._checkpoint = False
                    _current_context.set(ctx)
                done.append(node)
                executed((node, output))
                latest[node] = output
                history.last_output = output
                if link is not None and remaining[link] == 1:
                    # A chain link: ready now, run next with the state as merged.
                    node = link
                    last = output
                    base = self.state
                    start = rec
                else:
                    self._record(done, None, None, False, rec, steps)
                    ready: list[str] = []
                    for dst in after:
                        self._resolve(dst, True, output, ready)
                    if not ready:
                        return None
                    node = ready[0]
                    last = self.pending[node]
                    base, start = self.bases.pop(node)
                    if len(ready) > 1:
                        self._dispatch(ready[1:])
                        solo = False
                try:
                    fn, after, link = direct[node]
                except KeyError:
                    self._record(done, node, last, False, rec, steps)
                    self.bases[node] = (base, start)
                    queue.appendleft(node)
                    return None
        finally:
            _current_context.reset(token)

    def _record(self, done: list[str], node: str | None, last: Any, started: bool, rec: int, steps: int) -> None:
        """Do the bookkeeping `_run_lean` deferred: the counts, `done` completed, then `node` ready with input `last`.

        `done[0]` was recorded ready; later ones, and `node` when `done` is not empty, were made
        ready by a chain link. `started`: `node` is running. Empties `done`.
        """
        self.rec = rec
        self.steps = steps
        if done:
            pending = self.pending
            del pending[done[0]]
            self.running.discard(done[0])
            status = self.status
            for name in done:
                status[name] = _SUCCESS
            linked = done[1:]
            if node is not None:
                linked.append(node)
                pending[node] = last
            remaining = self.remaining
            for name in linked:
                remaining[name] = 0
            self.activated.update(linked)
            if self.inbox:
                for name in linked:
                    self.inbox.pop(name, None)
            done.clear()
        if started:
            assert node is not None
            self.running.add(node)
            self.status[node] = _RUNNING

    async def _drive_layers(self, ready: list[str], parallel: bool) -> None:
        while ready and not self.stopping:
            for node in ready:
                self.bases[node] = (self.state, self.rec)
            outcomes: dict[str, tuple[NodeContext, Any, int]] = {}

            async def one(node: str, outcomes: dict[str, tuple[NodeContext, Any, int]] = outcomes) -> None:
                outcome = await self._execute(node)
                if outcome is not None:
                    outcomes[node] = outcome

            async with anyio.create_task_group() as tg:
                self._tg = tg
                for node in ready:
                    if parallel:
                        tg.start_soon(one, node)
                    elif not self.stopping:
                        await one(node)
            following: list[str] = []
            for node in ready:
                if node in outcomes and self.error is None:
                    try:
                        following += await self._finish(node, *outcomes[node])
                    except Exception as exc:
                        self._fail(node, exc)
            ready = sorted(set(following), key=self.plan.index.__getitem__)
            if self.outbox:
                await self._drain()
            if ready and self.journaling and not self.stopping:
                # The layer's completions become durable together, before the next layer starts.
                with anyio.CancelScope(shield=True):
                    await self._write_through(self.rec)

    async def _execute(self, node: str) -> tuple[NodeContext, Any, int] | None:
        """Run one node; None when it paused or failed (recorded on the run)."""
        if self.observed:
            return await self._execute_observed(node)
        return await self._execute_node(node)

    async def _execute_observed(self, node: str) -> tuple[NodeContext, Any, int] | None:
        # Node events wait in the outbox (synchronous bookkeeping records them) and are
        # delivered here, in order, before the next node starts and after each node.
        await self._drain()
        try:
            if self.trace:
                async with self.manager.operation(
                    "workflow.node", node, input=self.pending.get(node), attributes={"workflow": self.plan.name}
                ) as operation:
                    outcome = await self._execute_node(node)
                    if outcome is not None:
                        operation.output = outcome[1]
                    elif self.status.get(node) is NodeStatus.FAILED:
                        operation.error = (
                            self.error
                            if self.failed_node == node
                            else WorkflowError(f"node {node!r} failed after node {self.failed_node!r}")
                        )
                    else:
                        operation.attributes["interrupted"] = True
            else:
                outcome = await self._execute_node(node)
        except anyio.get_cancelled_exc_class():
            self._emit_hook("workflow.node.cancelled", {"node": node})
            raise
        finally:
            await self._drain()
        if outcome is None and self.status.get(node) is NodeStatus.FAILED:
            await self._publish("workflow.node.failed", {"node": node, "error": repr(self.error)})
        return outcome

    async def _execute_node(self, node: str) -> tuple[NodeContext, Any, int] | None:
        # Count a step and mark `node` running, with its context and the record number its state
        # view starts at; over `max_steps`, the run fails.
        steps = self.steps = self.steps + 1
        if self.max_steps is not None and steps > self.max_steps:
            self._fail_steps(node)
            return None
        found = self.bases.pop(node, None)
        base, start = found if found is not None else (self.state, self.rec)
        ctx = NodeContext(node, self.input, StateView(base), self.history, self.pending[node], self.session_id)
        if self.resume_values:
            ctx._resume = self.resume_values.pop(node, _KEEP)
        self.running.add(node)
        self.status[node] = _RUNNING
        if self.emitting:
            self._emit("workflow.node.started", {"node": node})
            await self._drain()
        spec = self.plan.nodes[node]
        token = _current_context.set(ctx)
        try:
            kind = spec.kind
            if spec.timeout is None:
                if kind == ASYNC:
                    output = await spec.target(ctx)
                else:
                    output = await self._call(kind, spec.target, ctx, ctx._last)
            else:
                with anyio.fail_after(spec.timeout):
                    output = await self._call(kind, spec.target, ctx, ctx._last)
        except Interrupt as signal:
            self._pause(node, signal)
            return None
        except Exception as exc:
            if isinstance(exc, TimeoutError) and spec.timeout is not None:
                exc = WorkflowTimeoutError(f"node {node!r} ran longer than its timeout of {spec.timeout}s")
            self._fail(node, exc)
            return None
        finally:
            _current_context.reset(token)
        return ctx, output, start

    def _fail_steps(self, node: str) -> None:
        self._fail(
            node,
            WorkflowMaxStepsExceeded(
                f"workflow {self.plan.name!r} exceeded max_steps={self.max_steps} at node {node!r}; "
                "raise max_steps or add an exit condition to the loop"
            ),
        )

    def _pause(self, node: str, signal: Interrupt) -> None:
        # The node stays pending: a resume runs it again from its start.
        self.running.discard(node)
        self.status[node] = NodeStatus.PENDING
        self.interrupts.append(signal)
        self.stopping = True

    async def _call(self, kind: int, target: Any, ctx: NodeContext, last: Any) -> Any:
        if kind == ASYNC:
            return await target(ctx)
        if kind == SYNC:
            return await anyio.to_thread.run_sync(target, ctx)
        if kind == AGENT:
            return await self._run_agent(target, ctx, last)
        result = await target.execute(last)
        if result.paused:
            raise WorkflowError(
                f"nested workflow {target.name!r} paused at {result.interrupted_node!r}; "
                "interrupts inside nested workflows are not supported, interrupt in the outer node instead"
            )
        return result.output

    async def _run_agent(self, agent: Any, ctx: NodeContext, last: Any) -> Any:
        # An agent paused on tools that need approval pauses the workflow at this node; the
        # decisions given to `Workflow.resume` continue that agent run (not a new one).
        # So does a team whose agent members pause (`gecko.compose._approvals`).
        from gecko.compose._approvals import approval_pause, resume_pause

        paused = self.approvals.get(ctx.node)
        if paused is not None and ctx._resume is not _KEEP:
            decisions, ctx._resume = ctx._resume, _KEEP
            output = await resume_pause(agent, decisions, paused["approval"])
            del self.approvals[ctx.node]
        else:
            output = await agent.run(last)
        pause = approval_pause(output)
        if pause is not None:
            raise Interrupt(ctx.node, {"approval": pause})
        return output

    def _fail(self, node: str, exc: BaseException) -> None:
        self.running.discard(node)
        self.status[node] = NodeStatus.FAILED
        if self.error is None:
            self.error = exc
            self.failed_node = node
        self.stopping = True
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    # --- completion --------------------------------------------------------------------

    async def _finish(self, node: str, ctx: NodeContext, output: Any, start: int) -> list[str]:
        """Merge a finished node and return the nodes it made ready."""
        if self._lock is None:
            return await self._finish_now(node, ctx, output, start)
        # Async conditions suspend mid-completion: completions take turns and are never cut short.
        with anyio.CancelScope(shield=True):
            async with self._lock:
                ready = await self._finish_now(node, ctx, output, start)
        return ready

    async def _finish_now(self, node: str, ctx: NodeContext, output: Any, start: int) -> list[str]:
        settled = self._settle(node, ctx, output, start)
        if settled is None:
            return []
        return await self._follow(node, *settled)

    def _settle(self, node: str, ctx: NodeContext, output: Any, start: int) -> tuple[Any, Next | None] | None:
        """Merge a finished node's writes and journal it; its output and jump, or None when it failed."""
        view = ctx.state
        assert isinstance(view, StateView)
        # While `_copies` is None the writes are the whole diff (`StateView.diff` has nothing to add).
        plain = view._copies is None
        writes = view._writes if plain else view.diff()
        jump: Next | None = None
        if type(output) is Next:
            jump = output
            self._check_jump(node, jump)
            if jump.update_state:
                writes.update(jump.update_state)
            output = ctx._last if jump.input is None else jump.input
        self.running.discard(node)
        rec = self.rec = self.rec + 1
        # Without a deletion or a copied value (`plain`), merge rules or a completion merged since the
        # view was taken, `_merge` is the writes laid over the state: no conflict is possible.
        if plain and start == rec - 1 and not self.rules:
            if writes:
                self.state = self.state | writes
                written = (node, rec)
                writers = self.writers
                for key in writes:
                    writers[key] = written
        elif not self._merged(node, writes, start):
            return None
        if ctx._checkpoint:
            self.manual = True
        if self.journaling:
            record: dict[str, Any] = {
                "n": node,
                "o": output if type(output) in _ATOMS else storable(output, f"the output of node {node!r}"),
            }
            if writes:
                # A copy of the writes minus deletions, each value `storable` (atoms are their own).
                stored = record["d"] = writes.copy()
                deleted = []
                for key, value in writes.items():
                    if type(key) is not str:
                        raise UnstorableValueError(
                            f"state key {key!r} ({type(key).__name__}) written by node {node!r} would come back "
                            "as a string; state keys are str"
                        )
                    if type(value) in _ATOMS:
                        continue
                    if value is DELETED:
                        deleted.append(key)
                        del stored[key]
                    else:
                        stored[key] = storable(value, f"state key {key!r} written by node {node!r}")
                if deleted:
                    record["x"] = deleted
            if jump is not None:
                record["j"] = [jump.node, storable(jump.input, f"the jump input of node {node!r}")]
            self.journal.append([rec, record])
        if self.emitting:
            self._emit("workflow.node.finished", {"node": node, "output": to_json(output)})
            if writes:
                self._emit(
                    "workflow.state.diff",
                    {
                        "node": node,
                        "set": to_json({k: v for k, v in writes.items() if v is not DELETED}),
                        "deleted": [k for k, v in writes.items() if v is DELETED],
                    },
                )
        return output, jump

    async def _follow(self, node: str, output: Any, jump: Next | None) -> list[str]:
        """The nodes a settled node makes ready, once its record is as durable as the strategy asks."""
        if jump is None and node in self.plan.unconditional:
            ready = self._complete_unconditional(node, output)
        else:
            try:
                ready = await self._complete(node, output, jump)
            except WorkflowError as exc:
                self._fail(node, exc)
                return []
        if self.journaling:
            if not await self._make_durable(ready):
                return []
        elif self.manual and self.store is not None:
            self.manual = False
            await self.snapshot("running")
        return ready

    async def _make_durable(self, ready: list[str]) -> bool:
        """Wait until the latest record is as durable as the strategy asks; False if a write failed."""
        if self._behind is None:
            # Layered runs write once per layer, before the next layer starts (`_drive_layers`).
            return True
        if self.stopping or not (ready or self.running or self.queue):
            # No successor will start: the run's final snapshot, written before it returns, covers it.
            return True
        if self.lag and self.rec - self.durable <= self.lag:
            if not self._flushing:
                self._flushing = True
                self._behind.start_soon(self._flush_behind)
            # One loop turn, so the writer hands its batch to storage (or picks up the next one
            # once its write returned) before the successors run: the journal trails the nodes
            # by about one write even when they never suspend.
            await anyio.lowlevel.cancel_shielded_checkpoint()
            return True
        # ALWAYS, or ASYNC with the writer `max_lag` records behind (backpressure): `_write_through`,
        # without its coroutine.
        try:
            await self._flush_through(self.rec)
        except Exception as exc:
            self._fail_checkpoint(exc)
            return False
        return True

    async def _write_through(self, record: int) -> bool:
        try:
            await self._flush_through(record)
        except Exception as exc:
            self._fail_checkpoint(exc)
            return False
        return True

    def _check_jump(self, node: str, jump: Next) -> None:
        if jump.node not in self.plan.nodes:
            raise WorkflowError(
                f"node {node!r} jumped to unknown node {jump.node!r}; {unknown_node_hint(jump.node, self.plan.nodes)}"
            )
        declared = self.plan.nodes[node].jumps
        if declared and jump.node not in declared:
            raise WorkflowError(
                f"node {node!r} jumped to {jump.node!r}, which is not among the jumps it declares "
                f"({sorted(declared)}); add it to the node's jumps="
            )
        if not self.plan.allow_cycles and self.status.get(jump.node) is NodeStatus.SUCCESS:
            raise WorkflowError(
                f"node {node!r} jumped back to {jump.node!r}, which already ran: that is a cycle; "
                "pass allow_cycles=True (and a max_steps bound)"
            )

    def _merged(self, node: str, writes: dict[str, Any], start: int | None) -> bool:
        """`_merge` the completion counted in `rec`; on a conflict, uncount it, fail the run and return False."""
        try:
            self._merge(node, writes, start)
        except WorkflowStateConflict as exc:
            self.rec -= 1
            self._fail(node, exc)
            return False
        return True

    def _merge(self, node: str, writes: dict[str, Any], start: int | None) -> None:
        # `start` is the record number the node's state view was taken at (None: no check, a replay).
        if not writes:
            return
        rules = self.rules
        writers = self.writers
        rec = self.rec
        if start is not None and start < rec - 1:
            # Other completions merged since the view was taken: check every key before changing
            # anything, so a conflict leaves the run consistent.
            for key in writes:
                last = writers.get(key)
                if last is not None and last[1] > start and key not in rules:
                    raise WorkflowStateConflict(
                        f"nodes {last[0]!r} and {node!r} ran concurrently and both wrote state key {key!r}; "
                        f"declare a merge rule (merge_rules={{{key!r}: 'append'}}) or order them with an edge"
                    )
        state = self.state.copy()
        written = (node, rec)
        for key, value in writes.items():
            rule = rules.get(key) if rules else None
            if rule is not None:
                if value is not DELETED:
                    state[key] = self._fold(key, rule, state.get(key, MISSING), node, value)
                    continue
                self.rule_logs.pop(key, None)
            writers[key] = written
            if value is DELETED:
                state.pop(key, None)
            else:
                state[key] = value
        self.state = state

    def _fold(self, key: str, rule: Callable[[Any, Any], Any], current: Any, node: str, value: Any) -> Any:
        # Contributions under a merge rule are ordered by the node's topological rank (then record
        # number), not by completion time, so eager runs merge exactly like layered ones. The log
        # holds the contributions since the last loop re-arm, with the value they started from.
        entry = (self.plan.rank[node], self.rec, value)
        log = self.rule_logs.get(key)
        if log is None:
            log = self.rule_logs[key] = (current, [])
        entries = log[1]
        if not entries or entry[:2] > entries[-1][:2]:
            entries.append(entry)
            return rule(current, value)
        entries.append(entry)
        entries.sort(key=lambda item: item[:2])
        folded = log[0]
        for _, _, contribution in entries:
            folded = rule(folded, contribution)
        return folded

    def _complete_unconditional(self, node: str, output: Any) -> list[str]:
        # `_complete` for a node whose edges all go forward without a condition (no await needed).
        self.status[node] = _SUCCESS
        history = self.history  # `History.record`, spelled out
        history._entries.append((node, output))
        history._latest[node] = output
        history.last_output = output
        del self.pending[node]
        ready: list[str] = []
        for dst, _ in self.plan.forward[node]:
            self._resolve(dst, True, output, ready)
        return ready

    async def _complete(self, node: str, output: Any, jump: Next | None) -> list[str]:
        self.status[node] = _SUCCESS
        self.history.record(node, output)
        del self.pending[node]
        ready: list[str] = []
        plan = self.plan
        if jump is None and not plan.back[node]:
            for dst, condition in plan.forward[node]:
                self._resolve(dst, condition is None or await self._check(condition, node, dst), output, ready)
            return ready
        targets: list[str] = []
        if jump is not None:
            targets.append(jump.node)
        else:
            for dst, condition in plan.back[node]:
                if condition is None or await self._check(condition, node, dst):
                    targets.append(dst)
        region: frozenset[str] = frozenset()
        if targets:
            for target in targets:
                region = region | plan.region(target)[1]
        for dst, condition in plan.forward[node]:
            if dst in region:
                continue
            taken = jump is None and (condition is None or await self._check(condition, node, dst))
            self._resolve(dst, taken, output, ready)
        for target in targets:
            self._rearm(target, output, ready)
        return ready

    async def _check(self, condition: Callable[[Any], Any], node: str, dst: str) -> bool:
        # Conditions read the merged state; the proxy makes writes fail (and count as false).
        state = cast("MutableMapping[str, Any]", MappingProxyType(self.state))
        ctx = NodeContext(node, self.input, state, self.history, self.history.last_output, self.session_id)
        try:
            verdict = condition(ctx)
            if hasattr(verdict, "__await__"):
                verdict = await verdict
            return bool(verdict)
        except Exception:
            logger.warning("condition on edge %r -> %r raised; treating it as false", node, dst, exc_info=True)
            return False

    def _resolve(self, dst: str, taken: bool, value: Any, ready: list[str]) -> None:
        if taken:
            self.activated.add(dst)
            left = self.remaining[dst] = self.remaining[dst] - 1
            if left:
                self.inbox[dst] = value
                return
            # The last predecessor's value is the input (an earlier one's waits in the inbox).
            inbox = self.inbox
            if inbox:
                inbox.pop(dst, None)
            self.pending[dst] = value
            self.bases[dst] = (self.state, self.rec)
            ready.append(dst)
            return
        # A skipped edge: a node that no taken edge reaches is skipped, and so are its edges.
        stack = [dst]
        forward = self.plan.forward
        while stack:
            name = stack.pop()
            left = self.remaining[name] - 1
            self.remaining[name] = left
            if left:
                continue
            if name in self.activated:
                self.pending[name] = self.inbox.pop(name)
                self.bases[name] = (self.state, self.rec)
                ready.append(name)
                continue
            self.status[name] = NodeStatus.SKIPPED
            if self.emitting:
                self._emit("workflow.node.skipped", {"node": name})
            stack.extend(following for following, _ in reversed(forward[name]))

    def _rearm(self, target: str, value: Any, ready: list[str]) -> None:
        # A new loop round: earlier contributions are settled into the state as they are.
        self.rule_logs.clear()
        order, members = self.plan.region(target)
        busy = members & self.running
        if busy:
            raise WorkflowError(
                f"cannot re-run {target!r} while {sorted(busy)} (downstream of it) are still running; "
                "jump only into parts of the graph that are idle"
            )
        for name in order:
            self.status.pop(name, None)
            self.activated.discard(name)
            self.inbox.pop(name, None)
            self.pending.pop(name, None)
            self.bases.pop(name, None)
        # A re-armed node waits for its predecessors inside the region, and for those outside it
        # that have yet to finish or be skipped in this round (a node outside the entry point's
        # reach that is not running is a jump target nobody jumped to: it never fires).
        static = self.plan.region(self.plan.entry)[1]
        status = self.status
        for name in order:
            self.remaining[name] = sum(
                1
                for src in self.plan.predecessors[name]
                if src in members or status.get(src) is NodeStatus.RUNNING or (src not in status and src in static)
            )
        if ready:
            ready[:] = [name for name in ready if name not in members]
        if self.queue:
            kept = [name for name in self.queue if name not in members]
            self.queue.clear()
            self.queue.extend(kept)
        self.activated.add(target)
        self.pending[target] = value
        self.bases[target] = (self.state, self.rec)
        ready.append(target)

    # --- checkpoints and events --------------------------------------------------------------

    async def _flush_behind(self) -> None:
        # The journal writer of an eager ASYNC run: writes every batch merged while the previous
        # write was in flight, in record order, until the journal is empty or the run stops (a
        # pause, failure or cancellation is then covered by the final snapshot of everything merged).
        try:
            while self.journal and not self.stopping:
                with anyio.CancelScope(shield=True):
                    await self.flush()
        except Exception as exc:
            self._fail_checkpoint(exc)
        finally:
            self._flushing = False

    def _fail_checkpoint(self, exc: Exception) -> None:
        # A failed journal write stops the run; the completed nodes stay completed (the failure
        # snapshot records them), no node is blamed.
        if not isinstance(exc, GeckoError):
            wrapped = CheckpointError(f"could not write the journal of session {self.session_id!r}: {exc!r}")
            wrapped.__cause__ = exc
            exc = wrapped
        if isinstance(exc, StorageError):
            self.store_failed = True
        if self.error is None:
            self.error = exc
        self.stopping = True
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def flush(self) -> None:
        """Write the journal records merged so far; concurrent callers share one write (group commit)."""
        await self._flush_through(self.rec)

    async def _flush_through(self, record: int) -> None:
        # Group commit: a caller whose record went out in another caller's write only waits for it.
        store = self.store
        if store is None:
            return
        while self.durable < record:
            if self._writing:
                await self._claim_writer()
            else:
                self._writing = True  # uncontended: no coroutine to claim it
            try:
                if self.durable >= record:
                    return
                if not self.journal:
                    raise CheckpointError(
                        f"the journal write holding record {record} of session {self.session_id!r} failed"
                    )
                if store.snapshot_due or not self.snapshotted:
                    # A run's first write is a snapshot, so its records never follow an older run's.
                    await self._write_snapshot(store, "running")
                else:
                    records, self.journal = self.journal, []
                    await store.write_entry(self.run_id, records)
                    self.durable = records[-1][0]
            finally:
                if self._writer_done is None:
                    self._writing = False
                else:
                    self._release_writer()

    def capture(self, status: str) -> dict[str, Any]:
        """The whole run as JSON data; running nodes stay pending so a resume runs them again."""
        history = self.history
        indegree = self.plan.indegree
        interrupt = self.interrupts[0] if self.interrupts else None
        if interrupt is None and self.approvals:
            # A resume whose decisions the agent refused leaves the approval pause in place.
            node, payload = next(iter(self.approvals.items()))
            interrupt = Interrupt(node, payload)
        return {
            "format": FORMAT,
            "run": self.run_id,
            "rec": self.rec,
            "status": status,
            "saved_at": time.time(),
            "graph": self.plan.shape,
            "input": storable(self.input, "the workflow input"),
            "state": storable(self.state, "the state", keyed=True),
            "history": {
                "entries": [
                    [node, output if type(output) in _ATOMS else storable(output, f"the output of node {node!r}")]
                    for node, output in history._entries
                ],
                "latest": {
                    node: output if type(output) in _ATOMS else storable(output, f"the output of node {node!r}")
                    for node, output in history._latest.items()
                },
                "last": storable(history.last_output, "the last output"),
            },
            "pending": {
                name: value if type(value) in _ATOMS else storable(value, f"the input of node {name!r}")
                for name, value in self.pending.items()
            },
            "inbox": {
                name: value if type(value) in _ATOMS else storable(value, f"the input of node {name!r}")
                for name, value in self.inbox.items()
            },
            "remaining": {name: left for name, left in self.remaining.items() if left != indegree[name]},
            "activated": sorted(self.activated),
            "nodes": {name: _STORED_STATUS[value] for name, value in self.status.items()},
            "steps": self.steps - len(self.running),
            "merges": {
                key: {
                    "base": [] if base is MISSING else [storable(base, f"state key {key!r}")],
                    "log": [
                        [rank, rec, storable(value, f"a contribution to state key {key!r}")] for rank, rec, value in log
                    ],
                }
                for key, (base, log) in self.rule_logs.items()
            },
            "interrupt": None
            if interrupt is None
            else {
                "node": interrupt.node,
                "payload": storable(interrupt.payload, f"the interrupt payload of node {interrupt.node!r}"),
            },
            **({"trace": dict(self.carrier)} if self.carrier else {}),
        }

    async def snapshot(self, status: str) -> None:
        """Write a full snapshot; it covers every record merged so far."""
        if self.store is None:
            return
        await self._claim_writer()
        try:
            await self._write_snapshot(self.store, status)
        finally:
            self._release_writer()

    async def _claim_writer(self) -> None:
        # One checkpoint write at a time, so entry numbers and versions follow merge order. A
        # plain flag (the loop is single-threaded) keeps the uncontended path free of a checkpoint.
        # The event exists only while someone waits, so a write nobody waits for creates none.
        while self._writing:
            if self._writer_done is None:
                self._writer_done = anyio.Event()
            await self._writer_done.wait()
        self._writing = True

    def _release_writer(self) -> None:
        self._writing = False
        done, self._writer_done = self._writer_done, None
        if done is not None:
            done.set()

    async def _write_snapshot(self, store: CheckpointStore, status: str) -> None:
        data = self.capture(status)
        covered = self.rec
        self.journal = []
        await store.write_snapshot(data)
        self.durable = covered
        self.snapshotted = True

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        """Queue an event for the stream and for the `gecko_event` hook."""
        if self.sink is not None or self.hook_events:
            self.outbox.append((Event(type=kind, source=self.plan.name, run_id=self.run_id, data=data), True))

    def _emit_hook(self, kind: str, data: dict[str, Any]) -> None:
        """Queue an event for the `gecko_event` hook only (run-level events the stream reports itself)."""
        if self.hook_events:
            self.outbox.append((Event(type=kind, source=self.plan.name, run_id=self.run_id, data=data), False))

    async def _publish(self, kind: str, data: dict[str, Any]) -> None:
        self._emit_hook(kind, data)
        await self._drain()

    async def _drain(self) -> None:
        # Outside any shield: a reader that falls behind by the buffer's size pauses the run here.
        # Hook delivery is shielded so every observer sees each event it was promised.
        while self.outbox:
            event, streamed = self.outbox.popleft()
            if streamed and self.sink is not None:
                await self.sink.send(event)
            if self.hook_events:
                with anyio.CancelScope(shield=True):
                    await self.manager.event(event)
