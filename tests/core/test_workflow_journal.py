"""The ALWAYS journal of eager runs: written behind the nodes, in order, and never losing a completion."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from gecko.compose._checkpoint import CheckpointStore
from gecko.compose.nodes import NodeContext
from gecko.compose.workflow import Workflow
from gecko.errors import StorageUnavailableError
from gecko.plugins.storage.memory import MemoryStorage


class SuspendingMemoryStorage(MemoryStorage):
    """memory:// whose writes yield to the event loop, as every real backend's do."""

    async def _raw_put(self, key: str, text: str, **options: Any) -> int:
        await anyio.lowlevel.checkpoint()
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


async def durable_records(storage: MemoryStorage, workflow: str, session: str) -> int:
    checkpoint = await CheckpointStore(storage, workflow, session).load()
    return 0 if checkpoint is None else checkpoint.snapshot["rec"] + len(checkpoint.records)


def chain(name: str, storage: MemoryStorage, nodes: dict[str, Any]) -> Workflow:
    wf = Workflow(name, storage=storage, lease_ttl=None)
    previous = None
    for node, run in nodes.items():
        wf.add_node(node, run)
        if previous is not None:
            wf.add_edge(previous, node)
        previous = node
    return wf.set_entry_point(next(iter(nodes)))


async def test_journal_follows_a_chain_of_nodes_that_never_suspend() -> None:
    storage = SuspendingMemoryStorage()
    seen: list[int] = []

    async def step(ctx: NodeContext) -> None:
        # What the journal holds as this node starts (memory:// reads never yield).
        seen.append(await durable_records(storage, "follow", "f1"))
        ctx.state["count"] = ctx.state.get("count", 0) + 1

    await chain("follow", storage, {f"n{i}": step for i in range(12)}).execute(session_id="f1")
    # The k-th node (k from 1) starts after k - 1 completions; all but the last write or two are durable.
    assert all(count >= k - 3 for k, count in enumerate(seen, start=1)), seen


async def test_failed_journal_write_fails_the_run_and_keeps_merged_nodes_completed() -> None:
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
    checkpoint = await CheckpointStore(storage, "flaky", "s1").load()
    assert checkpoint is not None
    done = {name for name, status in checkpoint.snapshot["nodes"].items() if status == "success"}
    # The first entry (A) was written; the nodes in the failed second one are completed all the same.
    assert len(done) >= 2
    before = dict(runs)
    result = await chain("flaky", storage, nodes).resume("s1")
    assert result.state["total"] == 4
    assert not {name for name in done if runs[name] != before[name]}
