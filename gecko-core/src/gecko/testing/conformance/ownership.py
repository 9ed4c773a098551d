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

import dataclasses
import os
import subprocess
import sys
import threading
from typing import Any

import anyio
import pytest

from gecko.compose._ownership import LeaseHolder, lease_name
from gecko.compose.nodes import NodeContext
from gecko.compose.workflow import Workflow
from gecko.errors import FencingError, SessionLeaseLost, SessionOwnedElsewhere
from gecko.plugins.storage import Storage
from gecko.plugins.storage.factory import create_storage

__all__ = ("WorkflowOwnershipConformance",)


def _two_steps(storage: Storage, second: Any, **options: Any) -> Workflow:
    workflow = Workflow("stale", storage=storage, **options).add_node("first", lambda ctx: "one")
    return workflow.add_node("second", second).add_edge("first", "second").set_entry_point("first")


def _take_over_in_another_thread(url: str, session_id: str) -> Any:
    """Another worker (own thread, event loop and connection) resumes the session once the lease lapses."""

    async def other_worker() -> Any:
        async with await create_storage(url) as storage:
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


def _dead_pid() -> int:
    """The id of a process that has exited and been reaped."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return int(child.stdout)


async def _hold_as(storage: Storage, holder: LeaseHolder, session_id: str) -> Any:
    """Grant the session's lease to `holder`, as its run would have, for a long time."""
    return await storage.acquire_lease(lease_name("stale", session_id), owner=holder.owner(), ttl=60)


class WorkflowOwnershipConformance:
    """One worker per session, and a worker that lost its lease never commits a checkpoint."""

    @pytest.fixture
    def storage_url(self) -> str:
        raise NotImplementedError("provide a `storage_url` fixture naming the backend under test")

    async def test_the_backend_declares_shared_leases(self, storage_url: str) -> None:
        async with await create_storage(storage_url) as storage:
            assert storage.capabilities.leases
            assert storage.capabilities.cross_process

    async def test_a_stale_lease_holders_checkpoint_write_is_rejected(self, storage_url: str) -> None:
        taken_over: list[Any] = []

        async def paused_worker(ctx: NodeContext) -> str:
            # This event loop is blocked, as in a stopped process, while the other worker finishes.
            taken_over.append(_take_over_in_another_thread(storage_url, "s1"))
            return "by-the-paused-worker"

        async with await create_storage(storage_url) as storage:
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
            await create_storage(storage_url) as first,
            await create_storage(storage_url) as second,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(lambda: _two_steps(first, slow).execute(session_id="s1"))
            await started.wait()
            with pytest.raises(SessionOwnedElsewhere):
                await _two_steps(second, never).execute(session_id="s1")
            release.set()

    async def test_a_lease_held_by_a_dead_owner_is_taken_over_only_by_name_and_fences_it_out(
        self, storage_url: str
    ) -> None:
        async with await create_storage(storage_url) as storage:
            first = await storage.acquire_lease("gecko/take-over", owner="dead", ttl=60)
            assert first is not None
            assert await storage.lease_owner("gecko/take-over") == "dead"
            assert await storage.acquire_lease("gecko/take-over", owner="new", ttl=60, replacing="other") is None
            taken = await storage.acquire_lease("gecko/take-over", owner="new", ttl=60, replacing="dead")
            assert taken is not None
            assert taken.token > first.token
            assert await storage.lease_owner("gecko/take-over") == "new"
            with pytest.raises(FencingError):
                await storage.set("gecko/take-over-data", 1, fence=first)
            await storage.set("gecko/take-over-data", 2, fence=taken)

    async def test_a_session_whose_holder_process_on_this_host_is_dead_resumes_at_once(self, storage_url: str) -> None:
        async with await create_storage(storage_url) as storage:
            dead = await _hold_as(storage, LeaseHolder.of_process(_dead_pid()), "s1")
            result = await _two_steps(storage, lambda ctx: "two").execute(session_id="s1")
            assert result.output == "two"
            with pytest.raises(FencingError):
                await storage.set("gecko/after-take-over", 1, fence=dead)

    async def test_a_session_held_by_a_live_process_or_another_host_is_not_taken_over(self, storage_url: str) -> None:
        async with await create_storage(storage_url) as storage:
            await _hold_as(storage, LeaseHolder.of_process(os.getppid()), "alive")
            with pytest.raises(SessionOwnedElsewhere):
                await _two_steps(storage, lambda ctx: "two").execute(session_id="alive")
            elsewhere = dataclasses.replace(LeaseHolder.of_process(_dead_pid()), host="another-host")
            await _hold_as(storage, elsewhere, "remote")
            with pytest.raises(SessionOwnedElsewhere):
                await _two_steps(storage, lambda ctx: "two").execute(session_id="remote")

    async def test_a_run_of_this_process_that_ended_without_releasing_is_taken_over(self, storage_url: str) -> None:
        async with await create_storage(storage_url) as storage:
            # A run of this process whose release never reached the storage (its nonce is not live).
            await _hold_as(storage, LeaseHolder.of_this_run(), "mine")
            result = await _two_steps(storage, lambda ctx: "two").execute(session_id="mine")
            assert result.output == "two"
