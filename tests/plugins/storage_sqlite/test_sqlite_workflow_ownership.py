"""Workflow ownership on SQLite: a stale lease holder never commits, a second worker is turned away."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from gecko.compose._checkpoint import CheckpointStore
from gecko.compose.nodes import NodeContext
from gecko.compose.workflow import Workflow
from gecko.errors import SessionLeaseLost, SessionOwnedElsewhere
from gecko.plugins.storage import Storage
from gecko.plugins.storage.factory import create_storage


def two_steps(storage: Storage, second: Any, **options: Any) -> Workflow:
    wf = Workflow("stale", storage=storage, **options).add_node("first", lambda ctx: "one")
    return wf.add_node("second", second).add_edge("first", "second").set_entry_point("first")


def take_over_in_another_thread(url: str, session_id: str) -> Any:
    """Another worker (own thread, loop and connection) resumes the session once the lease lapses."""

    async def other_worker() -> Any:
        async with await create_storage(url) as storage:
            wf = two_steps(storage, lambda ctx: "by-the-other-worker")
            while True:
                try:
                    return await wf.resume(session_id)
                except SessionOwnedElsewhere:
                    await anyio.sleep(0.05)

    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(anyio.run(other_worker)))
    thread.start()
    thread.join()
    return outcome[0]


async def test_a_stale_lease_holders_checkpoint_write_is_rejected(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'workflow.db'}"
    taken_over: list[Any] = []

    async def paused_worker(ctx: NodeContext) -> str:
        # This event loop is blocked, as in a stopped process, while the other worker finishes.
        taken_over.append(take_over_in_another_thread(url, "s1"))
        return "by-the-paused-worker"

    async with await create_storage(url) as storage:
        with pytest.raises(SessionLeaseLost):
            await two_steps(storage, paused_worker, lease_ttl=0.5).execute(session_id="s1")
        assert taken_over[0].output == "by-the-other-worker"
        stored = await CheckpointStore(storage, "stale", "s1").load()
        assert stored is not None
        assert stored.snapshot["history"]["entries"] == [["first", "one"], ["second", "by-the-other-worker"]]


async def test_a_second_worker_on_another_connection_gets_session_owned_elsewhere(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'workflow.db'}"
    started, release = anyio.Event(), anyio.Event()

    async def slow(ctx: NodeContext) -> str:
        started.set()
        await release.wait()
        return "done"

    async def never(ctx: NodeContext) -> str:
        raise AssertionError("the second worker must not run a node")

    async with await create_storage(url) as first, await create_storage(url) as second, anyio.create_task_group() as tg:
        tg.start_soon(lambda: two_steps(first, slow).execute(session_id="s1"))
        await started.wait()
        with pytest.raises(SessionOwnedElsewhere):
            await two_steps(second, never).execute(session_id="s1")
        release.set()
