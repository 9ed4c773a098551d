"""Members and workflow nodes the Dask tests run: workers import this module by its path."""

from __future__ import annotations

import os
import time
from pathlib import Path

from gecko.compose.nodes import NodeContext, step

MARKERS = "GECKO_TEST_MARKERS"


def _mark(name: str) -> None:
    """Leave a file saying `name` started, in the folder the test named (so it can kill a worker mid-run)."""
    folder = os.environ.get(MARKERS)
    if folder:
        Path(folder, f"{name}.{os.getpid()}.{time.monotonic_ns()}").touch()


def square(x: int) -> dict[str, int]:
    """A slow member: half a second of work, then x squared."""
    _mark(f"square-{x}")
    time.sleep(0.5)
    return {"x": x, "square": x * x, "pid": os.getpid()}


def quick(text: str) -> str:
    return text.upper()


def sleepy(text: str) -> str:
    """A member that loses races: a thread cannot be interrupted, so it sleeps on until its worker is killed."""
    time.sleep(30)
    return text


async def begin(ctx: NodeContext) -> int:
    ctx.state["branches"] = []
    return 6


def _branch(index: int):  # type: ignore[no-untyped-def]
    def run(ctx: NodeContext) -> str:
        _mark(f"branch-{index}")
        time.sleep(0.5)
        ctx.state[f"b{index}"] = index * ctx.get_last_output()
        return f"branch {index}"

    run.__name__ = run.__qualname__ = f"branch{index}"
    return step(writes={f"b{index}"})(run)


branch0, branch1, branch2, branch3, branch4, branch5 = (_branch(index) for index in range(6))
BRANCHES = (branch0, branch1, branch2, branch3, branch4, branch5)


async def join(ctx: NodeContext) -> int:
    return sum(ctx.state[f"b{index}"] for index in range(6))
