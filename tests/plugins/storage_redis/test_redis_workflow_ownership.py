"""Workflow ownership on a real Redis, with real worker processes: one runner per session, never a fork."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from gecko.compose._checkpoint import CheckpointStore
from gecko.compose._ownership import attempts_key
from gecko.compose.nodes import NodeContext, interrupt
from gecko.compose.workflow import Workflow
from gecko.errors import StorageUnavailableError
from gecko.plugins.storage import Storage
from gecko.plugins.storage.factory import create_storage
from gecko.testing.conformance import WorkflowOwnershipConformance

RACE_TRIALS = 50

# Resumes each session named on stdin; the winner's node waits until the loser has reported, so
# both attempts overlap for certain. Prints "ran" or "owned" per session.
RACE_WORKER = r"""
import sys, anyio
from gecko.compose.nodes import interrupt
from gecko.compose.workflow import Workflow
from gecko.errors import SessionOwnedElsewhere
from gecko.plugins.storage.factory import create_storage
from gecko.testing.conformance import WorkflowOwnershipConformance


async def main(url):
    storage = await create_storage(url)

    async def ask(ctx):
        answer = interrupt("go?")
        with anyio.fail_after(20):
            while await storage.get(f"loser/{ctx.session_id}") is None:
                await anyio.sleep(0.002)
        return answer

    wf = Workflow("race", storage=storage).add_node("ask", ask).set_entry_point("ask")
    print("ready", flush=True)
    while line := sys.stdin.readline():
        session = line.strip()
        try:
            await wf.resume(session, "go")
            print("ran", flush=True)
        except SessionOwnedElsewhere:
            await storage.set(f"loser/{session}", True)
            print("owned", flush=True)
    await storage.close()


anyio.run(main, sys.argv[1])
"""


async def read_line(stream: BufferedByteReceiveStream) -> str:
    with anyio.fail_after(30):
        return (await stream.receive_until(b"\n", 1000)).decode()


async def test_two_workers_racing_to_resume_a_session_exactly_one_runs_it(redis_url: str, tmp_path: Path) -> None:
    async with await create_storage(redis_url) as storage:

        async def ask(ctx: NodeContext) -> str:
            return str(interrupt("go?"))

        paused = Workflow("race", storage=storage).add_node("ask", ask).set_entry_point("ask")
        sessions = [f"race-{trial}" for trial in range(RACE_TRIALS)]
        for session in sessions:
            assert (await paused.execute(session_id=session)).paused
        logs = [tmp_path / f"worker-{index}.err" for index in range(2)]
        workers = []
        for log in logs:
            with log.open("wb") as sink:
                workers.append(await anyio.open_process([sys.executable, "-c", RACE_WORKER, redis_url], stderr=sink))
        try:
            outputs = [BufferedByteReceiveStream(worker.stdout) for worker in workers if worker.stdout is not None]
            assert [await read_line(output) for output in outputs] == ["ready", "ready"]
            outcomes = []
            for session in sessions:
                for worker in workers:
                    assert worker.stdin is not None
                    await worker.stdin.send(f"{session}\n".encode())
                outcomes.append(sorted([await read_line(output) for output in outputs]))
            for worker in workers:
                assert worker.stdin is not None
                await worker.stdin.aclose()
            assert [await worker.wait() for worker in workers] == [0, 0]
        except BaseException:
            for log in logs:  # what a worker that died or hung said, in the failure report
                print(f"--- {log.name}:\n{log.read_text(errors='replace')}")
            raise
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()
        assert outcomes == [["owned", "ran"]] * RACE_TRIALS
        for session in sessions:
            stored = await CheckpointStore(storage, "race", session).load()
            assert stored is not None
            assert stored.snapshot["status"] == "completed"
            assert stored.snapshot["history"]["entries"] == [["ask", "go"]]


KILL_TRIALS = 5

# 1 entry -> 3 parallel chains of 4 nodes -> join: 14 nodes, each writing its own key and a merged total.
CHAIN_WORKER = r"""
import json, os, random, sys
import anyio
from gecko.compose.workflow import Workflow
from gecko.errors import CheckpointError, SessionOwnedElsewhere
from gecko.plugins.storage.factory import create_storage
from gecko.testing.conformance import WorkflowOwnershipConformance

url, session, mode, side = sys.argv[1:5]


def node(name):
    async def run(ctx):
        fd = os.open(side, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{name}\n".encode())
        os.close(fd)
        await anyio.sleep(random.random() * 0.01)
        ctx.state[name] = len(f"{name}({ctx.get_last_output()})")  # the join's input order varies
        ctx.state["total"] = len(name)
        return name
    return run


def build(storage):
    wf = Workflow("chains", storage=storage, merge_rules={"total": "add"}, snapshot_every=4, lease_ttl=1.0)
    wf.add_node("entry", node("entry")).add_node("join", node("join"))
    for chain in range(3):
        previous = "entry"
        for link in range(4):
            name = f"c{chain}_{link}"
            wf.add_node(name, node(name)).add_edge(previous, name)
            previous = name
        wf.add_edge(previous, "join")
    return wf.set_entry_point("entry")


async def main():
    storage = await create_storage(url)
    wf = build(storage)
    resume = mode == "resume"
    while True:
        try:
            result = await (wf.resume(session) if resume else wf.execute("go", session_id=session))
            break
        except SessionOwnedElsewhere:
            await anyio.sleep(0.05)  # the killed worker's lease has not lapsed yet
        except CheckpointError:
            resume = False  # killed before its first checkpoint
    print(json.dumps(result.state, sort_keys=True), flush=True)
    await storage.close()


anyio.run(main)
"""


def run_chain_worker(script: Path, url: str, session: str, mode: str, side: Path) -> dict[str, Any]:
    finished = subprocess.run(
        [sys.executable, str(script), url, session, mode, str(side)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    state: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    return state


def wait_for_lines(path: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.001)


def test_a_worker_killed_mid_run_is_resumed_by_another_worker_to_the_uncrashed_state(
    redis_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(CHAIN_WORKER)
    expected = run_chain_worker(script, redis_url, "reference", "run", tmp_path / "reference.log")
    assert len(expected) == 15  # 14 node keys and the merged total
    rng = random.Random(7)
    for trial in range(KILL_TRIALS):
        side = tmp_path / f"trial{trial}.log"
        process = subprocess.Popen(
            [sys.executable, str(script), redis_url, f"kill-{trial}", "run", str(side)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_lines(side, rng.randint(2, 13), process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert run_chain_worker(script, redis_url, f"kill-{trial}", "resume", side) == expected, f"trial {trial}"


async def test_a_redis_restart_during_a_run_loses_no_committed_checkpoint(redis_server: Any) -> None:
    async def restart_redis(ctx: NodeContext) -> int:
        await anyio.to_thread.run_sync(redis_server.kill)
        await anyio.to_thread.run_sync(redis_server.start)
        return await increment(ctx)

    async def increment(ctx: NodeContext) -> int:
        ctx.state["count"] = ctx.state.get("count", 0) + 1
        return int(ctx.state["count"])

    def build(storage: Storage) -> Workflow:
        wf = Workflow("restart", storage=storage, snapshot_every=4)
        for index in range(20):
            wf.add_node(f"n{index}", restart_redis if index == 10 else increment)
            if index:
                wf.add_edge(f"n{index - 1}", f"n{index}")
        return wf.set_entry_point("n0")

    async with await create_storage(redis_server.url) as storage:
        result = await build(storage).execute(session_id="s1")
    assert result.state == {"count": 20}
    await anyio.to_thread.run_sync(redis_server.kill)
    await anyio.to_thread.run_sync(redis_server.start)
    async with await create_storage(redis_server.url) as storage:
        stored = await CheckpointStore(storage, "restart", "s1").load()
        assert stored is not None
        assert stored.snapshot["status"] == "completed"
        assert stored.snapshot["state"] == {"count": 20}
        assert [node for node, _ in stored.snapshot["history"]["entries"]] == [f"n{index}" for index in range(20)]
        assert await storage.get(attempts_key("restart", "s1")) is None


async def test_a_redis_dying_mid_run_stops_the_run_before_the_next_node_and_resume_reruns_only_that_node(
    redis_server: Any,
) -> None:
    started: list[str] = []

    def build(storage: Storage, killer: str | None) -> Workflow:
        async def step(ctx: NodeContext) -> str:
            started.append(ctx.node)
            if ctx.node == killer:
                await anyio.to_thread.run_sync(redis_server.kill)
            ctx.state[ctx.node] = len(started)
            return ctx.node

        wf = Workflow("dying", storage=storage)
        for index in range(10):
            wf.add_node(f"n{index}", step)
            if index:
                wf.add_edge(f"n{index - 1}", f"n{index}")
        return wf.set_entry_point("n0")

    async with await create_storage(redis_server.url) as storage:
        with pytest.raises(StorageUnavailableError):
            await build(storage, killer="n4").execute(session_id="s1")
        # n4's checkpoint could not be written, so n5 never started.
        assert started == ["n0", "n1", "n2", "n3", "n4"]
        await anyio.to_thread.run_sync(redis_server.start)
        started.clear()
        # The same process resumes at once: the failed run's lease is its own, and that run has ended.
        result = await build(storage, killer=None).resume("s1")
    assert started == [f"n{index}" for index in range(4, 10)]
    assert result.status == "completed"
    assert sorted(result.state) == [f"n{index}" for index in range(10)]


class TestRedisWorkflowOwnership(WorkflowOwnershipConformance):
    @pytest.fixture
    def storage_url(self, redis_url: str) -> str:
        return redis_url
