"""A lone worker's lean loop defers its bookkeeping: every way a run ends must record it as the observed path does."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from gecko.compose.nodes import NodeContext
from gecko.compose.workflow import CheckpointStrategy, Workflow
from gecko.errors import WorkflowError, WorkflowMaxStepsExceeded, WorkflowTimeoutError
from gecko.plugins import plugin_manager
from gecko.plugins.storage.memory import MemoryStorage

from .test_workflow_lean import Observer, chain, count, observer  # noqa: F401


async def outcome_of(wf: Workflow, sid: str) -> tuple[str, Any]:
    """How a run ends, and the snapshot it leaves (state, pending nodes, statuses, steps)."""
    try:
        result = await wf.execute(session_id=sid)
        ending: str = result.status
    except Exception as exc:
        ending = type(exc).__name__
    assert wf.storage is not None
    stored = await wf._store(sid)[0].load()
    assert stored is not None
    snap = stored.snapshot
    return ending, (snap["state"], snap["pending"], snap["nodes"], snap["steps"], snap["remaining"], snap["activated"])


def ending(kind: str) -> Workflow:
    """A 6-node chain with a 7th node that ends the run as `kind` says."""

    async def last(ctx: NodeContext) -> Any:
        if kind == "error":
            raise ValueError("boom")
        if kind == "interrupt":
            return ctx.interrupt("go on?")
        if kind == "timeout":
            await anyio.sleep(5)
        return "done"

    wf = chain(6, f"ending-{kind}", storage=MemoryStorage(), checkpoint_strategy=CheckpointStrategy.FINAL)
    if kind == "timeout":
        wf.timeout = 0.2
    if kind == "steps":
        wf.max_steps = 4
    return wf.add_node("last", last).add_edge("n5", "last")


@pytest.mark.parametrize("kind", ["finish", "error", "interrupt", "timeout", "steps"])
async def test_a_solo_chain_ends_and_snapshots_as_an_observed_one(observer: Observer, kind: str) -> None:  # noqa: F811
    manager = plugin_manager()
    manager.unregister(observer)
    lean = await outcome_of(ending(kind), "lean")
    manager.register(observer, "test-workflow-observer")
    observed = await outcome_of(ending(kind), "observed")
    assert lean == observed
    expected = {
        "finish": "completed",
        "error": WorkflowError.__name__,
        "interrupt": "paused",
        "timeout": WorkflowTimeoutError.__name__,
        "steps": WorkflowMaxStepsExceeded.__name__,
    }
    assert lean[0] == expected[kind]


async def test_contexts_kept_by_nodes_are_never_reused() -> None:
    kept: list[NodeContext] = []

    async def keep(ctx: NodeContext) -> int:
        kept.append(ctx)
        return await count(ctx)

    wf = chain(2, "keeping").add_node("k1", keep).add_node("mid", count).add_node("k2", keep).add_node("end", count)
    wf.add_edge("n1", "k1").add_edge("k1", "mid").add_edge("mid", "k2").add_edge("k2", "end")
    result = await wf.execute()
    assert result.state == {"count": 6}
    assert [ctx.node for ctx in kept] == ["k1", "k2"]
    assert [dict(ctx.state) for ctx in kept] == [{"count": 3}, {"count": 5}]
