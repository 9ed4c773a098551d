"""Session ownership on memory://: one worker per session, fenced checkpoints, parking crash loops."""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import nullcontext
from functools import partial
from typing import Any

import anyio
import pytest

from gecko.compose._checkpoint import CheckpointStore
from gecko.compose._ownership import attempts_key, lease_name
from gecko.compose.nodes import NodeContext, interrupt
from gecko.compose.workflow import Workflow
from gecko.errors import (
    ConfigurationError,
    SessionLeaseLost,
    SessionOwnedElsewhere,
    WorkflowError,
    WorkflowParked,
)
from gecko.plugins.storage import Storage
from gecko.plugins.storage.memory import MemoryStorage


class WorkerCrash(BaseException):
    """Stands for the process dying mid-node: nothing after it runs, no end is recorded."""


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


def two_steps(storage: Storage, second: Any, *, runs: Counter[str] | None = None, **options: Any) -> Workflow:
    counts = runs if runs is not None else Counter()

    async def first(ctx: NodeContext) -> str:
        counts["first"] += 1
        return "one"

    wf = Workflow("owned", storage=storage, **options).add_node("first", first).add_node("second", second)
    return wf.add_edge("first", "second").set_entry_point("first")


async def test_a_second_worker_on_a_running_session_gets_session_owned_elsewhere(storage: MemoryStorage) -> None:
    started, release = anyio.Event(), anyio.Event()
    runs: Counter[str] = Counter()

    async def slow(ctx: NodeContext) -> str:
        runs["second"] += 1
        started.set()
        await release.wait()
        return "done"

    results: list[Any] = []

    async def first_worker() -> None:
        results.append(await two_steps(storage, slow).execute("x", session_id="s1"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(first_worker)
        await started.wait()
        with pytest.raises(SessionOwnedElsewhere, match="another worker"):
            await two_steps(storage, slow, runs=runs).execute("x", session_id="s1")
        release.set()
    assert results[0].output == "done"
    assert runs == Counter({"second": 1})


@pytest.mark.parametrize("outcome", ["completed", "paused", "failed"])
async def test_the_lease_is_released_when_the_run_ends(storage: MemoryStorage, outcome: str) -> None:
    async def second(ctx: NodeContext) -> str:
        if outcome == "paused":
            interrupt("approve?")
        if outcome == "failed":
            raise RuntimeError("boom")
        return "done"

    wf = two_steps(storage, second)
    if outcome == "failed":
        with pytest.raises(WorkflowError, match="boom"):
            await wf.execute(session_id="s1")
    else:
        assert (await wf.execute(session_id="s1")).status == outcome
    assert await storage.acquire_lease(lease_name("owned", "s1"), owner="someone-else", ttl=30) is not None


async def test_the_session_lease_is_held_while_a_node_runs(storage: MemoryStorage) -> None:
    held: list[bool] = []

    async def probe(ctx: NodeContext) -> str:
        held.append(await storage.acquire_lease(lease_name("owned", "s1"), owner="someone-else", ttl=30) is None)
        return "done"

    await two_steps(storage, probe).execute(session_id="s1")
    assert held == [True]


async def test_renewal_keeps_a_run_longer_than_the_lease_ttl(storage: MemoryStorage) -> None:
    taken: list[bool] = []

    async def long(ctx: NodeContext) -> str:
        # Another owner tries to take the session for over three TTLs: a lease nobody renewed
        # would lapse after 0.3 s and be granted to it.
        for _ in range(10):
            await anyio.sleep(0.1)
            lease = await storage.acquire_lease(lease_name("owned", "s1"), owner="someone-else", ttl=30)
            taken.append(lease is not None)
        return "done"

    result = await two_steps(storage, long, lease_ttl=0.3).execute(session_id="s1")
    assert taken == [False] * 10
    assert result.output == "done"


def take_over_in_another_thread(storage: Storage, session_id: str) -> Any:
    """Another worker (own thread, own event loop) resumes the session once the lease lapses."""

    async def other_second(ctx: NodeContext) -> str:
        return "by-the-other-worker"

    async def other_worker() -> Any:
        while True:
            try:
                return await two_steps(storage, other_second).resume(session_id)
            except SessionOwnedElsewhere:
                await anyio.sleep(0.02)

    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(anyio.run(other_worker)))
    thread.start()
    thread.join()
    return outcome[0]


async def test_a_worker_paused_past_its_ttl_cannot_commit_and_the_history_does_not_fork(
    storage: MemoryStorage,
) -> None:
    taken_over: list[Any] = []

    async def paused_worker(ctx: NodeContext) -> str:
        # The event loop is blocked here, as in a stopped process: no renewal runs.
        taken_over.append(take_over_in_another_thread(storage, "s1"))
        return "by-the-paused-worker"

    with pytest.raises(SessionLeaseLost, match="lost the lease"):
        await two_steps(storage, paused_worker, lease_ttl=0.2).execute("x", session_id="s1")
    assert taken_over[0].output == "by-the-other-worker"
    stored = await CheckpointStore(storage, "owned", "s1").load()
    assert stored is not None
    assert stored.snapshot["status"] == "completed"
    assert stored.snapshot["history"]["entries"] == [["first", "one"], ["second", "by-the-other-worker"]]


async def test_renewal_that_finds_the_lease_lost_cancels_the_run_at_once(storage: MemoryStorage) -> None:
    started = anyio.Event()
    cancelled: list[bool] = []

    async def waits(ctx: NodeContext) -> str:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.append(True)
        return "never"

    failures: list[BaseException] = []

    async def worker() -> None:
        try:
            await two_steps(storage, waits, lease_ttl=0.2).execute("x", session_id="s1")
        except SessionLeaseLost as exc:
            failures.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        await started.wait()
        # Block the loop past the TTL (a paused process), then let another owner take the lease.
        time.sleep(0.6)  # noqa: ASYNC251 - deliberately blocking: this is the pause
        assert await storage.acquire_lease(lease_name("owned", "s1"), owner="thief", ttl=30) is not None
    assert len(failures) == 1
    assert cancelled == [True]


async def crash_repeatedly(wf: Workflow, times: int) -> None:
    for _ in range(times):
        with pytest.RaisesGroup(WorkerCrash, flatten_subgroups=True):
            await wf.execute("x", session_id="s1")


async def test_a_session_that_crashes_its_worker_max_attempts_times_is_parked_without_running_a_node(
    storage: MemoryStorage,
) -> None:
    runs: Counter[str] = Counter()

    async def crashes(ctx: NodeContext) -> str:
        runs["second"] += 1
        raise WorkerCrash

    wf = two_steps(storage, crashes, runs=runs, max_attempts=3)
    await crash_repeatedly(wf, 3)
    with pytest.raises(WorkflowParked, match=r"started 3 times in a row.*\['second'\].*unpark\('s1'\)"):
        await wf.resume("s1")
    assert runs == Counter({"first": 1, "second": 3})
    record = await storage.get(attempts_key("owned", "s1"))
    assert isinstance(record, dict)
    assert record["parked"] is True


async def test_a_parked_session_stays_parked_until_unpark(storage: MemoryStorage) -> None:
    crash = {"on": True}

    async def second(ctx: NodeContext) -> str:
        if crash["on"]:
            raise WorkerCrash
        return "done"

    wf = two_steps(storage, second, max_attempts=1)
    await crash_repeatedly(wf, 1)
    crash["on"] = False
    for _ in range(2):
        with pytest.raises(WorkflowParked):
            await wf.resume("s1")
    await wf.unpark("s1")
    assert (await wf.resume("s1")).output == "done"


@pytest.mark.parametrize("end", ["paused", "failed"])
async def test_a_recorded_end_resets_the_start_count(storage: MemoryStorage, end: str) -> None:
    mode = {"now": "crash"}

    async def second(ctx: NodeContext) -> str:
        if mode["now"] == "crash":
            raise WorkerCrash
        if mode["now"] == "paused":
            interrupt("approve?")
        if mode["now"] == "failed":
            raise RuntimeError("boom")
        return "done"

    wf = two_steps(storage, second, max_attempts=2)
    await crash_repeatedly(wf, 1)
    mode["now"] = end
    with pytest.raises(WorkflowError) if end == "failed" else nullcontext():
        await wf.resume("s1")
    mode["now"] = "crash"
    await crash_repeatedly(wf, 1)
    mode["now"] = "finish"
    assert (await wf.resume("s1", "yes")).output == "done"
    assert await storage.get(attempts_key("owned", "s1")) is None


async def test_a_cancelled_run_does_not_count_toward_parking(storage: MemoryStorage) -> None:
    started = anyio.Event()
    mode = {"now": "wait"}

    async def second(ctx: NodeContext) -> str:
        if mode["now"] == "wait":
            started.set()
            await anyio.sleep_forever()
        return "done"

    wf = two_steps(storage, second, max_attempts=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(wf.execute, "x", session_id="s1"))
        await started.wait()
        tg.cancel_scope.cancel()
    mode["now"] = "finish"
    assert (await wf.resume("s1")).output == "done"


async def test_lease_ttl_none_runs_without_taking_the_lease(storage: MemoryStorage) -> None:
    held: list[bool] = []

    async def probe(ctx: NodeContext) -> str:
        held.append(await storage.acquire_lease(lease_name("owned", "s1"), owner="someone-else", ttl=30) is None)
        return "done"

    await two_steps(storage, probe, lease_ttl=None).execute(session_id="s1")
    assert held == [False]


@pytest.mark.parametrize("options", [{"lease_ttl": 0}, {"max_attempts": 0}])
def test_invalid_ownership_settings_are_configuration_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Workflow("w", **options)


async def test_unpark_without_lease_storage_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="none is ever parked"):
        await Workflow("w").unpark("s1")


def test_lease_holders_are_judged_dead_only_when_their_process_is_surely_gone() -> None:
    import os
    import signal
    import subprocess
    import sys

    from gecko.compose._ownership import LeaseHolder

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holder = LeaseHolder.of_process(child.pid)
        assert LeaseHolder.parse(holder.owner()) == holder
        assert not holder.is_dead()
        # Same process id, another start time: the id was reused by a later process.
        assert LeaseHolder(holder.host, holder.pid, holder.started + 1, holder.boot, "x").is_dead()
        os.kill(child.pid, signal.SIGKILL)
        # Killed but not yet reaped (a zombie) is dead already; reaped (no such process) too.
        while child.poll() is None and not holder.is_dead():
            time.sleep(0.01)
        assert holder.is_dead()
    finally:
        child.kill()
        child.wait()
    assert holder.is_dead()
    assert LeaseHolder.parse("host:1234:abc") is None
