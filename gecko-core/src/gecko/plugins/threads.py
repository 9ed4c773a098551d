"""`WorkerThread`: one dedicated thread for a plugin's blocking, single-threaded resource.

A plugin whose client blocks (a `sqlite3` connection, a synchronous network client) gives it to
a `WorkerThread` and awaits `run(call)`: the calls run one at a time, in order, on one long-lived
thread, and the thread wakes the waiting task directly through its event loop (asyncio or trio),
so a call costs one hop there and one back, never a blocked event loop. It is the bridge that
makes such a plugin work on both backends the core supports.

The thread sleeps reading a socket pair of its own, and a caller that finds it asleep wakes it with
one byte. Writing lets go of the interpreter lock for the system call, so a thread woken on the
caller's CPU runs at once; one woken by a queue's lock (`SimpleQueue.put` holds the interpreter
lock) found that lock taken and slept again, two more thread switches per call.

On asyncio the thread wakes the loop through a socket pair of its own, read by a reader
registered with the loop (`_Waker`): one byte written per finished call, one read per batch of
finished calls, none of asyncio's thread-safe callback machinery. The thread closes its end when it
exits, and the reader then unregisters itself and closes the other (or `aclose` does, at once).

Cancellation: a cancelled caller abandons its call. A call that has not started never runs; one
already running finishes on the thread (so a resource is never left half-used) and can poll
`abandoned()` to stop early, e.g. to give up retrying.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
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
        # The calls for the thread, in order (None: stop), and the socket pair that wakes it when
        # it sleeps (`_Progress.asleep`): written under `_lock`, read by the thread alone, closed by
        # the thread as it exits (a closed socket refuses a write; a closed descriptor's number may
        # already belong to another file).
        self._calls: collections.deque[_Call[Any] | None] = collections.deque()
        rousing, self._rousing = socket.socketpair()
        self._rousing.setblocking(False)
        # Calls handed to the thread, and (counted by the thread) calls it has finished or skipped.
        self._submitted = 0
        self._progress = _Progress()
        self._lock = threading.Lock()
        self._stopped = False
        self._closed_error = closed_error
        # The reader of the loop this worker serves on asyncio (the first loop that called it), and
        # every waker made, whose sending ends the thread closes as it exits (it alone writes them).
        self._waker: _Waker | None = None
        self._wakers: list[_Waker] = []
        self._thread = threading.Thread(
            target=_serve,
            args=(self._calls, rousing, self._rousing, self._progress, on_stop, self._wakers),
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
        pending: _AsyncioCall[T] = _AsyncioCall(call, loop) if waker is None else _WokenCall(call, loop, waker)
        self._submit(pending)
        try:
            await pending.future
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
            current.close_receiving()
        with self._lock:
            if self._stopped:
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

    def _submit(self, pending: _Call[Any]) -> None:
        with self._lock:
            if self._stopped:
                raise self._closed_error()
            self._calls.append(pending)
            if not self._wake_thread():
                self._stopped = True
                raise self._closed_error()
            self._submitted += 1

    def _wake_thread(self) -> bool:
        """Wake the thread if it sleeps (call with `_lock` held); False if the thread has exited.

        At most one byte is written per sleep, and each sleep reads all there is, so the socket holds
        a byte or two, far from full: the write does not block.
        """
        progress = self._progress
        if progress.asleep:
            progress.asleep = False
            try:
                self._rousing.send(b"\0")
            except OSError:
                return False  # the thread closed its socket pair: it exited without `stop`
        return True

    def stop(self) -> None:
        """Let the thread finish the queued calls, run `on_stop` and exit; returns at once."""
        with self._lock:
            if not self._stopped:
                self._calls.append(None)
                self._wake_thread()
                self._stopped = True

    async def aclose(self) -> None:
        """`stop`, then wait (off the event loop) until the thread has exited."""
        self.stop()
        await anyio.to_thread.run_sync(self._thread.join)
        waker = self._waker
        if waker is not None:
            try:
                same_loop = asyncio.get_running_loop() is waker.loop
            except RuntimeError:
                same_loop = False
            if same_loop or waker.loop.is_closed():
                waker.close_receiving()


class _Call(ABC, Generic[T]):
    """One call for the worker thread: what to run, what came of it, and whom to wake."""

    __slots__ = ("abandoned", "call", "error", "result")

    def __init__(self, call: Callable[[], T]) -> None:
        self.call = call
        self.result: T | None = None
        self.error: BaseException | None = None
        self.abandoned = False  # the caller was cancelled: skip the call, or let it stop early

    @abstractmethod
    def wake(self) -> None:
        """Wake the waiting task (called on the worker thread once `result` or `error` is set)."""

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class _AsyncioCall(_Call[T]):
    __slots__ = ("future", "loop")

    def __init__(self, call: Callable[[], T], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(call)
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def wake(self) -> None:
        # try/except rather than contextlib.suppress, which costs a context manager on every call.
        try:  # noqa: SIM105
            self.loop.call_soon_threadsafe(self._settle)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    def _settle(self) -> None:
        if not self.future.done():  # a cancelled waiter leaves a cancelled future
            self.future.set_result(None)


class _WokenCall(_AsyncioCall[T]):
    """An asyncio call whose finish the thread reports through the loop's `_Waker`."""

    __slots__ = ("waker",)

    def __init__(self, call: Callable[[], T], loop: asyncio.AbstractEventLoop, waker: _Waker) -> None:
        super().__init__(call, loop)
        self.waker = waker

    def wake(self) -> None:
        self.waker.finished.append(self)
        try:
            self.waker.sending.send(b"\0")
        except BlockingIOError:
            pass  # the buffer is full of wake-ups the loop has yet to read: it reads this call too
        except OSError:
            pass  # the reading end is closed: the loop is gone, nobody waits any more


class _Waker:
    """A socket pair whose reading end is registered with one asyncio loop.

    The worker thread appends each finished call to `finished`, then writes one byte; the reader
    (on the loop) reads what is there and settles every call in `finished`. The thread alone
    closes `sending`, as it exits; the end of file that follows unregisters the reader and closes
    `receiving` (`close_receiving`, which `WorkerThread.aclose` calls at once).
    """

    __slots__ = ("finished", "loop", "receiving", "sending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.finished: collections.deque[_AsyncioCall[Any]] = collections.deque()
        self.receiving, self.sending = socket.socketpair()
        self.receiving.setblocking(False)
        self.sending.setblocking(False)
        try:
            loop.add_reader(self.receiving.fileno(), self._read)
        except BaseException:
            self.receiving.close()
            self.sending.close()
            raise

    def _read(self) -> None:
        try:
            data = self.receiving.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        finished = self.finished
        while finished:
            finished.popleft()._settle()
        if not data:
            self.close_receiving()

    def close_receiving(self) -> None:
        """Unregister the reader (unless the loop is closed) and close the reading end; idempotent."""
        if self.receiving.fileno() != -1:
            if not self.loop.is_closed():
                self.loop.remove_reader(self.receiving.fileno())
            self.receiving.close()


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
    """The worker thread's state: the call it is running, how many it has finished or skipped, whether it sleeps.

    A plain object rather than a `threading.local`, which costs a lookup of the thread's own
    dictionary on every access, twice per call. The thread alone writes `current` and `finished`;
    it sets `asleep` before it checks for calls one last time and sleeps, and whoever wakes it
    clears it (under the worker's lock), so a call is never left unseen and the thread is woken
    once.
    """

    __slots__ = ("asleep", "current", "finished")

    def __init__(self) -> None:
        self.current: _Call[Any] | None = None
        self.finished = 0
        self.asleep = False


def _serve(
    calls: collections.deque[_Call[Any] | None],
    rousing: socket.socket,
    rousing_other: socket.socket,
    progress: _Progress,
    on_stop: Callable[[], object] | None,
    wakers: list[_Waker],
) -> None:
    """The thread's loop; holds no reference to the worker's owner, so a dropped owner can be collected."""
    try:
        while True:
            if not calls:
                progress.asleep = True
                if not calls:
                    rousing.recv(4096)
                progress.asleep = False
                continue
            pending = calls.popleft()
            if pending is None:
                break
            if not pending.abandoned:
                progress.current = pending
                try:
                    pending.result = pending.call()
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
            rousing.close()
            rousing_other.close()
            for waker in wakers:
                waker.sending.close()
