"""Durability of the journal: ALWAYS is durable before successors start; ASYNC trails by a bounded lag."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gecko.compose._checkpoint import CheckpointStore
from gecko.compose.nodes import Next, NodeContext
from gecko.compose.workflow import CheckpointStrategy, Workflow
from gecko.core._stored import Sealer
from gecko.errors import CheckpointError, ConfigurationError, StorageUnavailableError
from gecko.plugins.storage.memory import MemoryStorage


class SuspendingMemoryStorage(MemoryStorage):
    """memory:// whose writes yield to the event loop (several times), as every real backend's do."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    async def _raw_put(self, key: str, text: str, **options: Any) -> int:
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        self.writes += 1
        return await super()._raw_put(key, text, **options)


class FailingJournalStorage(SuspendingMemoryStorage):
    """Fails the `fail_at`-th journal entry write, once."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.entries = 0

    async def _raw_put(self, key: str, text: str, **options: Any) -> int:
        if "/journal/" in key:
            self.entries += 1
            if self.entries == self.fail_at:
                raise StorageUnavailableError("the disk went away for a moment")
        return await super()._raw_put(key, text, **options)


async def durable_nodes(storage: MemoryStorage, workflow: str, session: str) -> list[str]:
    """The node completions durable right now, in record order (memory:// reads never yield)."""
    checkpoint = await CheckpointStore(storage, workflow, session).load()
    if checkpoint is None:
        return []
    done = [node for node, _ in checkpoint.snapshot["history"]["entries"]]
    return done + [record["n"] for record in checkpoint.records]


def chain(name: str, storage: MemoryStorage, nodes: dict[str, Any], **options: Any) -> Workflow:
    wf = Workflow(name, storage=storage, lease_ttl=None, **options)
    previous = None
    for node, run in nodes.items():
        wf.add_node(node, run)
        if previous is not None:
            wf.add_edge(previous, node)
        previous = node
    return wf.set_entry_point(next(iter(nodes)))


@pytest.mark.parametrize("scheduling", ["eager", "layered"])
async def test_always_makes_each_node_durable_before_its_successor_starts(scheduling: str) -> None:
    storage = SuspendingMemoryStorage()
    seen: list[list[str]] = []

    async def step(ctx: NodeContext) -> None:
        seen.append(await durable_nodes(storage, "follow", "f1"))
        ctx.state["count"] = ctx.state.get("count", 0) + 1

    names = [f"n{i}" for i in range(12)]
    result = await chain("follow", storage, dict.fromkeys(names, step), scheduling=scheduling).execute(session_id="f1")
    assert seen == [names[:k] for k in range(12)]
    # One write per node: the first is the run's snapshot, the last node's is the final snapshot.
    assert storage.writes == result.steps == 12


async def test_always_group_commits_siblings_and_joins_wait_for_all_of_them() -> None:
    storage = SuspendingMemoryStorage()
    seen: dict[str, list[str]] = {}

    async def branch(ctx: NodeContext) -> str:
        return ctx.node

    async def join(ctx: NodeContext) -> None:
        seen[ctx.node] = await durable_nodes(storage, "fan", "s1")

    wf = Workflow("fan", storage=storage, lease_ttl=None).add_node("root", branch).add_node("join", join)
    for i in range(8):
        wf.add_node(f"b{i}", branch).add_edge("root", f"b{i}").add_edge(f"b{i}", "join")
    await wf.set_entry_point("root").execute(session_id="s1")
    assert sorted(seen["join"]) == sorted(["root", *(f"b{i}" for i in range(8))])
    # The eight siblings finish in one loop turn: far fewer writes than completions.
    assert storage.writes < 10


async def test_async_strategy_trails_the_nodes_by_at_most_max_lag_records() -> None:
    storage = SuspendingMemoryStorage()
    lags: list[int] = []
    started = 0

    async def step(ctx: NodeContext) -> None:
        nonlocal started
        lags.append(started - len(await durable_nodes(storage, "lag", "s1")))
        started += 1

    names = [f"n{i}" for i in range(60)]
    wf = chain("lag", storage, dict.fromkeys(names, step), checkpoint_strategy=CheckpointStrategy.ASYNC, max_lag=4)
    await wf.execute(session_id="s1")
    assert max(lags) <= 4, lags
    # It does run ahead of the journal (otherwise it would be ALWAYS) and writes fewer times.
    assert max(lags) > 0
    assert storage.writes < 60


async def test_failed_journal_write_stops_the_run_before_the_successor_and_resume_reruns_only_that_node() -> None:
    storage = FailingJournalStorage(fail_at=2)
    runs: Counter[str] = Counter()

    def node(name: str) -> Any:
        async def run(ctx: NodeContext) -> str:
            runs[name] += 1
            await anyio.lowlevel.checkpoint()
            ctx.state["total"] = ctx.state.get("total", 0) + 1
            return name

        return run

    nodes = {name: node(name) for name in ("A", "B", "C", "D")}
    with pytest.raises(StorageUnavailableError):
        await chain("flaky", storage, nodes).execute(session_id="s1")
    # A (snapshot) and B (entry 1) are durable; C's entry failed, so D never started.
    assert await durable_nodes(storage, "flaky", "s1") == ["A", "B"]
    assert runs == Counter({"A": 1, "B": 1, "C": 1})
    result = await chain("flaky", storage, nodes).resume("s1")
    assert result.state["total"] == 4
    assert runs == Counter({"A": 1, "B": 1, "C": 2, "D": 1})


async def test_a_run_ending_writes_its_last_completion_once_in_the_final_snapshot() -> None:
    storage = SuspendingMemoryStorage()

    async def only(ctx: NodeContext) -> str:
        return "done"

    result = await chain("single", storage, {"only": only}).execute(session_id="s1")
    assert (result.status, storage.writes) == ("completed", 1)
    assert await durable_nodes(storage, "single", "s1") == ["only"]


class MeasuredStorage(MemoryStorage):
    """memory:// that records the peak bytes its journal slots hold at once."""

    def __init__(self) -> None:
        super().__init__()
        self.slots: dict[str, int] = {}
        self.peak = 0

    async def _raw_put(self, key: str, text: str, **options: Any) -> int:
        if "/journal/" in key:
            self.slots[key] = len(text.encode())
            self.peak = max(self.peak, sum(self.slots.values()))
        return await super()._raw_put(key, text, **options)

    async def _raw_delete(self, key: str, fence: Any) -> bool:
        self.slots.pop(key, None)
        return await super()._raw_delete(key, fence)


def _looping(storage: MemoryStorage, steps: int, size: int, **options: Any) -> Workflow:
    def loop(ctx: NodeContext) -> Any:
        done = ctx.state.get("n", 0) + 1
        ctx.state["n"] = done
        return "end" if done >= steps else Next("loop", input="x" * size)

    wf = Workflow("big", storage=storage, allow_cycles=True, max_steps=steps + 1, lease_ttl=None, **options)
    return wf.add_node("loop", loop).set_entry_point("loop")


async def test_journal_bytes_past_snapshot_bytes_bring_the_next_snapshot_forward() -> None:
    size, bound = 10_000, 50_000
    unbounded, bounded = MeasuredStorage(), MeasuredStorage()
    assert (await _looping(unbounded, 40, size).execute(session_id="s")).output == "end"
    # Each record holds the 10 kB jump input: 40 entries stay in the ring of 64 without a bound.
    assert unbounded.peak > 39 * size
    result = await _looping(bounded, 40, size, snapshot_bytes=bound).execute(session_id="s")
    assert result.output == "end"
    # The entry that crosses the bound brings the snapshot, which deletes the obsolete slots.
    assert bound <= bounded.peak < bound + 2 * size
    assert (await _looping(bounded, 40, size, snapshot_bytes=bound).resume("s")).output == "end"


class DyingStorage(MeasuredStorage):
    """Measured memory:// that refuses every write from the `dies_at`-th journal entry on: a process that died there."""

    def __init__(self, dies_at: int) -> None:
        super().__init__()
        self.dies_at = dies_at
        self.entries = 0
        self.dead = False

    async def _raw_put(self, key: str, text: str, **options: Any) -> int:
        if "/journal/" in key:
            self.entries += 1
            self.dead = self.dead or self.entries == self.dies_at
        if self.dead:
            raise StorageUnavailableError("the process died")
        return await super()._raw_put(key, text, **options)


async def test_snapshot_bytes_bounds_the_journal_across_a_resume() -> None:
    size, bound = 10_000, 50_000
    storage = DyingStorage(dies_at=12)
    with pytest.raises(StorageUnavailableError):
        await _looping(storage, 40, size, snapshot_bytes=bound).execute(session_id="s")
    # The dead run left journal entries its last snapshot does not cover.
    left = sum(storage.slots.values())
    assert left >= 3 * size
    storage.dead, storage.peak = False, left

    assert (await _looping(storage, 40, size, snapshot_bytes=bound).resume("s")).output == "end"

    # The resumed run counts the entries it found, so the bound holds as in an uncrashed run.
    assert storage.peak < bound + 2 * size


def test_snapshot_bytes_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="snapshot_bytes"):
        Workflow("w", snapshot_bytes=0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=10,
)
journal_records = st.lists(
    st.tuples(st.integers(min_value=1), st.dictionaries(st.sampled_from("nodjx"), json_values)).map(list), max_size=3
)


@settings(max_examples=60, deadline=None)
@given(run=st.text(max_size=8), records=journal_records)
async def test_journal_entry_is_stored_as_exactly_the_sealed_text_of_its_record(
    run: str, records: list[list[Any]]
) -> None:
    storage = MemoryStorage()
    store = CheckpointStore(storage, "w", "s", ring=4, key=b"k" * 16)
    await store.write_entry("an earlier run", [])
    await store.write_entry(run, records)
    key = "gecko/workflow/w/s/journal/0002"
    stored = await storage._raw_get(key)
    entry = {"e": 2, "run": run, "recs": records}
    assert stored == (Sealer(b"k" * 16).seal_text(entry, where=key, version=1).text, 1)


@pytest.mark.parametrize(("run", "records"), [("r", [[1, {"o": float("nan")}]]), ("\ud800", [])])
async def test_journal_entry_that_is_not_json_data_is_a_checkpoint_error(run: str, records: list[list[Any]]) -> None:
    store = CheckpointStore(MemoryStorage(), "w", "s")
    with pytest.raises(CheckpointError, match="must be JSON data"):
        await store.write_entry(run, records)
