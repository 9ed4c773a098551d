"""`WorkerThread`: one dedicated thread for a plugin's blocking, single-threaded resource.

A plugin whose client blocks (a `sqlite3` connection, a synchronous network client) gives it to
a `WorkerThread` and awaits `run(call)`: the calls run one at a time, in order, on one long-lived
thread, and the thread wakes the waiting task directly through its event loop (asyncio or trio),
so a call costs one hop there and one back, never a blocked event loop. It is the bridge that
makes such a plugin work on both backends the core supports.

The thread sleeps reading a socket pair of its own (`_Channel`), and a caller that finds it
asleep wakes it with one write. Writing lets go of the interpreter lock for the system call, so a
thread woken on the caller's CPU runs at once; one woken by a queue's lock (`SimpleQueue.put` holds
the interpreter lock) found that lock taken and slept again, two more thread switches per call. A
socket, not an eventfd: a socket's write tells the scheduler the writer is about to wait (a "sync"
wake-up), so the thread runs on the caller's CPU; an eventfd's write woke it on the other, idle
CPU, which cost about 70 CPU µs more per durable workflow step on a 2-vCPU VM (160 against 90).

On asyncio the thread wakes the loop through a channel of its own (an eventfd on Linux, else a
socket pair: the loop, unlike the thread, is not waiting on the writer), read by a reader registered
with the loop (`_Waker`): one write per finished call, one read per batch of finished calls, none
of asyncio's thread-safe callback machinery; the reader resumes the waiting tasks at once, in the
loop's turn that reads the wake-up. The channel is closed once both the thread (as it exits) and
the loop's side (the reader, told of the exit, or `aclose`) are done with it, so no write ever
reaches a closed descriptor's number, which may already name another file.

Cancellation: a cancelled caller abandons its call. A call that has not started never runs; one
already running finishes on the thread (so a resource is never left half-used) and can poll
`abandoned()` to stop early, e.g. to give up retrying.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import os
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio.to_thread

if TYPE_CHECKING:
    import trio

__all__ = ("WorkerThread",)

T = TypeVar("T")


class WorkerThread:
    """Runs blocking calls in order on one thread of its own, awaitable from asyncio and trio.

    Example:
        worker = WorkerThread("my-db", on_stop=connection.close, closed_error=lambda: StorageClosedError("closed"))
        rows = await worker.run(functools.partial(connection.execute, "SELECT 1"))
        await worker.aclose()
    """

    def __init__(
        self,
        name: str,
        *,
        closed_error: Callable[[], BaseException],
        on_stop: Callable[[], object] | None = None,
    ) -> None:
        """Start the thread.

        Args:
            name: the thread's name (shown in debuggers and thread dumps).
            closed_error: builds the error `run` raises once the worker is stopped.
            on_stop: called on the thread after the last queued call, e.g. to close a connection.

        Neither callable may refer to the object that owns the worker: the thread keeps them, so
        that object could never be collected (nor its worker stopped by a finalizer).
        """
        # The calls for the thread, in order (None: stop), and the channel that wakes it when it
        # sleeps (`_Progress.asleep`): written under `_lock`, read by the thread alone, closed by the
        # thread as it exits, under `_lock` too (`_Progress.exited`).
        self._calls: collections.deque[_Call[Any] | None] = collections.deque()
        self._rousing = _Channel(waiting=True)
        # Calls handed to the thread, and (counted by the thread) calls it has finished or skipped.
        self._submitted = 0
        self._progress = _Progress()
        self._lock = threading.Lock()
        self._stopped = False
        self._closed_error = closed_error
        # The reader of the loop this worker serves on asyncio (the first loop that called it), and
        # every waker made, which the thread tells of its exit (it alone writes them).
        self._waker: _Waker | None = None
        self._wakers: list[_Waker] = []
        self._thread = threading.Thread(
            target=_serve,
            args=(self._calls, self._rousing, self._progress, self._lock, on_stop, closed_error, self._wakers),
            name=name,
            daemon=True,
        )
        self._thread.start()

    async def run(self, call: Callable[[], T]) -> T:
        """Run `call()` on the worker thread after the calls queued before it, and return its result.

        Raises:
            The error `call` raised, or `closed_error()` when the worker is stopped.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None  # not asyncio: trio (kept out of this except block, so errors carry no context)
        if loop is None:
            return await self._run_trio(call)
        waker = self._waker
        if waker is None or waker.loop is not loop:
            waker = self._waker_for(loop)
        pending = _AsyncioCall(call, loop, waker)
        self._submit(pending)
        try:
            await pending
        except BaseException:
            pending.abandoned = True
            raise
        return pending.outcome()

    async def _run_trio(self, call: Callable[[], T]) -> T:
        import trio

        pending = _TrioCall(call, trio.lowlevel.current_trio_token(), trio.lowlevel.current_task())
        self._submit(pending)
        await trio.lowlevel.wait_task_rescheduled(pending.abort)
        return pending.outcome()

    def _waker_for(self, loop: asyncio.AbstractEventLoop) -> _Waker | None:
        """A reader of this worker's wake-ups registered with `loop`; None where it cannot be had.

        None for a loop without readers (Windows' proactor) and, while the loop it serves is
        open, for any other loop: those calls wake their loop with `call_soon_threadsafe`.
        """
        current = self._waker
        if current is not None:
            if not current.loop.is_closed():
                return None
            current.close_reader()
        with self._lock:
            if self._stopped or self._progress.exited:
                return None  # `run` raises `closed_error()` on submitting
            try:
                waker = _Waker(loop)
            except NotImplementedError:
                return None
            self._waker = waker
            self._wakers.append(waker)
        return waker

    @property
    def idle(self) -> bool:
        """True when no call is queued or running: a caller may use the resource itself meanwhile.

        Read it on the thread that submits calls; every call submitted before it returned True
        has finished.
        """
        return self._progress.finished == self._submitted

    def abandoned(self) -> bool:
        """True when the caller of the call now running on this thread was cancelled.

        Only meaningful on the worker thread, from inside a call; False anywhere else.
        """
        current = self._progress.current
        return current is not None and current.abandoned and threading.get_ident() == self._thread.ident

    def _submit(self, pending: _Call[Any], *, last: bool = False) -> bool:
        """Queue `pending` for the thread (the last call, on which it exits, if `last`).

        Returns False instead of raising `closed_error()` if the worker is stopped and `last`.
        """
        with self._lock:
            if self._stopped or self._progress.exited:  # exited: the thread died without `stop`
                self._stopped = True
                if last:
                    return False
                raise self._closed_error()
            self._calls.append(pending)
            self._wake_thread()
            self._submitted += 1
            self._stopped = last
        return True

    def _wake_thread(self) -> None:
        """Wake the thread if it sleeps; call with `_lock` held, while the thread has not exited.

        At most one wake-up is written per sleep, and each sleep reads all there is, so the channel
        holds one or two, far from full: the write does not block.
        """
        progress = self._progress
        if progress.asleep:
            progress.asleep = False
            self._rousing.ring()

    def stop(self) -> None:
        """Let the thread finish the queued calls, run `on_stop` and exit; returns at once."""
        with self._lock:
            if not self._stopped and not self._progress.exited:
                self._calls.append(None)
                self._wake_thread()
            self._stopped = True

    async def aclose(self) -> None:
        """`stop`, then wait until the thread has run the queued calls and `on_stop`; it exits right after.

        The thread wakes the caller itself, as it does after a call (after a `stop`, or a second
        `aclose`, the thread is joined from one of anyio's threads instead).
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None  # not asyncio: trio
        waker = self._waker
        if loop is None:
            import trio

            last_trio = _TrioCall(_exit, trio.lowlevel.current_trio_token(), trio.lowlevel.current_task())
            if self._submit(last_trio, last=True):
                await trio.lowlevel.wait_task_rescheduled(last_trio.abort)
            else:
                await anyio.to_thread.run_sync(self._thread.join)
        else:
            last = _AsyncioCall(_exit, loop, waker if waker is not None and waker.loop is loop else None)
            if self._submit(last, last=True):
                await last
            else:
                await anyio.to_thread.run_sync(self._thread.join)
        if waker is not None and (waker.loop is loop or waker.loop.is_closed()):
            waker.close_reader()


class _Call(ABC, Generic[T]):
    """One call for the worker thread: what to run, what came of it, and whom to wake."""

    __slots__ = ("abandoned", "call", "error", "value")

    def __init__(self, call: Callable[[], T]) -> None:
        self.call = call
        self.value: T | None = None
        self.error: BaseException | None = None
        self.abandoned = False  # the caller was cancelled: skip the call, or let it stop early

    @abstractmethod
    def wake(self) -> None:
        """Wake the waiting task (called on the worker thread once `value` or `error` is set)."""

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class _AsyncioCall(_Call[T]):
    """An asyncio call, which its caller awaits as a future of its own (asyncio's duck-typed future protocol).

    `asyncio.Future.set_result` would schedule the waiting task's step for the loop's next turn;
    `resume` runs it at once, so the task resumes in the turn that learns of the finish (one turn,
    and one poll of the selector, fewer per call). Every method but `wake` runs on the loop.
    """

    __slots__ = ("_asyncio_future_blocking", "callbacks", "loop", "state", "waker")

    def __init__(self, call: Callable[[], T], loop: asyncio.AbstractEventLoop, waker: _Waker | None) -> None:
        super().__init__(call)
        self.loop = loop
        self.waker = waker
        self._asyncio_future_blocking = False
        self.callbacks: list[tuple[Callable[[_AsyncioCall[T]], object], contextvars.Context]] = []
        self.state: str | asyncio.CancelledError = _PENDING

    def __await__(self) -> Generator[_AsyncioCall[T], None, None]:
        self._asyncio_future_blocking = True
        yield self  # the task adds its wake-up with `add_done_callback`

    def wake(self) -> None:
        waker = self.waker
        if waker is None:
            # try/except rather than contextlib.suppress, which costs a context manager on every call.
            try:  # noqa: SIM105
                self.loop.call_soon_threadsafe(self.resume)
            except RuntimeError:
                pass  # the loop is closed: nobody waits any more
            return
        waker.finished.append(self)
        try:  # noqa: SIM105 (a context manager on every call costs more)
            waker.channel.ring()
        except BlockingIOError:
            pass  # a socket pair full of wake-ups the loop has yet to read: it reads this call too

    def resume(self) -> None:
        """Resume the waiting task now (the call has finished), unless it was cancelled meanwhile."""
        if self.state is _PENDING:
            self.state = _FINISHED
            self._run_callbacks()

    def _run_callbacks(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for callback, context in callbacks:
            try:
                context.run(callback, self)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # as `asyncio.Handle` does for a callback it runs
                self.loop.call_exception_handler(
                    {"message": f"Exception in callback {callback!r}", "exception": exc, "future": self}
                )

    # --- the future protocol, as `asyncio.Task` uses it -------------------------------------

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    def add_done_callback(
        self, callback: Callable[[_AsyncioCall[T]], object], *, context: contextvars.Context | None = None
    ) -> None:
        if context is None:
            context = contextvars.copy_context()
        if self.state is _PENDING:
            self.callbacks.append((callback, context))
        else:
            self.loop.call_soon(callback, self, context=context)

    def cancel(self, msg: object = None) -> bool:
        if self.state is not _PENDING:
            return False  # finished: the task is being resumed
        self.state = asyncio.CancelledError() if msg is None else asyncio.CancelledError(msg)
        self.abandoned = True
        self.loop.call_soon(self._run_callbacks)
        return True

    def done(self) -> bool:
        return self.state is not _PENDING

    def result(self) -> None:
        """None once finished (the caller takes the outcome); raises the `CancelledError` once cancelled."""
        state = self.state
        if isinstance(state, asyncio.CancelledError):
            raise state
        if state is _PENDING:
            raise asyncio.InvalidStateError("the call has not finished")


# An `_AsyncioCall`'s state: pending, finished, or the `CancelledError` it was cancelled with.
_PENDING = "pending"
_FINISHED = "finished"


class _Waker:
    """A channel whose reading side is registered with one asyncio loop.

    The worker thread appends each finished call to `finished`, then writes a wake-up; the reader
    (on the loop) reads what is there and resumes the tasks of the calls it found. As it exits, the
    thread sets `thread_exited` and writes once more; the reader then unregisters itself
    (`close_reader`, which `WorkerThread.aclose` calls at once). The channel is closed by whichever
    of the two sides is done with it last.
    """

    __slots__ = ("channel", "finished", "loop", "reading", "shares", "shares_lock", "thread_exited")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.finished: collections.deque[_AsyncioCall[Any]] = collections.deque()
        self.channel = _Channel(waiting=False)
        self.thread_exited = False
        self.shares = 2  # the thread's and the loop's
        self.shares_lock = threading.Lock()
        self.reading = True
        try:
            loop.add_reader(self.channel.fileno, self._read)
        except BaseException:
            self.channel.close()
            raise

    def _read(self) -> None:
        try:  # noqa: SIM105 (as in `_AsyncioCall.wake`)
            self.channel.take()
        except (BlockingIOError, InterruptedError):
            pass  # nothing to read after all: resume what is there
        self.resume(len(self.finished))
        if self.thread_exited:
            self.close_reader()

    def resume(self, count: int) -> None:
        """Resume the tasks of the first `count` finished calls, the ones found on reading a wake-up.

        Calls that finish meanwhile wait for their own wake-up: a task that calls again at once
        cannot keep the reader, and the loop, to itself.
        """
        finished = self.finished
        while count:
            count -= 1
            try:
                finished.popleft().resume()
            except BaseException:  # SystemExit or KeyboardInterrupt from a task: resume the rest later
                if count:
                    self.loop.call_soon(self.resume, count)
                raise

    def close_reader(self) -> None:
        """Unregister the reader (unless the loop is closed) and give up the loop's side; idempotent."""
        if self.reading:
            self.reading = False
            if not self.loop.is_closed():
                self.loop.remove_reader(self.channel.fileno)
            self._release()

    def exit_thread(self) -> None:
        """Tell the reader the thread has exited and give up the thread's side (on the thread, last)."""
        self.thread_exited = True
        try:  # noqa: SIM105 (as in `_AsyncioCall.wake`)
            self.channel.ring()
        except BlockingIOError:
            pass  # a socket pair full of wake-ups: the reader reads, and sees `thread_exited`, anyway
        self._release()

    def _release(self) -> None:
        with self.shares_lock:
            self.shares -= 1
            last = not self.shares
        if last:
            self.channel.close()


class _TrioCall(_Call[T]):
    __slots__ = ("task", "token")

    def __init__(self, call: Callable[[], T], token: trio.lowlevel.TrioToken, task: trio.lowlevel.Task) -> None:
        super().__init__(call)
        self.token = token
        self.task = task

    def wake(self) -> None:
        try:  # noqa: SIM105 (as in `_AsyncioCall.wake`)
            self.token.run_sync_soon(self._settle)
        except RuntimeError:
            pass  # trio.RunFinishedError: nobody waits any more

    def _settle(self) -> None:
        import outcome
        import trio

        if not self.abandoned:
            trio.lowlevel.reschedule(self.task, outcome.Value(None))

    def abort(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        import trio

        self.abandoned = True
        return trio.lowlevel.Abort.SUCCEEDED


class _Progress:
    """The worker thread's state: its current call, how many it has finished or skipped, whether it sleeps or exited.

    A plain object rather than a `threading.local`, which costs a lookup of the thread's own
    dictionary on every access, twice per call. The thread alone writes `current` and `finished`;
    it sets `asleep` before it checks for calls one last time and sleeps, and whoever wakes it
    clears it (under the worker's lock), so a call is never left unseen and the thread is woken
    once.
    """

    __slots__ = ("asleep", "current", "exited", "finished")

    def __init__(self) -> None:
        self.current: _Call[Any] | None = None
        self.finished = 0
        self.asleep = False
        self.exited = False  # set under the worker's lock as the thread exits


def _serve(
    calls: collections.deque[_Call[Any] | None],
    rousing: _Channel,
    progress: _Progress,
    lock: threading.Lock,
    on_stop: Callable[[], object] | None,
    closed_error: Callable[[], BaseException],
    wakers: list[_Waker],
) -> None:
    """The thread's loop; holds no reference to the worker's owner, so a dropped owner can be collected."""
    last: _Call[Any] | None = None  # the call of `aclose`, woken once the thread is done with everything else
    try:
        while True:
            if not calls:
                progress.asleep = True
                if not calls:
                    rousing.take()  # a socket's recv, retried after a signal (PEP 475)
                progress.asleep = False
                continue
            pending = calls.popleft()
            if pending is None:
                break
            if pending.call is _exit:
                last = pending
                break
            if not pending.abandoned:
                progress.current = pending
                try:
                    pending.value = pending.call()
                except BaseException as exc:  # handed to the waiting task, which raises it
                    pending.error = exc
                finally:
                    progress.current = None
            progress.finished += 1
            pending.wake()
            del pending
    finally:
        try:
            if on_stop is not None:
                on_stop()
        finally:
            with lock:
                progress.exited = True
                rousing.close()
                left = [pending for pending in calls if pending is not None]
                calls.clear()
                told = list(wakers)
            # Left only by an unexpected exit: their callers get the worker's error, not a wait forever.
            for pending in left:
                pending.error = closed_error()
                progress.finished += 1
                pending.wake()
            if last is not None:
                progress.finished += 1
                last.wake()
            for waker in told:
                waker.exit_thread()


def _exit() -> None:
    """The call that `aclose` hands over last: the thread exits on it, and never calls it."""


class _Channel:
    """Wake-ups from one thread to another: `ring` adds one, `take` takes all there are.

    A `waiting` channel (a thread sleeps in `take`) is a socket pair, whose write wakes the
    sleeper on the writer's CPU (see the module's docstring). Otherwise an eventfd where the
    platform has one (one descriptor, a counter: cheaper to write and read than a socket's
    buffers), else a socket pair; there `take` raises `BlockingIOError` when there is none. `ring`
    never blocks (`BlockingIOError` only from a full socket pair). `fileno` is what a selector
    watches; -1 once closed.
    """

    __slots__ = ("_sockets", "fileno", "ring", "take")

    def __init__(self, *, waiting: bool) -> None:
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self.ring: Callable[[], object]
        self.take: Callable[[], object]
        if _EVENTFD and not waiting:
            fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self.fileno = fd
            self.ring = partial(os.eventfd_write, fd, 1)
            self.take = partial(os.eventfd_read, fd)
        else:
            taking, ringing = self._sockets = socket.socketpair()
            taking.setblocking(waiting)
            ringing.setblocking(False)
            self.fileno = taking.fileno()
            self.ring = partial(ringing.send, b"\0")
            self.take = partial(taking.recv, 4096)

    def close(self) -> None:
        """Close the channel (once no thread will write or read it again)."""
        if self.fileno != -1:
            if self._sockets is None:
                os.close(self.fileno)
            else:
                for end in self._sockets:
                    end.close()
            self.fileno = -1


_EVENTFD = hasattr(os, "eventfd")
