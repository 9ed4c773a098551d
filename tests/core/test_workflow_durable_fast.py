"""The durable path's shortcuts (atoms stored without `storable`, plain writes merged without `_merge`, the
stored node statuses, the storage's cache of valid keys) store exactly what the general path stores."""

from __future__ import annotations

import json
from typing import Any

import anyio.lowlevel
import pytest

from gecko.compose import _engine
from gecko.compose.nodes import Next, NodeContext, NodeStatus
from gecko.compose.workflow import CheckpointStrategy, Workflow
from gecko.errors import InvalidKeyError, WorkflowStateConflict
from gecko.plugins import plugin_manager
from gecko.plugins.storage import _VALID_KEYS, _VALID_KEYS_KEPT, validate_key
from gecko.plugins.storage.memory import MemoryStorage

from .test_workflow_lean import Observer, observer  # noqa: F401


async def atoms(ctx: NodeContext) -> str:
    ctx.state.update(count=1, name="x", flag=True, empty=None, ratio=0.5, items=[1, 2], big=2**70)
    return "out"


async def copies(ctx: NodeContext) -> dict[str, Any]:
    ctx.state["items"].append(3)  # a copied value changed in place: not a plain write
    del ctx.state["empty"]
    return {"a": [1, 2.5], "b": None}


async def jumps(ctx: NodeContext) -> Next:
    return Next("floats", input=[False, "in"], update_state={"jumped": True, "at": 1.5})


async def floats(ctx: NodeContext) -> float:
    ctx.state["count"] = ctx.state["count"] + 1
    return 3.5


async def last(ctx: NodeContext) -> None:
    ctx.state["done"] = True


def durable(storage: MemoryStorage, *, rules: bool) -> Workflow:
    wf = Workflow(
        "fast",
        storage=storage,
        checkpoint_strategy=CheckpointStrategy.ALWAYS,
        snapshot_every=3,
        # A rule on a key no node writes: every merge goes through `_merge`, nothing else changes.
        merge_rules={"unused": "append"} if rules else None,
    )
    for fn in (atoms, copies, jumps, floats, last):
        wf.add_node(fn.__name__, fn)
    for src, dst in (("atoms", "copies"), ("copies", "jumps"), ("floats", "last")):
        wf.add_edge(src, dst)
    return wf.set_entry_point("atoms")


async def stored_after(storage: MemoryStorage, *, rules: bool) -> dict[str, str]:
    """Every key the run leaves, as JSON in stored key order, without what differs per run.

    That is the time, the run id, the seal and the trace context (a telemetry plugin, when
    installed, stores each run's own trace id there).
    """
    result = await durable(storage, rules=rules).execute(session_id="s")
    assert result.state["done"]
    assert result.state["items"] == [1, 2, 3]
    assert "empty" not in result.state
    stored: dict[str, str] = {}
    for key in await storage.list_keys("gecko/workflow/"):
        value = await storage.get(key)
        assert isinstance(value, dict)
        value.pop("saved_at", None)
        value.pop("run")
        value.pop("seal")
        value.pop("trace", None)
        stored[key] = json.dumps(value)
    return stored


async def test_journal_and_snapshots_match_the_general_path(
    monkeypatch: pytest.MonkeyPatch,
    observer: Observer,  # noqa: F811
) -> None:
    manager = plugin_manager()
    manager.unregister(observer)
    fast = await stored_after(MemoryStorage(), rules=False)
    assert any("/journal/" in key for key in fast)
    # Every value through `storable`, every merge through `_merge`.
    monkeypatch.setattr(_engine, "_ATOMS", frozenset())
    general = await stored_after(MemoryStorage(), rules=True)
    manager.register(observer, "test-workflow-observer")
    observed = await stored_after(MemoryStorage(), rules=True)
    assert fast == general == observed


@pytest.mark.parametrize("path", ["durable", "observed"])
async def test_a_plain_merge_still_marks_its_writes_for_concurrent_nodes(
    path: str,
    observer: Observer,  # noqa: F811
) -> None:
    # The first of two concurrent writers merges plainly; the second must still see its write as a conflict.
    async def root(ctx: NodeContext) -> None:
        return None

    async def writer(ctx: NodeContext) -> None:
        await anyio.lowlevel.checkpoint()
        ctx.state["x"] = ctx.node

    storage = MemoryStorage() if path == "durable" else None
    wf = Workflow("clash", storage=storage, checkpoint_strategy=CheckpointStrategy.ALWAYS)
    wf.add_node("root", root).add_node("w1", writer).add_node("w2", writer)
    wf.add_edge("root", "w1").add_edge("root", "w2").set_entry_point("root")
    manager = plugin_manager()
    if path == "durable":
        manager.unregister(observer)
    try:
        with pytest.raises(WorkflowStateConflict, match="'x'"):
            await wf.execute(session_id="clash")
    finally:
        if path == "durable":
            manager.register(observer, "test-workflow-observer")


def test_stored_statuses_are_the_ones_a_resume_reads() -> None:
    for status in NodeStatus:
        rerun = status in (NodeStatus.RUNNING, NodeStatus.FAILED)
        assert _engine._STORED_STATUS[status] == (NodeStatus.PENDING if rerun else status).value


def test_valid_keys_are_remembered_and_invalid_ones_always_refused() -> None:
    for bad in (["a"], "", "a\x00b", "x" * 513, "\ud800"):
        for _ in range(2):
            with pytest.raises(InvalidKeyError):
                validate_key(bad)
    for i in range(_VALID_KEYS_KEPT + 10):
        assert validate_key(f"k/{i}") == f"k/{i}"
        assert len(_VALID_KEYS) <= _VALID_KEYS_KEPT
    assert validate_key("k/é") == "k/é"
    assert "k/é" in _VALID_KEYS
