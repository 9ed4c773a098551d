"""Tampered checkpoints on `memory://` end in typed errors (the suite every storage backend runs)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable
from typing import Any

import pytest

from gecko.compose.nodes import NodeContext
from gecko.compose.workflow import Workflow
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.conformance import CheckpointIntegrityConformance


class TestMemoryCheckpointIntegrity(CheckpointIntegrityConformance):
    @pytest.fixture
    def storage_url(self) -> str:
        return "memory://"


class _Crash(BaseException):
    """Stands for the worker process dying: no final snapshot."""


async def test_resumed_run_never_wraps_the_journal_onto_entries_its_snapshot_does_not_cover() -> None:
    storage = MemoryStorage()
    runs: Counter[str] = Counter()
    crash_at: set[str] = {"n3"}

    def node(name: str) -> Any:
        async def run(ctx: NodeContext) -> int:
            runs[name] += 1
            if name in crash_at:
                raise _Crash
            ctx.state["count"] = ctx.state.get("count", 0) + 1
            return runs[name]

        return run

    def chain() -> Workflow:
        # A ring of 4 slots: three entries after a snapshot, then the next write is a snapshot.
        wf = Workflow("ring", storage=storage, snapshot_every=4, scheduling="layered", lease_ttl=None)
        for index in range(8):
            wf.add_node(f"n{index}", node(f"n{index}"))
            if index:
                wf.add_edge(f"n{index - 1}", f"n{index}")
        return wf.set_entry_point("n0")

    async def crash(run: Awaitable[Any]) -> None:
        try:
            await run
        except BaseException as exc:
            nested = getattr(exc, "exceptions", ())
            if not (isinstance(exc, _Crash) or (nested and all(isinstance(inner, _Crash) for inner in nested))):
                raise

    # Entries 1-3 (n0-n2) follow the first snapshot; after the resume n3 and n4 complete, n5 dies.
    await crash(chain().execute(session_id="s"))
    crash_at = {"n5"}
    await crash(chain().resume("s"))
    crash_at = set()
    result = await chain().resume("s")
    assert result.state == {"count": 8}
    assert runs == Counter(n0=1, n1=1, n2=1, n3=2, n4=1, n5=2, n6=1, n7=1)
