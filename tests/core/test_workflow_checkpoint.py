"""Checkpoints through the storage contract (memory://): strategies, resume, retention, corruption."""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from gecko.compose._checkpoint import CheckpointStore
from gecko.compose.nodes import Next, NodeContext, NodeStatus
from gecko.compose.workflow import CheckpointStrategy, Workflow
from gecko.core._stored import SEAL_FIELD, Sealer
from gecko.errors import (
    CheckpointError,
    CorruptCheckpointError,
    FencingError,
    SessionInputMismatch,
    WorkflowError,
    WorkflowTimeoutError,
)
from gecko.plugins import hookimpl, plugin_manager
from gecko.plugins.storage import Storage, encode_value
from gecko.plugins.storage.factory import create_storage
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.conformance.checkpoints import reseal
from gecko.types import Event


@pytest.fixture
async def storage() -> Storage:
    return await create_storage("memory://")


class Flaky:
    """Nodes that record each execution; `fail` names nodes that raise until cleared."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.fail: set[str] = set()

    def node(self, name: str) -> Any:
        async def run(ctx: NodeContext) -> str:
            self.runs[name] += 1
            if name in self.fail:
                raise RuntimeError(f"{name} crashed")
            ctx.state[name] = ctx.get_last_output()
            return f"{name}<{ctx.get_last_output()}>"

        return run


def diamond(flaky: Flaky, storage: Storage | None, **options: Any) -> Workflow:
    wf = Workflow("diamond", storage=storage, **options)
    for name in ("A", "B", "C", "D", "E"):
        wf.add_node(name, flaky.node(name))
    wf.add_edge("A", "B").add_edge("A", "C").add_edge("B", "D").add_edge("C", "D").add_edge("D", "E")
    return wf.set_entry_point("A")


async def test_resume_after_failure_never_reruns_completed_nodes(storage: Storage) -> None:
    flaky = Flaky()
    flaky.fail = {"D"}
    wf = diamond(flaky, storage)
    with pytest.raises(WorkflowError, match="D crashed"):
        await wf.execute("in", session_id="s1")
    flaky.fail = set()
    result = await diamond(flaky, storage).resume("s1")
    assert result.output == "E<D<C<A<in>>>>" or result.output == "E<D<B<A<in>>>>"
    assert flaky.runs == Counter({"A": 1, "B": 1, "C": 1, "D": 2, "E": 1})


async def test_resumed_run_ends_with_same_state_as_uninterrupted_run(storage: Storage) -> None:
    flaky = Flaky()
    expected = await diamond(flaky, None).execute("in")
    flaky.fail = {"E"}
    with pytest.raises(WorkflowError):
        await diamond(flaky, storage).execute("in", session_id="s2")
    flaky.fail = set()
    resumed = await diamond(flaky, storage).resume("s2")
    assert resumed.state == expected.state
    assert resumed.output == expected.output


async def test_execute_with_unfinished_session_resumes_it(storage: Storage) -> None:
    flaky = Flaky()
    flaky.fail = {"E"}
    with pytest.raises(WorkflowError):
        await diamond(flaky, storage).execute("in", session_id="s3")
    flaky.fail = set()
    result = await diamond(flaky, storage).execute("in", session_id="s3")
    assert (result.status, flaky.runs["A"]) == ("completed", 1)


async def test_execute_of_an_unfinished_session_with_another_input_is_refused_not_ignored(storage: Storage) -> None:
    flaky = Flaky()
    flaky.fail = {"E"}
    with pytest.raises(WorkflowError):
        await diamond(flaky, storage).execute("in", session_id="s3b")
    flaky.fail = set()
    with pytest.raises(SessionInputMismatch, match="resume"):
        await diamond(flaky, storage).execute("other input", session_id="s3b")
    # No input means "whatever it started with": the seed's rerun-after-crash.
    result = await diamond(flaky, storage).execute(session_id="s3b")
    assert (result.status, result.state["A"], flaky.runs["A"]) == ("completed", "in", 1)


async def test_resume_of_completed_session_returns_stored_result_without_running(storage: Storage) -> None:
    flaky = Flaky()
    done = await diamond(flaky, storage).execute("in", session_id="s4")
    again = await diamond(flaky, storage).resume("s4")
    assert (again.output, again.state, again.status) == (done.output, done.state, "completed")
    assert flaky.runs["A"] == 1


async def test_execute_of_completed_session_starts_a_new_run(storage: Storage) -> None:
    flaky = Flaky()
    await diamond(flaky, storage).execute("first", session_id="s5")
    second = await diamond(flaky, storage).execute("second", session_id="s5")
    assert second.state["A"] == "second"
    assert flaky.runs["A"] == 2


async def test_resume_without_checkpoint_is_an_error(storage: Storage) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint for session 'missing'"):
        await diamond(Flaky(), storage).resume("missing")


async def test_resume_reevaluates_conditions_and_keeps_skips(storage: Storage) -> None:
    flaky = Flaky()
    wf = Workflow("cond", storage=storage)
    for name in ("A", "B", "C", "D"):
        wf.add_node(name, flaky.node(name))
    wf.add_edge("A", "B", condition=lambda ctx: ctx.state["A"] == "skip-b").add_edge("A", "C").add_edge("C", "D")
    wf.set_entry_point("A")
    flaky.fail = {"D"}
    with pytest.raises(WorkflowError):
        await wf.execute("go", session_id="c1")
    flaky.fail = set()
    result = await wf.resume("c1")
    assert result.node_status["B"] is NodeStatus.SKIPPED
    assert flaky.runs == Counter({"A": 1, "C": 1, "D": 2})


async def test_resume_of_loop_continues_where_it_stopped(storage: Storage) -> None:
    runs: Counter[int] = Counter()

    async def count(ctx: NodeContext) -> Any:
        n = ctx.state.get("n", 0) + 1
        runs[n] += 1
        if n == 40 and runs[n] == 1:
            raise RuntimeError("crash at 40")
        ctx.state["n"] = n
        return Next("count", input=n) if n < 60 else n

    wf = Workflow("loop", storage=storage, allow_cycles=True, snapshot_every=8)
    wf.add_node("count", count).set_entry_point("count")
    with pytest.raises(WorkflowError):
        await wf.execute(session_id="l1")
    result = await wf.resume("l1")
    assert result.output == 60
    assert runs[40] == 2
    assert [n for n, count in runs.items() if count != 1] == [40]
    assert sorted(runs) == list(range(1, 61))


async def test_always_keeps_storage_bounded_by_ring_and_snapshot(storage: Storage) -> None:
    async def count(ctx: NodeContext) -> Any:
        n = ctx.state.get("n", 0) + 1
        ctx.state["n"] = n
        return Next("count", input=n) if n < 500 else n

    wf = Workflow("bounded", storage=storage, allow_cycles=True, snapshot_every=8)
    wf.add_node("count", count).set_entry_point("count")
    await wf.execute(session_id="b1")
    assert len(await storage.list_keys("gecko/workflow/bounded/b1/")) <= 9


async def test_final_strategy_writes_only_a_snapshot_at_the_end(storage: Storage) -> None:
    keys_during: list[list[str]] = []

    async def probe(ctx: NodeContext) -> None:
        keys_during.append(await storage.list_keys("gecko/workflow/"))

    wf = Workflow("final", storage=storage, checkpoint_strategy=CheckpointStrategy.FINAL)
    wf.add_node("A", probe).add_node("B", probe).add_edge("A", "B").set_entry_point("A")
    await wf.execute(session_id="f1")
    assert keys_during == [[], []]
    assert await storage.list_keys("gecko/workflow/") == ["gecko/workflow/final/f1/snapshot"]


async def test_manual_strategy_writes_only_when_a_node_asks(storage: Storage) -> None:
    async def plain(ctx: NodeContext) -> None:
        return None

    async def asks(ctx: NodeContext) -> None:
        ctx.request_checkpoint()

    wf = Workflow("manual", storage=storage, checkpoint_strategy=CheckpointStrategy.MANUAL)
    wf.add_node("A", plain).add_node("B", asks).add_edge("A", "B").set_entry_point("A")
    quiet = Workflow("manual", storage=storage, checkpoint_strategy=CheckpointStrategy.MANUAL)
    quiet.add_node("A", plain).set_entry_point("A")
    await quiet.execute(session_id="m0")
    assert await storage.list_keys("gecko/workflow/manual/m0/") == []
    await wf.execute(session_id="m1")
    assert await storage.list_keys("gecko/workflow/manual/m1/") == ["gecko/workflow/manual/m1/snapshot"]


async def test_corrupt_snapshot_is_a_typed_error(storage: Storage) -> None:
    await storage.set("gecko/workflow/diamond/bad/snapshot", {"not": "a checkpoint"})
    with pytest.raises(CorruptCheckpointError, match="malformed"):
        await diamond(Flaky(), storage).resume("bad")


async def test_journal_gap_is_a_typed_error(storage: Storage) -> None:
    flaky = Flaky()
    flaky.fail = {"E"}
    with pytest.raises(WorkflowError):
        await diamond(flaky, storage, checkpoint_strategy=CheckpointStrategy.ALWAYS).execute("in", session_id="g")
    snapshot = await storage.get("gecko/workflow/diamond/g/snapshot")
    assert isinstance(snapshot, dict)
    # Roll the snapshot back to the start of the run (validly sealed) and lose the first journal entry.
    snapshot.update(status="running", rec=0)
    await reseal(storage, "gecko/workflow/diamond/g/snapshot", snapshot)
    assert await storage.delete("gecko/workflow/diamond/g/journal/0001")
    with pytest.raises(CorruptCheckpointError, match="has a gap after record 0"):
        await diamond(flaky, storage).resume("g")


async def test_checkpoint_from_other_graph_is_rejected(storage: Storage) -> None:
    flaky = Flaky()
    flaky.fail = {"B"}
    with pytest.raises(WorkflowError):
        await diamond(flaky, storage).execute("in", session_id="g1")
    other = Workflow("diamond", storage=storage).add_node("Z", flaky.node("Z")).set_entry_point("Z")
    with pytest.raises(CorruptCheckpointError, match="different graph"):
        await other.resume("g1")


async def test_two_writers_of_one_session_cannot_interleave(storage: Storage) -> None:
    first = CheckpointStore(storage, "shared", "w1")
    second = CheckpointStore(storage, "shared", "w1")
    await first.load()
    await second.load()
    await first.write_entry("run", [[1, {"n": "A"}]])
    with pytest.raises(CheckpointError, match="another worker"):
        await second.write_entry("run", [[1, {"n": "B"}]])


async def test_non_json_output_fails_checkpoint_with_typed_error(storage: Storage) -> None:
    wf = Workflow("json", storage=storage).add_node("A", lambda ctx: object()).set_entry_point("A")
    with pytest.raises(CheckpointError, match="must be JSON data"):
        await wf.execute(session_id="j1")


async def test_stale_fence_rejects_checkpoint_writes(storage: Storage) -> None:
    old = await storage.acquire_lease("session-lease", owner="me", ttl=30)
    assert old is not None
    await storage.acquire_lease("session-lease", owner="me", ttl=30)
    wf = Workflow("fenced", storage=storage, fence=old).add_node("A", lambda ctx: "a").set_entry_point("A")
    with pytest.raises(FencingError):
        await wf.execute(session_id="fence-1")


async def test_paused_run_resumes_in_a_fresh_workflow_instance(storage: Storage) -> None:
    from gecko.compose.nodes import interrupt

    def build() -> Workflow:
        async def ask(ctx: NodeContext) -> str:
            return f"answer={interrupt('question')}"

        wf = Workflow("hitl", storage=storage).add_node("first", lambda ctx: 1).add_node("ask", ask)
        return wf.add_edge("first", "ask").set_entry_point("first")

    paused = await build().execute(session_id="h1")
    assert paused.paused
    result = await build().resume("h1", "42")
    assert result.output == "answer=42"


@pytest.mark.idle_clock  # the timeout fires once fast is done and slow waits, however loaded the machine
async def test_timeout_checkpoints_and_resume_finishes(storage: Storage) -> None:
    gate = {"open": False}

    async def slow(ctx: NodeContext) -> str:
        if not gate["open"]:
            await anyio.sleep_forever()
        return "slow done"

    def build() -> Workflow:
        wf = Workflow("to", storage=storage, timeout=0.5, checkpoint_strategy=CheckpointStrategy.FINAL)
        wf.add_node("fast", lambda ctx: "fast").add_node("slow", slow)
        return wf.add_edge("fast", "slow").set_entry_point("fast")

    with pytest.raises(WorkflowTimeoutError, match=r"\['slow'\]"):
        await build().execute(session_id="t1")
    snapshot = await storage.get("gecko/workflow/to/t1/snapshot")
    assert isinstance(snapshot, dict)
    assert snapshot["status"] == "timeout"
    gate["open"] = True
    assert (await build().resume("t1")).output == "slow done"


async def test_outside_cancellation_awaits_nodes_and_checkpoints_for_resume(storage: Storage) -> None:
    started = anyio.Event()
    gate = {"open": False}
    cancelled: list[str] = []

    async def slow(ctx: NodeContext) -> str:
        if not gate["open"]:
            started.set()
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append(ctx.node)
                raise
        return "slow done"

    def build() -> Workflow:
        wf = Workflow("cancel", storage=storage, checkpoint_strategy=CheckpointStrategy.FINAL)
        wf.add_node("fast", lambda ctx: "fast").add_node("slow", slow)
        return wf.add_edge("fast", "slow").set_entry_point("fast")

    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(build().execute, session_id="c1"))
        await started.wait()
        tg.cancel_scope.cancel()
    assert cancelled == ["slow"]
    gate["open"] = True
    result = await build().resume("c1")
    assert result.output == "slow done"
    assert result.history["fast"] == "fast"


class SuspendingMemoryStorage(MemoryStorage):
    """memory:// whose writes yield to the event loop, as every real backend's do."""

    async def _raw_put(self, key: str, text: str, **options: Any) -> int:
        await anyio.lowlevel.checkpoint()
        return await super()._raw_put(key, text, **options)


async def test_parallel_completions_share_ordered_journal_writes() -> None:
    storage = SuspendingMemoryStorage()
    flaky = Flaky()
    wf = Workflow("fan", storage=storage, snapshot_every=4)
    wf.add_node("root", flaky.node("root")).add_node("join", flaky.node("join"))
    for i in range(12):
        wf.add_node(f"p{i}", flaky.node(f"p{i}")).add_edge("root", f"p{i}").add_edge(f"p{i}", "join")
    wf.set_entry_point("root")
    flaky.fail = {"join"}
    with pytest.raises(WorkflowError, match="join crashed"):
        await wf.execute("in", session_id="fan1")
    flaky.fail = set()
    result = await wf.resume("fan1")
    assert result.output == "join<" + result.history.entries()[-2][1] + ">"
    assert flaky.runs["root"] == 1
    assert all(flaky.runs[f"p{i}"] == 1 for i in range(12))


async def test_resumed_merge_rule_keeps_graph_order() -> None:
    storage = SuspendingMemoryStorage()
    crash = {"join": True}

    async def branch(ctx: NodeContext) -> None:
        for _ in range(8 - int(ctx.node[1:])):
            await anyio.lowlevel.checkpoint()
        ctx.state["log"] = [ctx.node]

    async def join(ctx: NodeContext) -> str:
        if crash["join"]:
            raise RuntimeError("join crashed")
        return "joined"

    wf = Workflow("ordered", storage=storage, merge_rules={"log": "append"}, snapshot_every=3)
    wf.add_node("root", lambda ctx: None).add_node("join", join)
    for i in range(8):
        wf.add_node(f"p{i}", branch).add_edge("root", f"p{i}").add_edge(f"p{i}", "join")
    wf.set_entry_point("root")
    with pytest.raises(WorkflowError):
        await wf.execute(session_id="o1")
    crash["join"] = False
    result = await wf.resume("o1")
    assert result.state["log"] == [f"p{i}" for i in range(8)]


async def test_a_snapshot_that_repeats_a_key_is_a_corrupt_checkpoint(storage: Storage) -> None:
    # A validly sealed snapshot with a decoy `state` ahead of the sealed one: a reader keeping the
    # last key resumes the sealed data, one keeping the first resumes the decoy; Gecko refuses both.
    flaky = Flaky()
    flaky.fail = {"E"}
    with pytest.raises(WorkflowError):
        await diamond(flaky, storage).execute("in", session_id="dup")
    where = "gecko/workflow/diamond/dup/snapshot"
    found = await storage.get_versioned(where)
    assert found is not None
    assert isinstance(found.value, dict)
    body = {name: value for name, value in found.value.items() if name != SEAL_FIELD}
    sealed = encode_value(Sealer(None).seal(body, where=where, version=found.version + 1))
    tampered = '{"state":{"A":"decoy"},' + sealed[1:]
    await storage._raw_put(where, tampered, ttl=None, fence=None, expected_version=None, check_version=False)
    flaky.fail = set()
    with pytest.raises(CorruptCheckpointError, match=r"unreadable: .* an object repeats the key 'state'"):
        await diamond(flaky, storage).resume("dup")
    assert (await storage._raw_get(where)) == (tampered, found.version + 1), "a refused resume changed the snapshot"
    assert flaky.runs["E"] == 1, "a node ran from a refused checkpoint"


class _Observer:
    """A `gecko_event` hook plugin: its presence makes every run observed (no lean path)."""

    @hookimpl
    async def gecko_event(self, event: Event) -> None:
        del event


def _changed(flaky: Flaky, storage: Storage, change: str) -> Workflow:
    """The diamond as a later version of the program defines it, changed as `change` says."""
    wf = Workflow("diamond", storage=storage)
    for name in ("A", "B", "C", "D", "E", *(["F"] if change == "a node added" else [])):
        wf.add_node(name, flaky.node(name))
    edges = {("A", "B"), ("A", "C"), ("B", "D"), ("C", "D"), ("D", "E")}
    if change == "an edge dropped":
        edges.discard(("C", "D"))
    if change == "an edge added":
        edges.add(("B", "E"))
    if change == "a node added":
        edges |= {("C", "F"), ("F", "D")}
    for src, dst in sorted(edges - ({("C", "D")} if change == "an edge made conditional" else set())):
        wf.add_edge(src, dst)
    if change == "an edge made conditional":
        wf.add_edge("C", "D", lambda state: True)
    return wf.set_entry_point("B" if change == "the entry moved" else "A")


@pytest.mark.parametrize("observed", [False, True], ids=["lean", "observed"])
@pytest.mark.parametrize("failing", ["C", "D"])
@pytest.mark.parametrize(
    "change", ["an edge dropped", "an edge added", "a node added", "the entry moved", "an edge made conditional"]
)
async def test_a_session_resumed_by_a_workflow_of_another_shape_is_refused_before_any_node_runs(
    storage: Storage, change: str, failing: str, observed: bool
) -> None:
    # Before the graph's shape was recorded, an edge dropped after C left D waiting forever (the run
    # ended with D and E never run) and an edge added to E left E never run.
    flaky = Flaky()
    flaky.fail = {failing}
    with pytest.raises(WorkflowError):
        await diamond(flaky, storage).execute("in", session_id="v1")
    flaky.fail = set()
    runs = Counter(flaky.runs)
    manager, observer = plugin_manager(), _Observer()
    if observed:
        manager.register(observer, "test-checkpoint-observer")
    try:
        with pytest.raises(CorruptCheckpointError, match="nodes, entry point or edges differ from this one's"):
            await _changed(flaky, storage, change).resume("v1")
    finally:
        if observed:
            manager.unregister(observer)
    assert flaky.runs == runs, "a node ran for a session of another graph"
    result = await diamond(flaky, storage).resume("v1")  # the workflow that wrote it resumes it
    assert set(result.state) == {"A", "B", "C", "D", "E"}
