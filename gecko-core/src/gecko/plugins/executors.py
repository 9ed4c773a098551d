"""The executor contract: where Team members and workflow function nodes run when not in this process.

Without an executor (the default) members and nodes run in the calling event loop, as always. With
one (`Team(..., executor=...)`, `Workflow(..., executor=...)`), each member run or node run becomes a
job: a JSON document naming the code by import path and carrying JSON data only. The executor moves
the job to a worker, where `gecko.compose.remote.run_job` runs it, and brings the JSON reply back.
An executor plugin is transport only; what a job means is the core's.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ("Executor",)


@runtime_checkable
class Executor(Protocol):
    """Runs jobs somewhere else (a Dask cluster, say)."""

    async def submit(self, job: str) -> str:
        """Run `job` with `gecko.compose.remote.run_job` on a worker and return its reply.

        Cancelling the caller must cancel the job where it runs (or as far as the cluster can).

        Raises:
            ExecutorError: The job could not be run (no cluster, the job's worker kept dying).
            ExecutorTimeoutError: It did not finish within the executor's time limit.
        """
        ...

    async def aclose(self) -> None:
        """Release the executor's connection (and a cluster it started)."""
        ...
