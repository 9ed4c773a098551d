"""`WorkflowOwnershipConformance`: workflow session ownership on a shared, leasing storage backend.

For backends whose stores in separate connections (processes, threads) see the same data and
grant leases (`StorageCapabilities(leases=True, cross_process=True)`). Subclass it and provide
the fixture `storage_url`::

    class TestMyStoreOwnership(WorkflowOwnershipConformance):
        @pytest.fixture
        def storage_url(self, tmp_path):
            return f"mystore:///{tmp_path}/data"
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest

from gecko.compose.nodes import NodeContext
from gecko.compose.workflow import Workflow
from gecko.errors import SessionLeaseLost, SessionOwnedElsewhere
from gecko.plugins.storage import Storage
from gecko.plugins.storage.factory import create_storage

__all__ = ("WorkflowOwnershipConformance",)


def _two_steps(storage: Storage, second: Any, **options: Any) -> Workflow:
    workflow = Workflow("stale", storage=storage, **options).add_node("first", lambda ctx: "one")
    return workflow.add_node("second", second).add_edge("first", "second").set_entry_point("first")


def _take_over_in_another_thread(url: str, session_id: str) -> Any:
    """Another worker (own thread, event loop and connection) resumes the session once the lease lapses."""

    async def other_worker() -> Any:
        async with await create_storage(url, kind="kv") as storage:
            workflow = _two_steps(storage, lambda ctx: "by-the-other-worker")
            while True:
                try:
                    return await workflow.resume(session_id)
                except SessionOwnedElsewhere:
                    await anyio.sleep(0.05)

    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(anyio.run(other_worker)))
    thread.start()
    thread.join()
    return outcome[0]


class WorkflowOwnershipConformance:
    """One worker per session, and a worker that lost its lease never commits a checkpoint."""

    @pytest.fixture
    def storage_url(self) -> str:
        raise NotImplementedError("provide a `storage_url` fixture naming the backend under test")

    async def test_the_backend_declares_shared_leases(self, storage_url: str) -> None:
        async with await create_storage(storage_url, kind="kv") as storage:
            assert storage.capabilities.leases
            assert storage.capabilities.cross_process

    async def test_a_stale_lease_holders_checkpoint_write_is_rejected(self, storage_url: str) -> None:
        taken_over: list[Any] = []

        async def paused_worker(ctx: NodeContext) -> str:
            # This event loop is blocked, as in a stopped process, while the other worker finishes.
            taken_over.append(_take_over_in_another_thread(storage_url, "s1"))
            return "by-the-paused-worker"

        async with await create_storage(storage_url, kind="kv") as storage:
            with pytest.raises(SessionLeaseLost):
                await _two_steps(storage, paused_worker, lease_ttl=0.5).execute(session_id="s1")
            assert taken_over[0].output == "by-the-other-worker"
            resumed = await _two_steps(storage, lambda ctx: "never").resume("s1")
            assert resumed.status == "completed"
            assert resumed.history.entries() == [("first", "one"), ("second", "by-the-other-worker")]

    async def test_a_second_worker_on_another_connection_gets_session_owned_elsewhere(self, storage_url: str) -> None:
        started, release = anyio.Event(), anyio.Event()

        async def slow(ctx: NodeContext) -> str:
            started.set()
            await release.wait()
            return "done"

        async def never(ctx: NodeContext) -> str:
            raise AssertionError("the second worker must not run a node")

        async with (
            await create_storage(storage_url, kind="kv") as first,
            await create_storage(storage_url, kind="kv") as second,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(lambda: _two_steps(first, slow).execute(session_id="s1"))
            await started.wait()
            with pytest.raises(SessionOwnedElsewhere):
                await _two_steps(second, never).execute(session_id="s1")
            release.set()
