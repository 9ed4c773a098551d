"""One module per framework, each exposing the same workload interface.

Modules: ``floor_side`` (hand-written asyncio: the floor), ``gecko_side``, ``langgraph_side``,
``pydantic_ai_side`` and ``openai_agents_side``. ``bench/worker.py`` imports exactly one of them in a
fresh process.

Every module defines:

``IMPORT_MODULE: str``
    W6: the module that ``python -X importtime -c "import X"`` measures.

and these async *setup* functions. Setup builds everything (graphs, agents, scripted models) and is
not timed; it returns a :data:`Runner`, a zero-argument coroutine function that performs the
workload once and is what the harness times (a warm-up call, then the timed repetitions):

``w1_chain(n)``
    A chain of ``n`` trivial async nodes, each adding 1 to an integer in the state; the run checks
    the final count is ``n``.
``w2a_fanout(width)``
    entry -> ``width`` parallel no-op nodes -> join.
``w2b_fanout_sleep(width, sleep_s)``
    entry -> ``width`` parallel nodes each awaiting ``asyncio.sleep(sleep_s)`` -> join.
``w3_checkpoint(n, db)``
    Opens a SQLite checkpoint store on the (new) file ``db`` and builds a chain of ``n`` trivial
    nodes (as W1). Each runner call runs the chain once with state checkpointed to ``db`` after
    every node, then closes the store. The harness calls setup once per repetition with a new
    file, measures CPU time, and reads the size of ``db`` plus ``db``-wal afterwards.
``w4_agent(runs)``
    An agent whose scripted model first asks for the tool call ``add(a=2, b=3)``, then answers with
    the tool's result; the runner performs ``runs`` sequential agent runs and checks each answer.
    ``add`` is a coroutine function in every framework, as in the hand-written floor: a sync tool
    costs each framework one hop to a worker thread (≈ 100 µs on these VMs), which measures the
    machine's thread wake-up rather than the framework.
``w5_agents(agents, latency_s)``
    ``agents`` W4 agents run at once; the scripted model awaits ``asyncio.sleep(latency_s)`` per call.
``w7_structured(replies)``
    ``replies`` sequential runs, each feeding one scripted JSON reply (from a list of distinct
    replies) through the framework's structured-output path into :class:`Reply`.
``w8_uneven(long_s, short_s, chain)``
    entry -> {one node sleeping ``long_s``; a chain of ``chain`` nodes sleeping ``short_s`` each}
    -> join.

A side that has not implemented a workload yet raises :class:`NotImplementedError` (shown as
"n/a"); a framework without the capability raises :class:`UnsupportedError` (shown as "—").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from pydantic import BaseModel

__all__ = ("Reply", "Runner", "UnsupportedError", "add", "scripted_replies")

Runner = Callable[[], Awaitable[object]]
"""Performs the workload once; the harness times each call."""


class UnsupportedError(NotImplementedError):
    """The framework has no such capability (BENCHMARKS.md's "—")."""


class Reply(BaseModel):
    """The W7 structured-output target: five fields of mixed types."""

    name: str
    age: int
    score: float
    active: bool
    tags: list[str]


def scripted_replies(count: int) -> list[str]:
    """Return ``count`` distinct JSON documents that each validate as a :class:`Reply`."""
    return [
        json.dumps(
            {"name": f"user-{i}", "age": i % 90, "score": i / 7, "active": i % 2 == 0, "tags": ["a", str(i)]}
        )
        for i in range(count)
    ]


async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


ANSWER = "The sum is 5."
"""What every agent workload's scripted model answers after calling ``add(a=2, b=3)``."""


def sequential_runs(ask: Callable[[], Awaitable[object]], runs: int) -> Runner:
    """W4's runner: ``runs`` agent runs one after another, each answering `ANSWER`."""

    async def run() -> None:
        for _ in range(runs):
            assert await ask() == ANSWER

    return run


def concurrent_runs(ask: Callable[[], Awaitable[object]], agents: int) -> Runner:
    """W5's runner: ``agents`` agent runs at once (asyncio.gather), each answering `ANSWER`."""

    async def run() -> None:
        assert await asyncio.gather(*(ask() for _ in range(agents))) == [ANSWER] * agents

    return run
