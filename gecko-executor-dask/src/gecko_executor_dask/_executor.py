"""`DaskExecutor`: Gecko jobs as tasks on a dask.distributed cluster."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from gecko.errors import ConfigurationError, ExecutorError, ExecutorTimeoutError
from gecko.redaction import redact, redact_url

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ("DaskExecutor",)


class DaskExecutor:
    """Runs Team members and workflow function nodes as tasks on a Dask cluster.

    `DaskExecutor("tcp://scheduler:8786")` joins a running cluster; `DaskExecutor()` starts a
    `LocalCluster` of `n_workers` processes on this machine at first use (start it from a script
    guarded by `if __name__ == "__main__":`, as Dask's worker processes require). Workers must run
    the same code: `gecko-ai-core` and the modules the members and nodes live in.

    A task whose worker dies is run again on another worker by the scheduler (at least once, as
    checkpointed workflow nodes already are); `task_timeout` bounds each job, so a cluster whose
    workers are all gone fails the job instead of waiting for ever. Cancelling the caller (a RACE
    loser, a timeout) cancels the task on the cluster. Usable from asyncio and trio: the Dask client
    runs on its own thread and the caller's event loop is woken when a task finishes.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        task_timeout: float | None = 600.0,
        connect_timeout: float = 30.0,
    ) -> None:
        """Describe the cluster.

        Args:
            address: The scheduler, e.g. `tcp://10.0.0.5:8786`; None starts a local cluster.
            n_workers: Worker processes of the local cluster.
            threads_per_worker: Jobs one local worker runs at once.
            task_timeout: Seconds one job may take, queueing and retries included; None waits for ever.
            connect_timeout: Seconds to reach the scheduler (or start the local cluster).
        """
        if task_timeout is not None and task_timeout <= 0:
            raise ConfigurationError(f"task_timeout must be positive seconds or None, got {task_timeout!r}")
        if n_workers < 1 or threads_per_worker < 1:
            raise ConfigurationError("n_workers and threads_per_worker must be at least 1")
        self.address = address
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.task_timeout = task_timeout
        self.connect_timeout = connect_timeout
        self._client: Client | None = None
        self._cluster: Any = None
        self._connecting = threading.Lock()

    def __repr__(self) -> str:
        where = redact_url(self.address) if self.address else f"a local cluster of {self.n_workers} workers"
        return f"DaskExecutor({where})"

    async def submit(self, job: str) -> str:
        """Run `job` on a worker and return its reply; see `gecko.plugins.executors.Executor`."""
        from gecko.compose.remote import run_job

        client = await self._connected()
        future: Future[str] = client.submit(run_job, job, pure=False)
        finished = anyio.Event()
        token = anyio.lowlevel.current_token()

        def wake(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # the waiting event loop is gone: nobody to wake
                anyio.from_thread.run_sync(finished.set, token=token)

        future.add_done_callback(wake)
        try:
            if self.task_timeout is None:
                await finished.wait()
            else:
                with anyio.fail_after(self.task_timeout):
                    await finished.wait()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(future.cancel)
            if isinstance(exc, TimeoutError):
                raise ExecutorTimeoutError(
                    f"a job on {self!r} did not finish within {self.task_timeout:g} s (are any workers alive?)"
                ) from None
            raise
        try:
            return await anyio.to_thread.run_sync(future.result)
        except Exception as exc:  # KilledWorker (the task's workers kept dying), a lost scheduler, ...
            raise ExecutorError(
                f"{self!r} could not run a job: {type(exc).__name__}: {redact(str(exc))[:300]}"
            ) from exc

    async def _connected(self) -> Client:
        client = self._client
        if client is None:
            client = await anyio.to_thread.run_sync(self._connect)
        return client

    def _connect(self) -> Client:
        from distributed import Client, LocalCluster

        with self._connecting:
            if self._client is not None:
                return self._client
            try:
                if self.address is None:
                    self._cluster = LocalCluster(
                        n_workers=self.n_workers,
                        threads_per_worker=self.threads_per_worker,
                        processes=True,
                        dashboard_address=None,
                    )
                    self._client = Client(self._cluster, timeout=self.connect_timeout)
                else:
                    self._client = Client(self.address, timeout=self.connect_timeout)
            except Exception as exc:  # OSError, TimeoutError: the scheduler is not there
                raise ExecutorError(f"cannot reach the Dask cluster of {self!r}: {redact(str(exc))[:300]}") from exc
            return self._client

    async def aclose(self) -> None:
        """Close the client, and the local cluster this executor started."""
        client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        with anyio.CancelScope(shield=True):
            if client is not None:
                await anyio.to_thread.run_sync(client.close)
            if cluster is not None:
                await anyio.to_thread.run_sync(cluster.close)

    async def __aenter__(self) -> DaskExecutor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
