"""Team members and workflow branches on a real Dask cluster: a scheduler and two workers, each its own process.

Members and nodes live in `dask_members.py`, which the workers import by path (PYTHONPATH). Tests
that kill a worker wait until the members have started (marker files), then SIGKILL it; the next
test starts it again. One cluster serves the module (starting one takes seconds).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from distributed import Client
from gecko_executor_dask import DaskExecutor

from gecko import Team, Workflow
from gecko.compose.team import ExecutionStrategy, MemberStatus
from gecko.errors import ExecutorTimeoutError
from gecko.plugins.storage import Storage
from gecko.plugins.storage.factory import create_storage
from gecko.testing.processes import ServerProcess, free_port, port_accepts

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import dask_members  # noqa: E402 - the module the workers import by the same name

DASK = str(Path(sys.executable).with_name("dask"))


class Cluster:
    """A `dask scheduler` and `dask worker` processes on loopback."""

    def __init__(self, folder: Path, markers: Path) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        env[dask_members.MARKERS] = str(markers)
        self.scheduler = ServerProcess(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
            log=folder / "scheduler.log",
            ready=lambda: port_accepts(self.port),
            env=env,
        )
        self.workers = [
            ServerProcess(
                [DASK, "worker", self.address, "--nthreads", "2", "--no-dashboard", "--no-nanny", f"--name=w{index}"],
                log=folder / f"worker{index}.log",
                ready=lambda: True,
                env=env,
            )
            for index in range(2)
        ]

    def start(self) -> None:
        self.scheduler.start()
        self.revive()

    def revive(self) -> None:
        """Start the workers that are not running and wait until every worker has joined."""
        for worker in self.workers:
            if worker.process is None:
                worker.start()
        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(len(self.workers), timeout=120)

    def stop(self) -> None:
        for process in (*self.workers, self.scheduler):
            process.stop()

    def wait_until_scheduler_forgets_tasks(self, seconds: float) -> None:
        """Return once the scheduler holds no task (a test's own client's tasks included)."""
        with Client(self.address, timeout=30) as client:
            deadline = time.monotonic() + seconds
            while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
                assert time.monotonic() < deadline, "the scheduler still holds the cancelled tasks"
                time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster_markers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("markers")


@pytest.fixture(scope="module")
def running_cluster(tmp_path_factory: pytest.TempPathFactory, cluster_markers: Path) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("dask"), cluster_markers)
    started.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def cluster(running_cluster: Cluster) -> Cluster:
    """The module's cluster with both workers running."""
    running_cluster.revive()
    return running_cluster


@pytest.fixture
def markers(cluster_markers: Path) -> Path:
    """The folder the workers leave start markers in, emptied for this test."""
    for marker in cluster_markers.iterdir():
        marker.unlink()
    return cluster_markers


def started(markers: Path, prefix: str) -> list[tuple[int, int]]:
    """`(start time, worker pid)` of every job named `prefix...` that has started, oldest first."""
    found = []
    for marker in markers.glob(f"{prefix}*"):
        _, pid, when = marker.name.rsplit(".", 2)
        found.append((int(when), int(pid)))
    return sorted(found)


async def kill_worker_when_started(cluster: Cluster, markers: Path, prefix: str, count: int) -> None:
    """Once `count` jobs named `prefix...` have started, SIGKILL the worker that started the latest one."""
    with anyio.fail_after(120):
        while len(jobs := started(markers, prefix)) < count:  # noqa: ASYNC110 - files from other processes
            await anyio.sleep(0.05)
    pid = jobs[-1][1]  # started a moment ago: it is running now
    (worker,) = (worker for worker in cluster.workers if worker.process is not None and worker.pid == pid)
    await anyio.to_thread.run_sync(worker.kill)


async def test_a_team_of_20_survives_a_killed_worker(cluster: Cluster, markers: Path) -> None:
    async with DaskExecutor(cluster.address) as executor:
        team = Team(["dask_members:square"] * 20, executor=executor, input_mapper=lambda raw, index: index)
        async with anyio.create_task_group() as group:
            group.start_soon(kill_worker_when_started, cluster, markers, "square", 4)
            results = await team.run(None)
    assert [result.status for result in results] == [MemberStatus.OK] * 20
    assert [result.result["square"] for result in results] == [index * index for index in range(20)]
    # The killed worker's running members ran again elsewhere: more starts than members.
    assert len(started(markers, "square")) > 20


def fan_out(storage: Storage, executor: DaskExecutor) -> Workflow:
    flow = Workflow("dask-fan", storage=storage, executor=executor)
    flow.add_node("begin", dask_members.begin).add_node("join", dask_members.join)
    for index, branch in enumerate(dask_members.BRANCHES):
        flow.add_node(f"branch{index}", branch)
        flow.add_edge("begin", f"branch{index}").add_edge(f"branch{index}", "join")
    return flow.set_entry_point("begin")


async def test_a_workflow_fan_out_with_redis_checkpoints_survives_a_killed_worker(
    cluster: Cluster, markers: Path
) -> None:
    namespace = f"dask-{uuid.uuid4().hex}"
    async with (
        DaskExecutor(cluster.address) as executor,
        await create_storage(f"redis://127.0.0.1:6379/0?namespace={namespace}") as storage,
    ):
        calm = await fan_out(storage, executor).execute("go", session_id="calm")
        assert len(started(markers, "branch")) == 6
        async with anyio.create_task_group() as group:
            group.start_soon(kill_worker_when_started, cluster, markers, "branch", 6 + 3)
            crashed = await fan_out(storage, executor).execute("go", session_id="crashed")
    assert (crashed.status, crashed.output, crashed.state) == (calm.status, calm.output, calm.state)
    assert calm.output == sum(index * 6 for index in range(6))
    assert len(started(markers, "branch")) > 12  # some branches ran twice: at least once, as promised


async def test_race_losers_are_cancelled_on_the_cluster(cluster: Cluster) -> None:
    async with DaskExecutor(cluster.address) as executor:
        members = ["dask_members:sleepy", "dask_members:quick", "dask_members:sleepy"]
        with anyio.fail_after(60):  # a hang guard only
            results = await Team(members, executor=executor, strategy=ExecutionStrategy.RACE).run("win")
        assert results[0].result == "WIN"
        assert [result.status for result in results[1:]] == [MemberStatus.CANCELLED] * 2
        # The losers still sleep on their workers, but the cluster has let go of their tasks.
        await anyio.to_thread.run_sync(cluster.wait_until_scheduler_forgets_tasks, 10)
    # A sleeping thread cannot be interrupted: the next test gets fresh workers, not busy ones.
    for worker in cluster.workers:
        await anyio.to_thread.run_sync(worker.kill)


async def test_a_cluster_without_workers_times_out(cluster: Cluster) -> None:
    for worker in cluster.workers:
        await anyio.to_thread.run_sync(worker.kill)
    async with DaskExecutor(cluster.address, task_timeout=3) as executor:
        (result,) = await Team(["dask_members:quick"], executor=executor).run("x")
    assert isinstance(result.error, ExecutorTimeoutError)
    assert "did not finish within 3 s" in str(result.error)
