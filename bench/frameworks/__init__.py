"""One module per framework, each exposing the same workload interface.

Modules: ``floor_side`` (hand-written asyncio: the floor), ``gecko_side``, ``langgraph_side``,
``pydantic_ai_side`` and ``openai_agents_side``. ``bench/worker.py`` imports exactly one of them in a
fresh process.

Every module defines:

``IMPORT_STATEMENT: str``
    W6: what a user of the framework writes first, timed in fresh interpreters (e.g.
    ``from gecko import Agent, Workflow, Team, tool``). The worker runs it in fresh interpreters:
    wall time minus an empty interpreter's, with ``-X importtime`` and the count of modules loaded
    beside it.

and these async *setup* functions. Setup builds everything (graphs, agents, scripted models) and is
not timed; it returns a :data:`Runner`, a zero-argument coroutine function that performs the
workload once and is what the harness times (a warm-up call, then the timed repetitions):

``w1_chain(n)``
    A chain of ``n`` trivial async nodes, each adding 1 to an integer in the state; the run checks
    the final count is ``n`` and records it as ``WORK["nodes"]``.
``w2a_fanout(width)``
    entry -> ``width`` parallel no-op nodes (each counting ``WORK["branches"]``) -> join.
``w2b_fanout_sleep(width, sleep_s)``
    entry -> ``width`` parallel nodes each awaiting ``asyncio.sleep(sleep_s)`` -> join.
``w3_checkpoint(n, synchronous, db)``
    Opens a SQLite checkpoint store on the (new) file ``db`` with ``PRAGMA synchronous`` set to
    ``synchronous`` (``"NORMAL"`` or ``"FULL"``) and builds a chain of ``n`` trivial nodes (as W1).
    Each runner call runs the chain once with every node's result written to ``db`` before the next
    node starts (LangGraph: ``durability="sync"``), then closes the store. The harness calls setup
    once per repetition with a new file and measures CPU time; on the warm-up it counts the
    statements every ``sqlite3`` connection executes (trace callback), and after each run it reads
    the size of ``db`` plus ``db``-wal and the rows kept in its tables.
``w4_agent(runs)``
    An agent whose scripted model first asks for the tool call ``add(a=2, b=3)``, then answers with
    the tool's result; the runner performs ``runs`` sequential agent runs and checks each answer.
    ``add`` is a coroutine function in every framework, as in the hand-written floor: a sync tool
    costs each framework one hop to a worker thread (≈ 100 µs on these VMs), which measures the
    machine's thread wake-up rather than the framework.
``w5_agents(agents, latency_s)``
    ``agents`` W4 agents run at once; the scripted model awaits ``asyncio.sleep(latency_s)`` per call.
``w7_structured(replies)``
    ``replies`` sequential runs of the framework's agent with an output type, each feeding one
    scripted JSON reply (from a list of distinct replies) through it into :class:`Reply`.
``w8_uneven(long_s, short_s, chain)``
    entry -> {one node sleeping ``long_s``; a chain of ``chain`` nodes sleeping ``short_s`` each}
    -> join.

Extra rows (a second floor, a lower-level Gecko path) are further setup functions named in
``bench/run.py``'s workload list. Scripted models count ``WORK["model calls"]``, ``add`` counts
``WORK["tool calls"]`` and the W7 runners ``WORK["outputs"]`` (replies validated into ``Reply``);
the harness resets :data:`WORK` before each repetition and prints the last one's counts beside the
time, so a side that skips work shows it.

A side that has not implemented a workload yet raises :class:`NotImplementedError` (shown as
"n/a"); a framework without the capability raises :class:`UnsupportedError` (shown as "—").
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable

from pydantic import BaseModel

__all__ = ("WORK", "Reply", "Runner", "UnsupportedError", "add", "scripted_replies")

WORK: Counter[str] = Counter()
"""The work done in the current repetition (model calls, tool calls, nodes, outputs)."""

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
        json.dumps({"name": f"user-{i}", "age": i % 90, "score": i / 7, "active": i % 2 == 0, "tags": ["a", str(i)]})
        for i in range(count)
    ]


async def add(a: int, b: int) -> int:
    """Add two integers."""
    WORK["tool calls"] += 1
    return a + b


ANSWER = "The sum is 5."
"""What every agent workload's scripted model answers after calling ``add(a=2, b=3)``."""


def sequential_runs(ask: Callable[[], Awaitable[object]], runs: int) -> Runner:
    """W4's runner: ``runs`` agent runs one after another, each answering `ANSWER`."""

    async def run() -> None:
        for _ in range(runs):
            assert await ask() == ANSWER
        WORK["runs"] += runs

    return run


def concurrent_runs(ask: Callable[[], Awaitable[object]], agents: int) -> Runner:
    """W5's runner: ``agents`` agent runs at once (asyncio.gather), each answering `ANSWER`."""

    async def run() -> None:
        assert await asyncio.gather(*(ask() for _ in range(agents))) == [ANSWER] * agents
        WORK["runs"] += agents

    return run
