"""`gecko.plugins.threads.WorkerThread`: order, results, errors, cancellation and stop, on asyncio and trio."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable

import anyio
import anyio.abc
import anyio.lowlevel
import anyio.to_thread
import pytest

from gecko.errors import StorageClosedError
from gecko.plugins import threads
from gecko.plugins.threads import WorkerThread

pytestmark = pytest.mark.uvloop  # WorkerThread reaches below anyio into the event loop


@pytest.fixture(autouse=True, params=["eventfd", "socket pair"] if threads._EVENTFD else ["socket pair"])
def channel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on each wake-up channel this platform has (elsewhere the socket pair is all there is)."""
    monkeypatch.setattr(threads, "_EVENTFD", request.param == "eventfd")
    return str(request.param)


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


async def _queued(worker: WorkerThread, call: Callable[[], object], *, task_status: anyio.abc.TaskStatus[None]) -> None:
    task_status.started()
    await worker.run(call)  # submitted before this task first yields


@pytest.mark.parametrize("close", ["aclose", "stop, then aclose", "aclose twice"])
async def test_stop_runs_on_stop_on_the_thread_and_refuses_later_calls(close: str) -> None:
    stopped: list[str] = []
    worker = _worker(stopped)
    ran: list[int] = []
    async with anyio.create_task_group() as group:
        for number in range(3):
            await group.start(_queued, worker, lambda number=number: ran.append(number))
        if close == "stop, then aclose":
            worker.stop()  # aclose then joins the thread from one of anyio's
        await worker.aclose()
        assert ran == [0, 1, 2]  # the queued calls ran first
        assert stopped == ["test-worker"]
        if close == "aclose twice":
            await worker.aclose()
    with pytest.raises(StorageClosedError, match="worker is stopped"):
        await worker.run(lambda: None)
    worker.stop()  # idempotent
    await anyio.to_thread.run_sync(worker._thread.join)
    assert stopped == ["test-worker"]
    assert worker.idle


async def test_a_cancelled_aclose_raises_and_the_thread_stops_anyway() -> None:
    stopped: list[str] = []
    worker = _worker(stopped)
    release = threading.Event()
    async with anyio.create_task_group() as group:
        await group.start(_queued, worker, lambda: release.wait(10))
        with anyio.CancelScope() as scope:
            scope.cancel()
            await worker.aclose()
        assert scope.cancelled_caught
        release.set()
    await anyio.to_thread.run_sync(worker._thread.join, 10)
    assert stopped == ["test-worker"]
    with pytest.raises(StorageClosedError):
        await worker.run(lambda: None)


# --- asyncio: the worker wakes the loop through its own socket pair ---------------------------


def _open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


def test_asyncio_calls_wake_the_loop_through_one_reader_that_aclose_removes() -> None:
    import asyncio

    async def main() -> None:
        loop = asyncio.get_running_loop()
        worker = _worker()
        results = await asyncio.gather(*(worker.run(lambda number=number: number) for number in range(10)))
        assert results == list(range(10))
        waker = worker._waker
        assert waker is not None
        assert waker.loop is loop
        fileno = waker.channel.fileno
        assert loop.remove_reader(fileno)  # registered: put it back, aclose must remove it
        loop.add_reader(fileno, waker._read)
        await worker.aclose()
        await anyio.to_thread.run_sync(worker._thread.join)  # it exits right after waking aclose
        assert waker.channel.fileno == -1  # closed: the thread exited, aclose gave up the loop's side
        assert not loop.remove_reader(fileno)

    before = _open_fds()
    asyncio.run(main())
    assert _open_fds() == before


def test_asyncio_a_stopped_worker_unregisters_its_reader_once_the_thread_exits() -> None:
    import asyncio

    async def main() -> None:
        worker = _worker()
        assert await worker.run(lambda: "served") == "served"
        waker = worker._waker
        assert waker is not None
        worker.stop()  # no aclose: the thread's exit (end of file) is what cleans up
        await anyio.to_thread.run_sync(worker._thread.join)
        with anyio.fail_after(10):
            # Nothing signals "the loop ran the reader": poll the reading end, a few loop turns.
            while waker.channel.fileno != -1:  # noqa: ASYNC110
                await asyncio.sleep(0)
        assert not waker.reading
        with pytest.raises(StorageClosedError):
            await worker.run(lambda: "refused")

    before = _open_fds()
    asyncio.run(main())
    assert _open_fds() == before


def test_asyncio_a_worker_outlives_its_loop_and_serves_the_next_one() -> None:
    import asyncio

    worker = _worker()
    first_wakers = []

    async def call(value: int) -> int:
        result = await worker.run(lambda: value)
        first_wakers.append(worker._waker)
        return result

    assert asyncio.run(call(1)) == 1
    assert asyncio.run(call(2)) == 2
    first, second = first_wakers
    assert first is not second
    assert first is not None
    assert not first.reading  # the closed loop's reader is gone

    async def close() -> None:
        await worker.aclose()

    asyncio.run(close())
    worker._thread.join()  # it exits right after waking aclose
    assert second is not None
    assert not second.reading
    assert first.channel.fileno == second.channel.fileno == -1


def test_asyncio_a_second_open_loop_is_woken_without_the_reader() -> None:
    import asyncio

    worker = _worker()
    served_on_thread: list[int] = []

    async def on_second_loop() -> None:
        assert await worker.run(lambda: "other loop") == "other loop"

    async def main() -> None:
        assert await worker.run(lambda: 1) == 1
        waker = worker._waker
        # Another loop, in another thread, while this one is open: woken by call_soon_threadsafe.
        await anyio.to_thread.run_sync(lambda: served_on_thread.append(asyncio.run(on_second_loop()) is None))
        assert worker._waker is waker
        await worker.aclose()

    asyncio.run(main())
    assert served_on_thread == [True]


def test_asyncio_cancelling_a_caller_mid_call_leaves_the_reader_serving() -> None:
    import asyncio

    async def main() -> None:
        worker = _worker()
        started = threading.Event()
        release = threading.Event()

        def slow() -> str:
            started.set()
            release.wait(10)
            return "finished"

        task = asyncio.ensure_future(worker.run(slow))
        await anyio.to_thread.run_sync(started.wait)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        assert await worker.run(lambda: "next") == "next"
        assert worker._waker is not None
        assert not worker._waker.finished
        await worker.aclose()

    asyncio.run(main())


# --- handing calls over: order, callbacks, cancellation, a loop closed with a call in flight ----


async def test_many_callers_calls_run_in_the_order_they_were_submitted() -> None:
    worker = _worker()
    submitted: list[tuple[int, int]] = []
    ran: list[tuple[int, int]] = []

    async def caller(number: int) -> None:
        for turn in range(5):
            call = (number, turn)
            submitted.append(call)  # `run` hands the call over before it first yields
            assert await worker.run(lambda call=call: ran.append(call) or call) == call  # type: ignore[func-returns-value]

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for number in range(40):
                group.start_soon(caller, number)
    await worker.aclose()
    assert ran == submitted
    assert len(set(ran)) == 200
    assert worker.idle


async def test_calls_submitted_from_event_loop_callbacks_are_served_in_order() -> None:
    import trio

    worker = _worker()
    ran: list[int] = []
    schedule: Callable[..., object]
    try:
        schedule = asyncio.get_running_loop().call_soon
    except RuntimeError:  # trio
        schedule = trio.lowlevel.current_trio_token().run_sync_soon

    finished = anyio.Event()

    async def call(number: int) -> None:
        ran.append(await worker.run(lambda: number))
        if number % 100 < 29:
            schedule(group.start_soon, call, number + 1)  # from a plain callback, not a task
        elif len(ran) == 90:
            finished.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for first in (0, 100, 200):
                schedule(group.start_soon, call, first)
            await finished.wait()
    await worker.aclose()
    assert sorted(ran) == [*range(30), *range(100, 130), *range(200, 230)]
    for first in (0, 100, 200):
        assert [number for number in ran if first <= number < first + 100] == list(range(first, first + 30))


@pytest.mark.parametrize("cancelled", ["once handed over", "once finished, before it resumed"])
def test_asyncio_a_caller_cancelled_after_handing_its_call_over_raises_and_the_worker_serves_on(cancelled: str) -> None:
    import asyncio

    async def main() -> None:
        worker = _worker()
        ran: list[str] = []
        task = asyncio.ensure_future(worker.run(lambda: ran.append("cancelled")))
        await asyncio.sleep(0)  # the task has handed its call over
        waker = worker._waker
        assert waker is not None
        if cancelled == "once finished, before it resumed":
            while not waker.finished:  # hold the loop until the thread has finished the call and woken it
                time.sleep(0.001)  # noqa: ASYNC251 (blocking the loop is the point)
        task.cancel()
        with anyio.fail_after(10), pytest.raises(asyncio.CancelledError):
            await task
        assert await worker.run(lambda: ran.append("next")) is None
        assert worker.idle
        assert not waker.finished
        if cancelled == "once handed over":  # skipped, unless the thread took it before the task saw the cancel
            assert ran in (["next"], ["cancelled", "next"])
        else:
            assert ran == ["cancelled", "next"]
        await worker.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("then", ["asyncio", "trio", "aclose"])
def test_a_call_left_by_a_closed_asyncio_loop_runs_before_later_calls(then: str) -> None:
    import asyncio

    import trio

    stopped: list[str] = []
    worker = _worker(stopped)
    ran: list[str] = []
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, _context: None)  # its task, left waiting, is destroyed later
    task = loop.create_task(worker.run(lambda: ran.append("left")))
    loop.call_soon(loop.stop)
    loop.run_forever()  # one turn: the task hands its call over, then the loop stops
    loop.close()
    assert not task.done()

    async def next_call() -> None:
        with anyio.fail_after(10):
            await worker.run(lambda: ran.append("next"))
        await worker.aclose()

    if then == "asyncio":
        asyncio.run(next_call())
    elif then == "trio":
        trio.run(next_call)
    else:
        asyncio.run(worker.aclose())
    assert ran == (["left"] if then == "aclose" else ["left", "next"])
    assert stopped == ["test-worker"]
    assert worker.idle


# --- the loop busy elsewhere, a cancel racing a finish, a thread that dies, the future protocol ----


async def test_a_call_finishes_while_the_loop_runs_other_tasks_and_its_caller_resumes_among_them(channel: str) -> None:
    worker = _worker()
    assert worker._rousing._sockets is not None  # the thread sleeps on a socket pair, whatever the platform has
    ticks = 0
    ticked = threading.Event()

    def until_the_loop_ticked() -> str:
        assert ticked.wait(10)  # the loop kept serving the ticking task while this call ran
        return "done"

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            if ticks == 100:
                ticked.set()
            await anyio.lowlevel.checkpoint()  # always ready: the loop never sleeps while it runs

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(tick)
            assert await worker.run(until_the_loop_ticked) == "done"
            if worker._waker is not None:  # asyncio: the loop is woken through the channel under test
                assert (worker._waker.channel._sockets is None) == (channel == "eventfd")
            results = [await worker.run(lambda number=number: number) for number in range(20)]
            group.cancel_scope.cancel()
    await worker.aclose()
    assert results == list(range(20))
    assert ticks >= 100


class _Fatal(threads._Call[None]):
    """A call whose hand-back fails in the thread's own loop, as an unexpected error there would."""

    def wake(self) -> None:
        raise SystemExit("the worker thread dies")


async def test_a_worker_thread_that_dies_fails_queued_and_later_calls_with_the_closed_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    died: list[type[BaseException]] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_type))
    stopped: list[str] = []
    worker = _worker(stopped)
    started = threading.Event()
    release = threading.Event()
    refused: list[str] = []

    async def queue_behind(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        with pytest.raises(StorageClosedError, match="worker is stopped"):
            await worker.run(lambda: refused.append("ran"))  # submitted before this task first yields
        refused.append("refused")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run, lambda: (started.set(), release.wait(10)))
            await anyio.to_thread.run_sync(started.wait, 10)
            worker._submit(_Fatal(lambda: None))
            await group.start(queue_behind)
            release.set()
        with pytest.raises(StorageClosedError, match="worker is stopped"):
            await worker.run(lambda: "later")
        await worker.aclose()
    assert refused == ["refused"]
    assert died == [SystemExit]
    assert stopped == ["test-worker"]  # on_stop still ran
    assert worker.idle


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signals sent to one thread (POSIX)")
def test_a_signal_that_interrupts_the_sleeping_thread_does_not_stop_it() -> None:
    caught: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda number, _frame: caught.append(number))
    try:
        worker = _worker()
        while not worker._progress.asleep:
            time.sleep(0.001)
        assert worker._thread.ident is not None
        signal.pthread_kill(worker._thread.ident, signal.SIGUSR1)
        while not caught:  # the handler runs on the main thread, at its next bytecode
            time.sleep(0.001)

        async def call() -> str:
            with anyio.fail_after(10):
                result = await worker.run(lambda: "still serving")
            await worker.aclose()
            return result

        assert asyncio.run(call()) == "still serving"
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_asyncio_call_keeps_the_future_protocol_asyncio_tasks_use() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        errors: list[BaseException] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context["exception"]))
        seen: list[object] = []

        def failing(_call: object) -> None:
            raise ValueError("from a callback")

        pending: threads._AsyncioCall[None] = threads._AsyncioCall(lambda: None, loop, None)
        assert pending.get_loop() is loop
        assert not pending.done()
        with pytest.raises(asyncio.InvalidStateError):
            pending.result()
        pending.add_done_callback(failing)
        pending.add_done_callback(seen.append)
        pending.resume()  # at once: the failing callback reaches the loop's handler, the next one still runs
        assert seen == [pending]
        assert [type(error) for error in errors] == [ValueError]
        assert pending.done()
        assert pending.result() is None
        assert not pending.cancel()
        pending.add_done_callback(seen.append)  # once finished: on the loop's next turn
        assert seen == [pending]
        await asyncio.sleep(0)
        assert seen == [pending, pending]

        cancelled: threads._AsyncioCall[None] = threads._AsyncioCall(lambda: None, loop, None)
        cancelled.add_done_callback(seen.append)
        assert cancelled.cancel("why")
        assert cancelled.abandoned
        assert not cancelled.cancel()
        with pytest.raises(asyncio.CancelledError, match="why"):
            cancelled.result()
        cancelled.resume()  # the finish of a cancelled call resumes nobody
        await asyncio.sleep(0)
        assert seen == [pending, pending, cancelled]

    asyncio.run(main())


def test_asyncio_the_reader_resumes_the_calls_it_found_and_after_an_interrupt_the_rest_next_turn() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        waker = threads._Waker(loop)
        order: list[int] = []
        calls: list[threads._AsyncioCall[None]] = [threads._AsyncioCall(lambda: None, loop, waker) for _ in range(3)]

        def interrupt(_call: object) -> None:
            order.append(0)
            raise KeyboardInterrupt

        calls[0].add_done_callback(interrupt)
        calls[1].add_done_callback(lambda _call: order.append(1))
        calls[2].add_done_callback(lambda _call: order.append(2))
        waker.finished.extend(calls)
        with pytest.raises(KeyboardInterrupt):
            waker.resume(2)
        assert order == [0]
        await asyncio.sleep(0)
        assert order == [0, 1]  # the other call found, on the next turn; not the one after it
        assert list(waker.finished) == [calls[2]]
        waker.resume(1)
        assert order == [0, 1, 2]
        waker.close_reader()
        assert waker.channel.fileno != -1  # the thread's side still holds it
        waker.exit_thread()
        assert waker.channel.fileno == -1

    asyncio.run(main())
