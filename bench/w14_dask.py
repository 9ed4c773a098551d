"""Team fan-out on Dask: CPU-bound members on one process vs a local cluster, and the per-job overhead.

``python bench/w14_dask.py [--members 200] [--work-ms 50]``

Rows (one run, wall time):
- "in-process": `Team` of N members, each `burn(work_ms)` (pure-Python CPU work in a worker thread,
  so the GIL serializes them), no executor.
- "dask 2 workers": the same Team with `executor=DaskExecutor()`, a `LocalCluster` of 2 worker
  processes with one thread each (started before timing).
- "overhead": N members that return their input, on the same cluster: (wall time) / N is what one
  job costs (JSON encoding, the scheduler round trip, the worker's own event loop).
The work is counted: every row checks it got N results.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gecko_executor_dask import DaskExecutor

from gecko import Team


async def timed(team: Team, value: object) -> float:
    start = time.perf_counter()
    results = await team.run(value)
    elapsed = time.perf_counter() - start
    assert len(results) == len(team.members)
    assert all(result.is_success for result in results), [result.error for result in results if result.error]
    return elapsed


async def main(members: int, work_ms: float) -> None:
    import dask_work

    local = await timed(Team([dask_work.burn] * members), work_ms)
    async with DaskExecutor(n_workers=2, threads_per_worker=1) as executor:
        await timed(Team([dask_work.echo] * 4, executor=executor), 1)  # start the cluster, warm the workers
        on_dask = await timed(Team([dask_work.burn] * members, executor=executor), work_ms)
        overhead = await timed(
            Team([dask_work.echo] * members, executor=executor, input_mapper=lambda raw, index: index), None
        )
    ideal = members * work_ms / 1000
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {members} members x {work_ms:g} ms CPU")
    print(f"{'row':<16}{'wall s':>10}{'per member ms':>16}")
    print(f"{'in-process':<16}{local:>10.2f}{local / members * 1000:>16.1f}   (serial ideal {ideal:.1f} s)")
    print(f"{'dask 2 workers':<16}{on_dask:>10.2f}{on_dask / members * 1000:>16.1f}   (ideal {ideal / 2:.1f} s)")
    print(f"{'overhead':<16}{overhead:>10.2f}{overhead / members * 1000:>16.2f}   (a job that does nothing)")
    print(f"speed-up on 2 workers: {local / on_dask:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--work-ms", type=float, default=50.0)
    arguments = parser.parse_args()
    anyio.run(main, arguments.members, arguments.work_ms)
