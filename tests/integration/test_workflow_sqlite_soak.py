"""20 000 steps of a cycle with 1 KB outputs under ALWAYS on sqlite: flat memory, a small file, one write a step."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from gecko.compose.nodes import NodeContext
from gecko.compose.workflow import CheckpointStrategy, Workflow
from gecko.plugins.storage.factory import create_storage

pytestmark = pytest.mark.slow

STEPS = 20_000


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_long_cycle_keeps_memory_and_the_database_flat_and_writes_once_per_step(tmp_path: Path) -> None:
    async def main() -> tuple[int, int, int]:
        async with await create_storage(f"sqlite:///{tmp_path / 'soak.db'}") as storage:
            checkpoint_writes = 0
            put = storage._raw_put  # type: ignore[attr-defined]

            async def counting_put(key: str, *args: Any, **options: Any) -> int:
                nonlocal checkpoint_writes
                checkpoint_writes += key.startswith("gecko/workflow/")
                return int(await put(key, *args, **options))

            storage._raw_put = counting_put  # type: ignore[attr-defined]
            payload = "x" * 1024

            async def count(ctx: NodeContext) -> str:
                ctx.state["n"] = ctx.state.get("n", 0) + 1
                return payload

            wf = Workflow(
                "soak", storage=storage, checkpoint_strategy=CheckpointStrategy.ALWAYS, allow_cycles=True,
                max_steps=STEPS + 1,
            )  # fmt: skip
            wf.add_node("count", count).add_node("done", lambda ctx: "done").set_entry_point("count")
            wf.add_edge("count", "count", condition=lambda ctx: ctx.state["n"] < STEPS)
            wf.add_edge("count", "done", condition=lambda ctx: ctx.state["n"] >= STEPS)
            before = resident_bytes()
            result = await wf.execute(session_id="soak")
            growth = resident_bytes() - before
        assert result.state == {"n": STEPS}
        return result.steps, checkpoint_writes, growth

    steps, writes, growth = anyio.run(main)
    assert steps == STEPS + 1
    # One durable write per step: the run's first is its snapshot, its last node's is the final snapshot.
    assert writes == steps
    assert growth < 10 * 2**20
    assert (tmp_path / "soak.db").stat().st_size < 5 * 2**20
