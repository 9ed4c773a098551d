"""kill -9 at random moments, resumed at once in a new process: the uncrashed result, nothing run twice.

A 32-node workflow (4 parallel chains, a join, a `Next` jump to a node no edge reaches) under
`CheckpointStrategy.ALWAYS`, with session leases on (the default 30 s TTL). Each trial kills the
worker after a random number of node starts and resumes the session in a new process right
away: the resume must take the dead worker's lease over at once (it never retries on
`SessionOwnedElsewhere`, so waiting out the TTL would fail the trial), end in the state of an
uncrashed run, and never run a node again once one of its successors had started.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.slow

TRIALS = 25
NODES = 32

WORKER = r"""
import json, os, random, sys
import anyio
from gecko.compose._checkpoint import CheckpointStore
from gecko.compose.nodes import Next
from gecko.compose.workflow import Workflow
from gecko.plugins.storage.factory import create_storage

url, mode, side = sys.argv[1:4]


def node(name):
    async def run(ctx):
        fd = os.open(side, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{name}\n".encode())
        os.close(fd)
        await anyio.sleep(random.random() * 0.004)
        value = f"{name}({ctx.get_last_output()})"
        ctx.state[name] = len(value)
        ctx.state["total"] = len(value)
        return Next("special") if name == "router" else name
    return run


def build(storage):
    wf = Workflow("crash", storage=storage, merge_rules={"total": "add"}, snapshot_every=8)
    for name in ("entry", "join", "router", "normal", "special", "t0", "t1", "t2"):
        wf.add_node(name, node(name), jumps=("special",) if name == "router" else ())
    for chain in range(4):
        previous = "entry"
        for link in range(6):
            name = f"c{chain}_{link}"
            wf.add_node(name, node(name)).add_edge(previous, name)
            previous = name
        wf.add_edge(previous, "join")
    # The router jumps to "special", which no edge reaches; its static successor "normal" is skipped.
    wf.add_edge("join", "router").add_edge("router", "normal").add_edge("special", "t0")
    wf.add_edge("t0", "t1").add_edge("t1", "t2")
    return wf.set_entry_point("entry")


async def main():
    storage = await create_storage(url)
    wf = build(storage)
    if mode == "graph":
        plan = wf.compile()
        following = {name: [dst for dst, _ in plan.forward[name]] for name in plan.nodes}
        for src, dst in plan.jump_edges():
            following[src].append(dst)
        print(json.dumps(following))
        return
    done = []
    if mode == "resume":
        checkpoint = await CheckpointStore(storage, "crash", "session").load()
        if checkpoint is not None:
            done = [n for n, s in checkpoint.snapshot["nodes"].items() if s == "success"]
            done += [record["n"] for record in checkpoint.records]
    print(json.dumps(sorted(set(done))))
    result = await wf.execute("go", session_id="session")
    print(json.dumps(result.state, sort_keys=True))
    await storage.close()


anyio.run(main)
"""


REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_answers() -> bool:
    address = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((address.hostname or "127.0.0.1", address.port or 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def storage_url(backend: str, folder: Path, trial: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / f'{trial}.db'}"
    separator = "&" if "?" in REDIS_URL else "?"
    return f"{REDIS_URL}{separator}namespace=crash-{uuid.uuid4().hex}-{trial}"


def run_worker(script: Path, url: str, mode: str, side: Path) -> list[str]:
    finished = subprocess.run(
        [sys.executable, str(script), url, mode, str(side)], capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout.strip().splitlines()


def wait_for_starts(side: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if side.exists() and side.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.0005)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_sigkill_at_random_moments_resumes_at_once_to_the_uncrashed_state(backend: str, tmp_path: Path) -> None:
    if backend == "redis" and not redis_answers():
        pytest.fail(f"this test needs Redis at REDIS_URL ({REDIS_URL}); e.g. apt-get install redis-server")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    following: dict[str, list[str]] = json.loads(
        run_worker(script, storage_url(backend, tmp_path, "graph"), "graph", tmp_path / "graph.log")[-1]
    )
    assert len(following) == NODES
    reference = run_worker(script, storage_url(backend, tmp_path, "reference"), "run", tmp_path / "reference.log")
    expected = json.loads(reference[-1])
    assert len(expected) == NODES  # 31 node keys ("normal" is skipped) and the merged total
    rng = random.Random(11)
    killed_mid_run = 0
    for trial in range(TRIALS):
        url = storage_url(backend, tmp_path, f"trial{trial}")
        side = tmp_path / f"trial{trial}.log"
        process = subprocess.Popen(
            [sys.executable, str(script), url, "run", str(side)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Kill once a random number of nodes has started: mid-node, mid-write or between nodes.
        wait_for_starts(side, rng.randint(1, NODES - 1), process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        before = side.read_text().splitlines() if side.exists() else []
        done_line, state_line = run_worker(script, url, "resume", side)[-2:]
        done = set(json.loads(done_line))
        assert json.loads(state_line) == expected, f"trial {trial}"
        again = set(side.read_text().splitlines()[len(before) :]) & set(before)
        assert not again & done, f"trial {trial}: completed nodes ran again: {again & done}"
        started_after = {name for name in again if set(following[name]) & set(before)}
        assert not started_after, f"trial {trial}: {started_after} ran again after a successor had started"
        killed_mid_run += 0 < len(done) < NODES - 1
    assert killed_mid_run >= TRIALS // 2
