"""The workflow engine: a graph of nodes run as soon as their own predecessors are done.

Semantics in short:

- Scheduling counts dependencies: a node starts the moment every predecessor has finished or
  been skipped, never waiting for an unrelated slower node (`scheduling="layered"` runs whole
  topological layers in lockstep instead, which fixes the merge order completely).
- Each running node gets a copy-on-write view of the state and the one shared history; its
  writes merge when it finishes. A key written by a node that ran concurrently (and was not
  visible to the writer) is a `WorkflowStateConflict` unless the key has a merge rule.
- Conditional edges (sync or async; raising counts as false) skip nodes; skipped nodes are not
  in the history and their descendants are skipped unless another taken path reaches them.
- `Next(node)` jumps to any node, also one no edge reaches; `jumps=` on a node declares its
  targets (checked at build time, drawn by `to_mermaid()`).
- With storage, what a crash costs is the checkpoint strategy's choice (`CheckpointStrategy`:
  ALWAYS, ASYNC, FINAL, MANUAL); the table of what each writes and what a crash re-runs is in
  the README ("A durable workflow") and on the documentation site's workflow page.
  Nodes run at least once, so nodes with outside effects should be idempotent. A checkpoint
  write that fails (the storage gone past its retries) stops the run before any successor of
  that node starts, with the storage's error (`StorageUnavailableError`).
- Reusing a session id: an unfinished session is resumed (another input is refused with
  `SessionInputMismatch`); a finished one runs again from the start with the new input.
- An agent node whose tool needs approval pauses the run (`result.interrupt["approval"]` lists the
  pending calls); `resume(session_id, value={call_id: True | False})` continues that agent run.
  So does a team node whose agent members pause (under RACE only when no member finished; each
  pending call names its `member_index`): the resume continues the paused members, with the events
  of a team run, and keeps the others' results (`gecko.compose._approvals`).
- On storage with leases (memory://, sqlite://, redis://) a run owns its session: it holds a
  renewed lease, every checkpoint write is fenced by it, a second worker gets
  `SessionOwnedElsewhere`, a dead holder on the same host is taken over at once, and a session
  that stops its worker `max_attempts` times in a row is parked (`WorkflowParked`). See
  `gecko.compose._ownership`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import anyio

from gecko._checks import positive_seconds
from gecko.compose._graph import AGENT, ASYNC, SYNC, CheckpointStrategy, NodeSpec, Plan, compile_plan, node_kind
from gecko.compose._state import History, MergeRule, resolve_merge_rule
from gecko.compose.nodes import NodeStatus
from gecko.compose.stored_types import register_node_types, register_stored_type
from gecko.core._sanitize import text_of
from gecko.errors import (
    CheckpointError,
    ConfigurationError,
    FencingError,
    GeckoError,
    InvalidKeyError,
    SessionInputMismatch,
    SessionLeaseLost,
    WorkflowDefinitionError,
    WorkflowError,
    WorkflowTimeoutError,
)
from gecko.plugins import aplugin_manager
from gecko.plugins.storage import Lease, Storage
from gecko.redaction import redacting_logger

if TYPE_CHECKING:
    # Imported where used: the run engine, checkpoints and ownership (and pydantic behind them)
    # load on the first run, so `from gecko import Workflow` stays light.
    from gecko.compose._checkpoint import Checkpoint, CheckpointStore
    from gecko.compose._engine import Run
    from gecko.compose._ownership import SessionOwnership
    from gecko.plugins.executors import Executor
    from gecko.types import Event

__all__ = ("CheckpointStrategy", "Workflow", "WorkflowResult", "register_stored_type")

logger = redacting_logger("gecko.workflow")

_NO_VALUE: Any = object()
_SAVE_BOUND_S = 10.0
# Events a `stream()` reader may fall behind by before the run waits for it.
_STREAM_BUFFER = 64


@dataclass
class WorkflowResult:
    """The outcome of `execute` or `resume`.

    Attributes:
        output: The last output (of the node that finished last).
        state: The final state.
        session_id: Pass it to `resume` to continue a paused or interrupted run.
        status: "completed" or "paused".
        history: The run's history (outputs by node name; skipped nodes absent).
        node_status: Every node that ran or was skipped, with its status.
        steps: How many node executions the run took, including resumed parts.
        interrupt: The payload a node passed to `interrupt()`, when paused.
        interrupted_node: The node that asked for input, when paused.
    """

    output: Any
    state: dict[str, Any]
    session_id: str
    status: Literal["completed", "paused"]
    history: History
    node_status: dict[str, NodeStatus] = field(default_factory=dict)
    steps: int = 0
    interrupt: Any = None
    interrupted_node: str | None = None

    @property
    def paused(self) -> bool:
        """Whether the run waits for `resume(session_id, value)`."""
        return self.status == "paused"

    def __str__(self) -> str:
        return str(self.output)


class Workflow:
    """A graph of nodes with conditional edges, jumps, copy-on-write state and checkpoints.

    Args:
        name: Names the workflow in checkpoints, events and errors.
        storage: Where checkpoints go (`await create_storage(url)`); None keeps nothing durable.
        checkpoint_strategy: ALWAYS, ASYNC, FINAL or MANUAL (see `CheckpointStrategy`).
        enable_parallel: Run independent nodes concurrently; False runs one node at a time in layer order.
        allow_cycles: Permit cycles (back edges and backward `Next` jumps).
        max_steps: Bound on node executions per run; defaults to 1000 when cycles are allowed.
        timeout: Seconds the whole run may take before `WorkflowTimeoutError`.
        merge_rules: State key -> "append", "add", "merge" (dict) or `fn(current, contribution)`;
            under a rule a node's write is a contribution merged into the current value.
        scheduling: "eager" (dependency counting) or "layered" (lockstep topological layers).
        history_limit: How many executions the history retains (latest output per node always kept).
        snapshot_every: Journal entries between snapshots; also the number of journal slots kept.
        snapshot_bytes: Journal bytes between snapshots: once the entries written since the last
            snapshot hold this many bytes (of JSON), the next write is a snapshot, so the journal
            holds at most this plus one entry; a resumed run counts the entries it finds. None
            bounds the journal by `snapshot_every` only.
        max_lag: Under `CheckpointStrategy.ASYNC`, how many completed nodes the journal may trail
            the run by before nodes wait for the writer.
        fence: A storage lease you hold yourself, passed to every checkpoint write; it replaces the
            automatic ownership below, and a stale one fails the run with `FencingError`.
        lease_ttl: Seconds of the session lease a run holds (renewed every third of it) when the
            storage declares `capabilities.leases`; None turns ownership and parking off.
        max_attempts: Starts of one session in a row that may end without a recorded outcome (the
            worker crashed or was killed) before the next start parks it; None never parks.
        checkpoint_key: Seals every checkpoint record with HMAC-SHA256 under this key (at least
            16 bytes), so edits by anyone without it are refused on load; None reads the
            `GECKO_CHECKPOINT_KEY` environment variable, and without either a plain SHA-256
            digest catches accidental corruption only (see `gecko.core._stored`).
        executor: Runs every function node elsewhere (a Dask cluster: `gecko-ai-executor-dask`);
            such nodes are module-level functions or `@step`s the workers import, and see the
            input, their last output and the state as JSON (see `gecko.compose.remote`). Agent and
            nested-workflow nodes stay in this process. None runs every node here.
    """

    def __init__(
        self,
        name: str,
        *,
        storage: Storage | None = None,
        checkpoint_strategy: CheckpointStrategy = CheckpointStrategy.ALWAYS,
        enable_parallel: bool = True,
        allow_cycles: bool = False,
        max_steps: int | None = None,
        timeout: float | None = None,
        merge_rules: Mapping[str, MergeRule] | None = None,
        scheduling: Literal["eager", "layered"] = "eager",
        history_limit: int = 1000,
        snapshot_every: int = 64,
        snapshot_bytes: int | None = 16 * 1024 * 1024,
        max_lag: int = 64,
        fence: Lease | None = None,
        lease_ttl: float | None = 30.0,
        max_attempts: int | None = 3,
        checkpoint_key: bytes | str | None = None,
        executor: Executor | None = None,
    ) -> None:
        if scheduling not in ("eager", "layered"):
            raise ConfigurationError(f"scheduling must be 'eager' or 'layered', got {scheduling!r}")
        if snapshot_every < 2:
            raise ConfigurationError(f"snapshot_every must be at least 2, got {snapshot_every}")
        if snapshot_bytes is not None and snapshot_bytes < 1:
            raise ConfigurationError(f"snapshot_bytes must be at least 1 (or None), got {snapshot_bytes}")
        if max_lag < 1:
            raise ConfigurationError(f"max_lag must be at least 1, got {max_lag}")
        if history_limit < 1:
            raise ConfigurationError(f"history_limit must be at least 1, got {history_limit}")
        positive_seconds(lease_ttl, "lease_ttl")
        if max_attempts is not None and max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1 or None, got {max_attempts!r}")
        if not isinstance(name, str) or not name or "/" in name:
            raise ConfigurationError(
                f"a workflow name must be non-empty text without '/' (it is a part of checkpoint keys), got {name!r}"
            )
        self.name = name
        self.storage = storage
        self.checkpoint_strategy = CheckpointStrategy(checkpoint_strategy)
        self.enable_parallel = enable_parallel
        self.allow_cycles = allow_cycles
        self.max_steps = max_steps if max_steps is not None else (1000 if allow_cycles else None)
        self.timeout = positive_seconds(timeout, "timeout")
        self.scheduling = scheduling
        self.history_limit = history_limit
        self.snapshot_every = snapshot_every
        self.snapshot_bytes = snapshot_bytes
        self.max_lag = max_lag
        self.fence = fence
        self.lease_ttl = lease_ttl
        self.max_attempts = max_attempts
        from gecko.core._stored import resolve_checkpoint_key

        self._checkpoint_key = resolve_checkpoint_key(checkpoint_key)
        self.executor = executor
        self._nodes: dict[str, NodeSpec] = {}
        self._edges: list[tuple[str, str, Callable[[Any], Any] | None]] = []
        self._entry: str | None = None
        self._rules: dict[str, Callable[[Any, Any], Any]] = {}
        self._plan: Plan | None = None
        self._settings: tuple[Any, ...] = ()
        self._local: Storage | None = None
        for key, rule in (merge_rules or {}).items():
            self.set_merge_rule(key, rule)

    # --- building ------------------------------------------------------------------------

    def add_node(
        self,
        name: str,
        node: Any,
        *,
        timeout: float | None = None,
        writes: tuple[str, ...] = (),
        jumps: tuple[str, ...] = (),
    ) -> Workflow:
        """Add a node: a function `fn(ctx)` (sync or async) or `@step`, an agent or team
        (`async run(input)`, given the last output), or another `Workflow`.

        A node that no edge reaches runs only when another node returns `Next` to it.

        Args:
            name: Unique node name.
            node: What runs.
            timeout: Seconds this node may run (overrides the step's own timeout).
            writes: State keys the node writes, checked against parallel branches at build time.
            jumps: Nodes this node may return `Next` to: checked at build time (a typo fails with
                a hint), drawn dashed by `to_mermaid()`, and the only targets it may jump to.
        """
        if name in self._nodes:
            raise WorkflowDefinitionError(f"node {name!r} already exists; node names must be unique")
        kind, target, own_timeout, declared, own_jumps = node_kind(node)
        if kind == AGENT:
            register_node_types(target)
        self._nodes[name] = NodeSpec(
            name,
            target,
            kind,
            positive_seconds(timeout, f"node {name!r} timeout") if timeout is not None else own_timeout,
            declared | frozenset(writes),
            own_jumps | frozenset(jumps),
        )
        self._plan = None
        return self

    def add_edge(self, src: str, dst: str, condition: Callable[[Any], Any] | None = None) -> Workflow:
        """Run `dst` after `src`; with `condition(ctx) -> bool` (sync or async) only when it holds."""
        self._edges.append((src, dst, condition))
        self._plan = None
        return self

    def set_entry_point(self, name: str) -> Workflow:
        """The node a run starts with."""
        self._entry = name
        self._plan = None
        return self

    def set_merge_rule(self, key: str, rule: MergeRule) -> Workflow:
        """Let concurrent nodes write `key`: "append", "add", "merge" or `fn(current, contribution)`.

        Contributions are folded in the graph's topological order (not completion order), so
        order-sensitive rules such as "append" give the same state on every run and in both
        scheduling modes. A loop round settles the contributions made so far.
        """
        self._rules[key] = resolve_merge_rule(key, rule)
        self._plan = None
        return self

    def compile(self) -> Plan:
        """Validate the graph and freeze it with the run settings into a `Plan` (done before each run).

        Raises:
            WorkflowDefinitionError: what is wrong with the graph and how to fix it.
        """
        # Settings changed on the builder since the last compile are taken by the next run.
        settings = (
            self.name,
            self.checkpoint_strategy,
            self.allow_cycles,
            self.max_steps,
            self.history_limit,
            self.executor,
        )
        if self._plan is None or settings != self._settings or self.max_lag != self._plan.max_lag:
            self._settings = settings
            self._plan = compile_plan(
                self.name,
                self._entry,
                self._nodes if self.executor is None else self._remote_nodes(self.executor),
                self._edges,
                rules=self._rules,
                allow_cycles=self.allow_cycles,
                max_steps=self.max_steps,
                history_limit=self.history_limit,
                strategy=self.checkpoint_strategy,
                max_lag=self.max_lag,
            )
        return self._plan

    def _remote_nodes(self, executor: Executor) -> dict[str, NodeSpec]:
        """The nodes with every function node sent to `executor` (agents and nested workflows stay here)."""
        from gecko.compose.remote import RemoteNode

        return {
            name: spec
            if spec.kind not in (ASYNC, SYNC)
            else replace(spec, target=RemoteNode(executor, spec.target, name), kind=ASYNC)
            for name, spec in self._nodes.items()
        }

    @property
    def layers(self) -> list[list[str]]:
        """The topological layers of the graph (back edges ignored)."""
        return [list(layer) for layer in self.compile().layers]

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart; conditional edges dashed, back edges labelled, declared
        jumps dashed and labelled `jump`."""
        plan = self.compile()
        ids = {name: f"n{position}" for position, name in enumerate(plan.nodes)}
        lines = ["flowchart TD"]
        for name, node_id in ids.items():
            label = name.replace('"', "'")
            shape = f'(["{label}"])' if name == plan.entry else f'["{label}"]'
            lines.append(f"    {node_id}{shape}")
        back = {(src, dst) for src, out in plan.back.items() for dst, _ in out}
        for src, dst, condition in self._edges:
            arrow = "-.->" if condition is not None else "-->"
            if (src, dst) in back:
                lines.append(f"    {ids[src]} {arrow}|loop| {ids[dst]}")
            else:
                lines.append(f"    {ids[src]} {arrow} {ids[dst]}")
        for src, dst in plan.jump_edges():
            lines.append(f"    {ids[src]} -.->|jump| {ids[dst]}")
        return "\n".join(lines)

    # --- running -------------------------------------------------------------------------

    async def execute(
        self,
        input: Any = None,
        *,
        session_id: str | None = None,
        start_node: str | None = None,
        _resume_context: Mapping[str, Any] | None = None,
    ) -> WorkflowResult:
        """Run the workflow, or continue the unfinished run of `session_id`.

        Reusing a session id: an unfinished session (interrupted, failed, timed out, crashed) is
        resumed, which is how a crashed script recovers by running again; its input must be the
        one it started with (or None). A finished session is run again from the start with the
        new input, replacing its stored result.

        Args:
            input: The entry node's last output, and `ctx.input` for every node.
            session_id: Names the run's checkpoint (non-empty text without '/'); generated when omitted.
            start_node: Begin here instead of the entry point.
            _resume_context: Starting "state", "last_output" and "history" (a node -> output mapping).

        Raises:
            WorkflowError: a node failed (the cause is chained), a jump or merge was invalid.
            WorkflowStateConflict: concurrent nodes wrote one key without a merge rule.
            WorkflowMaxStepsExceeded: the run exceeded `max_steps`.
            WorkflowTimeoutError: the run or a node exceeded its timeout.
            CheckpointError: checkpoints could not be written or read (`CorruptCheckpointError`).
            SessionInputMismatch: the unfinished session started with another input.
            InvalidKeyError: `session_id` is empty or holds '/' or a character no storage key may hold.
        """
        return await self._run(input, session_id, start_node, _resume_context, resuming=False, value=_NO_VALUE)

    async def resume(self, session_id: str, value: Any = None) -> WorkflowResult:
        """Continue a paused or interrupted run; `value` is what the paused node's `interrupt()` returns.

        Completed nodes never run again; nodes that were running when the process stopped run again.

        Raises:
            CheckpointError: there is no checkpoint for `session_id` (a run's first write comes
                when its first node finishes; one stopped before that is started again by `execute`).
            CorruptCheckpointError: the checkpoint cannot be read.
        """
        return await self._run(None, session_id, None, None, resuming=True, value=value)

    async def stream(
        self, input: Any = None, *, session_id: str | None = None, start_node: str | None = None
    ) -> AsyncIterator[Event]:
        """Run the workflow, yielding `workflow.node.started` / `.finished` / `.skipped`,
        `workflow.state.diff` and finally `workflow.finished` or `workflow.paused` events.

        At most 64 events wait for the reader; a slower reader slows the run instead of growing
        memory. Use it as `async with contextlib.aclosing(wf.stream(x)) as events:` when you may
        stop early.
        """
        from gecko.compose._engine import to_json
        from gecko.types import Event

        send, receive = anyio.create_memory_object_stream[Event](_STREAM_BUFFER)
        failure: list[BaseException] = []

        async def produce() -> None:
            async with send:
                try:
                    result = await self._run(
                        input, session_id, start_node, None, resuming=False, value=_NO_VALUE, sink=send
                    )
                except Exception as exc:
                    failure.append(exc)
                    return
                kind = "workflow.paused" if result.paused else "workflow.finished"
                data = {"status": result.status, "output": to_json(result.output), "session_id": result.session_id}
                if result.paused:
                    data["interrupt"] = to_json(result.interrupt)
                    data["node"] = result.interrupted_node
                await send.send(Event(type=kind, source=self.name, run_id=result.session_id, data=data))

        async with receive, anyio.create_task_group() as tg:
            tg.start_soon(produce)
            async for event in receive:
                yield event
        if failure:
            raise failure[0]

    def _store(self, session_id: str) -> tuple[CheckpointStore, bool]:
        from gecko.compose._checkpoint import CheckpointStore

        storage = self.storage
        durable = storage is not None
        if storage is None:
            if self._local is None:
                from gecko.plugins.storage.memory import MemoryStorage

                self._local = MemoryStorage()
            storage = self._local
        store = CheckpointStore(
            storage,
            self.name,
            session_id,
            ring=self.snapshot_every,
            fence=self.fence,
            key=self._checkpoint_key,
            snapshot_bytes=self.snapshot_bytes,
        )
        return store, durable

    def _ownership(self, session_id: str) -> SessionOwnership | None:
        storage = self.storage
        if storage is None or self.fence is not None or self.lease_ttl is None or not storage.capabilities.leases:
            return None
        from gecko.compose._ownership import SessionOwnership

        return SessionOwnership(
            storage,
            self.name,
            session_id,
            ttl=self.lease_ttl,
            max_attempts=self.max_attempts,
            key=self._checkpoint_key,
        )

    async def unpark(self, session_id: str) -> None:
        """Clear the start count of a session parked by `WorkflowParked`, so it can be resumed again.

        Raises:
            SessionOwnedElsewhere: a worker is running the session.
            ConfigurationError: the workflow has no storage with leases (nothing is ever parked).
        """
        owner = self._ownership(session_id)
        if owner is None:
            raise ConfigurationError(
                f"workflow {self.name!r} does not own sessions (it needs storage with leases, no fence= and a "
                "lease_ttl), so none is ever parked"
            )
        await owner.acquire()
        try:
            await owner.clear()
        finally:
            await owner.release()

    async def _run(
        self,
        input: Any,
        session_id: str | None,
        start_node: str | None,
        resume_context: Mapping[str, Any] | None,
        *,
        resuming: bool,
        value: Any,
        sink: Any = None,
    ) -> WorkflowResult:
        plan = self.compile()
        if start_node is not None and start_node not in plan.nodes:
            raise WorkflowDefinitionError(f"start_node {start_node!r} is not a node; known: {sorted(plan.nodes)}")
        sid = _new_id() if session_id is None else _checked_session_id(session_id)
        owner = self._ownership(sid)
        if owner is None:
            return await self._run_session(
                plan, sid, session_id is not None, start_node, input, resume_context, resuming, value, sink, None
            )
        lease = await owner.acquire()
        result: WorkflowResult | None = None
        failure: Exception | None = None
        try:
            # The renewal task lives in a task group around the whole run, so the lease is kept
            # through loading, node execution and the final checkpoint; it adds no per-node work.
            async with anyio.create_task_group() as tg:
                tg.start_soon(owner.keep_renewed)
                try:
                    result = await self._run_session(
                        plan, sid, session_id is not None, start_node, input, resume_context, resuming, value, sink,
                        owner,
                    )  # fmt: skip
                except Exception as exc:
                    failure = exc
                finally:
                    tg.cancel_scope.cancel()
        finally:
            await owner.release()
        if isinstance(failure, FencingError):
            raise SessionLeaseLost(
                f"this worker lost the lease of session {sid!r} of workflow {self.name!r} (it paused longer than "
                f"lease_ttl={self.lease_ttl}s or the storage was unreachable that long) and another worker may run it "
                f"now; nothing was committed after lease token {lease.token}. Stop here; do not retry this run"
            ) from failure
        if failure is not None:
            raise failure
        assert result is not None
        return result

    async def _run_session(
        self,
        plan: Plan,
        sid: str,
        named: bool,
        start_node: str | None,
        input: Any,
        resume_context: Mapping[str, Any] | None,
        resuming: bool,
        value: Any,
        sink: Any,
        owner: SessionOwnership | None,
    ) -> WorkflowResult:
        from gecko.compose._engine import Run, to_json

        await aplugin_manager()  # hook plugins load off the event loop, before the run reads them
        store, durable = self._store(sid)
        if owner is not None:
            store.fence = owner.lease
        checkpoint: Checkpoint | None = None
        if named:
            checkpoint = await store.load()
        if resuming and checkpoint is None:
            raise CheckpointError(f"workflow {self.name!r} has no checkpoint for session {sid!r}; run execute() first")
        strategy = self.checkpoint_strategy
        if checkpoint is not None and checkpoint.snapshot["status"] == "completed":
            if resuming:
                return self._stored_result(plan, checkpoint, sid)
            checkpoint = None
        run_id = _new_id() if checkpoint is None else str(checkpoint.snapshot["run"])
        run = Run(plan, sid, run_id, store=store, durable=durable, sink=sink)
        if checkpoint is not None:
            if not resuming and input is not None and to_json(input) != to_json(checkpoint.snapshot["input"]):
                raise SessionInputMismatch(
                    f"session {sid!r} of workflow {self.name!r} is unfinished and started with input "
                    f"{checkpoint.snapshot['input']!r}, not {input!r}; call resume({sid!r}) (or execute with that "
                    "input) to finish it, or pass a new session_id to start another run"
                )
            if not resuming:
                logger.info("workflow %r resumes unfinished session %r", self.name, sid)
            await run.restore(checkpoint)
            paused = checkpoint.snapshot.get("interrupt")
            if value is not _NO_VALUE and isinstance(paused, dict):
                run.resume_values[paused["node"]] = value
        else:
            context = resume_context or {}
            for node, output in dict(context.get("history", {})).items():
                run.history.record(node, output)
            run.state = dict(context.get("state", {}))
            first = start_node or plan.entry
            run.start(first, context.get("last_output", input), input=input)
        if owner is not None:
            await owner.begin_attempt(sorted(run.pending))
        saves = durable and strategy is not CheckpointStrategy.MANUAL
        layered = self.scheduling == "layered" or not self.enable_parallel
        timed_out = False
        try:
            # Ownership cancels this scope the moment renewal finds the lease lost.
            with owner.scope if owner is not None else anyio.CancelScope():
                if self.timeout is None:
                    await run.drive(layered, self.enable_parallel)
                else:
                    with anyio.move_on_after(self.timeout) as scope:
                        await run.drive(layered, self.enable_parallel)
                    timed_out = scope.cancelled_caught
        except anyio.get_cancelled_exc_class():
            if saves and not run.store_failed:
                # The cancellation must propagate even when the snapshot cannot be written.
                try:
                    await self._save(run, "cancelled")
                except Exception:
                    logger.exception("workflow %r could not checkpoint cancelled session %r", self.name, sid)
            if owner is not None:
                await owner.end_attempt()
            raise
        if owner is not None and owner.lost is not None:
            raise FencingError(f"the lease of session {sid!r} was lost during the run: {owner.lost}") from owner.lost
        if timed_out:
            if saves:
                await self._save(run, "timeout")
            if owner is not None:
                await owner.end_attempt()
            raise WorkflowTimeoutError(
                f"workflow {self.name!r} did not finish within {self.timeout}s; nodes still running: "
                f"{sorted(run.running)}; resume session {sid!r} to continue"
            )
        if run.error is not None:
            error = run.error
            if isinstance(error, FencingError):
                raise error
            if saves and not run.store_failed:
                try:
                    await self._save(run, "failed")
                except Exception:
                    logger.exception("workflow %r could not checkpoint session %r after a failure", self.name, sid)
            if owner is not None and not run.store_failed:
                await owner.end_attempt()
            if isinstance(error, GeckoError):
                raise error
            raise WorkflowError(
                f"node {run.failed_node!r} of workflow {self.name!r} failed: {type(error).__name__}: {text_of(error)}; "
                f"fix the cause and resume session {sid!r}"
            ) from error
        if run.interrupts:
            await self._save(run, "paused")
            if owner is not None:
                await owner.end_attempt()
            signal = run.interrupts[0]
            return self._result(run, "paused", interrupt=signal.payload, node=signal.node)
        if saves:
            await self._save(run, "completed")
        if owner is not None:
            await owner.end_attempt()
        return self._result(run, "completed")

    async def _save(self, run: Run, status: str) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(_SAVE_BOUND_S):
            await run.snapshot(status)

    def _result(
        self, run: Run, status: Literal["completed", "paused"], *, interrupt: Any = None, node: str | None = None
    ) -> WorkflowResult:
        return WorkflowResult(
            output=run.history.last_output,
            state=run.state,
            session_id=run.session_id,
            status=status,
            history=run.history,
            node_status=dict(run.status),
            steps=run.steps,
            interrupt=interrupt,
            interrupted_node=node,
        )

    def _stored_result(self, plan: Plan, checkpoint: Checkpoint, session_id: str) -> WorkflowResult:
        snap = checkpoint.snapshot
        history = History(self.history_limit)
        for node, output in snap["history"]["entries"]:
            history.record(node, output)
        history._latest.update(snap["history"]["latest"])
        history.last_output = snap["history"]["last"]
        return WorkflowResult(
            output=history.last_output,
            state=dict(snap["state"]),
            session_id=session_id,
            status="completed",
            history=history,
            node_status={node: NodeStatus(value) for node, value in snap["nodes"].items() if node in plan.nodes},
            steps=snap["steps"],
        )

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, nodes={len(self._nodes)})"


def _checked_session_id(session_id: object) -> str:
    """`session_id` if it names one session's keys alone: `a/journal` would list among the keys of `a`.

    Raises:
        InvalidKeyError: not text, empty, or holding '/'.
    """
    if not isinstance(session_id, str) or not session_id or "/" in session_id:
        raise InvalidKeyError(
            f"a session id must be non-empty text without '/' (it is a part of checkpoint keys), got {session_id!r}"
        )
    return session_id


def _new_id() -> str:
    """A fresh session or run id: a random UUID's 32 hex digits."""
    import uuid  # with `platform` behind it: loaded by the first run, not by `from gecko import Workflow`

    return uuid.uuid4().hex
