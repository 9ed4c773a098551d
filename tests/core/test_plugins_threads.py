"""`gecko.plugins.threads.WorkerThread`: order, results, errors, cancellation and stop, on asyncio and trio."""

from __future__ import annotations

import threading
import time

import anyio
import anyio.abc
import anyio.to_thread
import pytest

from gecko.errors import StorageClosedError
from gecko.plugins.threads import WorkerThread


def _worker(stopped: list[str] | None = None) -> WorkerThread:
    return WorkerThread(
        "test-worker",
        closed_error=lambda: StorageClosedError("worker is stopped"),
        on_stop=None if stopped is None else lambda: stopped.append(threading.current_thread().name),
    )


async def test_concurrent_calls_run_one_at_a_time_on_one_thread_that_is_not_the_callers() -> None:
    worker = _worker()
    threads: set[int] = set()
    running = 0
    most_at_once = 0

    def call() -> None:
        nonlocal running, most_at_once
        running += 1
        most_at_once = max(most_at_once, running)
        threads.add(threading.get_ident())
        time.sleep(0.001)
        running -= 1

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(worker.run, call)
    sequence = [await worker.run(lambda number=number: number) for number in range(5)]
    await worker.aclose()
    assert most_at_once == 1
    assert len(threads) == 1
    assert threading.get_ident() not in threads
    assert sequence == [0, 1, 2, 3, 4]


async def test_result_and_error_reach_the_caller() -> None:
    worker = _worker()

    def fail() -> None:
        raise KeyError("from the thread")

    assert await worker.run(lambda: 6 * 7) == 42
    with pytest.raises(KeyError, match="from the thread"):
        await worker.run(fail)
    assert await worker.run(lambda: "still serving") == "still serving"
    await worker.aclose()


async def test_a_cancelled_caller_abandons_a_queued_call_and_the_running_one_sees_it() -> None:
    worker = _worker()
    running = threading.Event()
    release = threading.Event()
    ran: list[str] = []
    running_saw_abandon = threading.Event()

    def blocking() -> None:
        ran.append("blocking")
        running.set()
        release.wait(10)
        if worker.abandoned():
            running_saw_abandon.set()

    async def queue_behind(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        await worker.run(lambda: ran.append("queued"))  # submitted before this task first yields

    async with anyio.create_task_group() as group:
        group.start_soon(worker.run, blocking)
        await anyio.to_thread.run_sync(running.wait, 10)
        await group.start(queue_behind)
        group.cancel_scope.cancel()
    release.set()
    assert await worker.run(lambda: "after") == "after"
    assert ran == ["blocking"]  # the queued call was abandoned before it started
    assert running_saw_abandon.is_set()
    assert not worker.abandoned()  # outside a call it is always False
    await worker.aclose()


async def test_stop_runs_on_stop_on_the_thread_and_refuses_later_calls() -> None:
    stopped: list[str] = []
    worker = _worker(stopped)
    await worker.run(lambda: None)
    await worker.aclose()
    assert stopped == ["test-worker"]
    with pytest.raises(StorageClosedError, match="worker is stopped"):
        await worker.run(lambda: None)
    worker.stop()  # idempotent
    assert stopped == ["test-worker"]
