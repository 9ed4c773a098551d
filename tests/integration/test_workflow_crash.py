"""A durable workflow SIGKILLed at random points resumes in a new process to the uncrashed result."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TRIALS = 20

# 1 entry -> 4 parallel chains of 7 nodes -> join -> 3 tail nodes: 33 nodes.
WORKER = r"""
import json, os, random, sys
import anyio
from gecko.compose._checkpoint import CheckpointStore
from gecko.compose.workflow import Workflow
from gecko.errors import CheckpointError
from gecko.plugins.storage.factory import create_storage

db, session, mode, side = sys.argv[1:5]


def node(name):
    async def run(ctx):
        fd = os.open(side, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{mode} {name}\n".encode())
        os.close(fd)
        await anyio.sleep(random.random() * 0.004)
        value = f"{name}({ctx.get_last_output()})"
        ctx.state[name] = len(value)
        ctx.state["total"] = len(value)
        return name
    return run


def build(storage):
    # No session lease: each trial resumes at once after SIGKILL instead of waiting out the dead
    # worker's lease (ownership across workers is tested in the storage plugins' folders).
    wf = Workflow("crash", storage=storage, merge_rules={"total": "add"}, snapshot_every=8, lease_ttl=None)
    wf.add_node("entry", node("entry"))
    wf.add_node("join", node("join"))
    for chain in range(4):
        previous = "entry"
        for link in range(7):
            name = f"c{chain}_{link}"
            wf.add_node(name, node(name))
            wf.add_edge(previous, name)
            previous = name
        wf.add_edge(previous, "join")
    previous = "join"
    for tail in range(3):
        wf.add_node(f"t{tail}", node(f"t{tail}"))
        wf.add_edge(previous, f"t{tail}")
        previous = f"t{tail}"
    return wf.set_entry_point("entry")


async def main():
    storage = await create_storage(f"sqlite:///{db}")
    wf = build(storage)
    if mode == "resume":
        checkpoint = await CheckpointStore(storage, "crash", session).load()
        done = []
        if checkpoint is not None:
            done = [n for n, s in checkpoint.snapshot["nodes"].items() if s == "success"]
            done += [record["n"] for record in checkpoint.records]
        print(json.dumps(sorted(set(done))))
        try:
            result = await wf.resume(session)
        except CheckpointError:
            result = await wf.execute("go", session_id=session)
    else:
        print(json.dumps([]))
        result = await wf.execute("go", session_id=session)
    print(json.dumps(result.state, sort_keys=True))
    await storage.close()


anyio.run(main)
"""


def run_worker(script: Path, db: Path, mode: str, side: Path) -> tuple[list[str], dict[str, int]]:
    finished = subprocess.run(
        [sys.executable, str(script), str(db), "session", mode, str(side)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    done_line, state_line = finished.stdout.strip().splitlines()[-2:]
    return json.loads(done_line), json.loads(state_line)


def wait_for_lines(path: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.001)


def test_sigkilled_workflow_resumes_to_uncrashed_state_without_rerunning_completed_nodes(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    _, expected = run_worker(script, tmp_path / "reference.db", "run", tmp_path / "reference.log")
    assert len(expected) == 34  # 33 node keys and the merged total
    rng = random.Random(5)
    killed_mid_run = 0
    for trial in range(TRIALS):
        db = tmp_path / f"trial{trial}.db"
        side = tmp_path / f"trial{trial}.log"
        process = subprocess.Popen(
            [sys.executable, str(script), str(db), "session", "run", str(side)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Kill once a random number of nodes has started: mid-node, mid-write or between nodes.
        wait_for_lines(side, rng.randint(1, 33), process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        before = side.read_text().splitlines() if side.exists() else []
        done, state = run_worker(script, db, "resume", side)
        assert state == expected, f"trial {trial}"
        rerun = [line.split()[1] for line in side.read_text().splitlines()[len(before) :]]
        assert not set(done) & set(rerun), f"trial {trial}: completed nodes ran again: {set(done) & set(rerun)}"
        killed_mid_run += 0 < len(done) < 33
    assert killed_mid_run >= TRIALS // 2
