"""The floor: each workload hand-written on plain asyncio, sqlite3 and pydantic, no framework.

W1 has two floors: ``w1_chain`` spawns one task per node (what an engine that isolates nodes
pays), ``w1_bare_chain`` awaits each node inline (the least code that runs a chain).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from frameworks import WORK, Reply, Runner, add, scripted_replies

IMPORT_STATEMENT = "import pydantic"
IMPORT_BASE_MODEL = "from pydantic import BaseModel"
"""W6's second floor: what any framework whose types are pydantic models loads at the least."""


async def _increment(state: dict[str, int]) -> dict[str, int]:
    return {"count": state["count"] + 1}


async def w1_chain(n: int) -> Runner:
    """A chain of ``n`` nodes, each one awaited task updating the state."""

    async def run() -> None:
        state = {"count": 0}
        for _ in range(n):
            state = await asyncio.create_task(_increment(state))
        assert state["count"] == n
        WORK["nodes"] += state["count"]

    return run


async def w1_bare_chain(n: int) -> Runner:
    """A chain of ``n`` nodes, each coroutine awaited inline: no task, no scheduler."""

    async def run() -> None:
        state = {"count": 0}
        for _ in range(n):
            state = await _increment(state)
        assert state["count"] == n
        WORK["nodes"] += state["count"]

    return run


async def _noop() -> None:
    WORK["branches"] += 1


async def w2a_fanout(width: int) -> Runner:
    """Entry -> ``width`` parallel no-op tasks -> join."""

    async def run() -> None:
        await asyncio.gather(*(_noop() for _ in range(width)))

    return run


async def w2b_fanout_sleep(width: int, sleep_s: float) -> Runner:
    """Entry -> ``width`` parallel tasks each sleeping ``sleep_s`` -> join."""

    async def sleeper() -> None:
        await asyncio.sleep(sleep_s)
        WORK["branches"] += 1

    async def run() -> None:
        await asyncio.gather(*(sleeper() for _ in range(width)))

    return run


async def w3_checkpoint(n: int, synchronous: str, db: Path) -> Runner:
    """A chain of ``n`` nodes, the state committed to a sqlite3 table (WAL) after each node; every state kept."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE checkpoints (run TEXT, step INTEGER, state TEXT, PRIMARY KEY (run, step))")

    async def run() -> Path:
        state = {"count": 0}
        for step in range(n):
            state = await _increment(state)
            conn.execute("INSERT INTO checkpoints VALUES (?, ?, ?)", ("run", step, json.dumps(state)))
            conn.commit()
        conn.close()
        assert state["count"] == n
        WORK["nodes"] += state["count"]
        return db

    return run


def _scripted_model(messages: list[dict[str, Any]]) -> dict[str, Any]:
    last = messages[-1]
    if last["role"] == "tool":
        return {"role": "assistant", "content": f"The sum is {last['content']}."}
    return {"role": "assistant", "tool_call": {"name": "add", "args": {"a": 2, "b": 3}}}


async def _agent(latency_s: float) -> str:
    tools = {"add": add}
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What is 2 + 3?"}]
    while True:
        if latency_s:
            await asyncio.sleep(latency_s)
        WORK["model calls"] += 1
        reply = _scripted_model(messages)
        messages.append(reply)
        call = reply.get("tool_call")
        if call is None:
            return str(reply["content"])
        messages.append({"role": "tool", "content": str(await tools[call["name"]](**call["args"]))})


async def w4_agent(runs: int) -> Runner:
    """``runs`` sequential runs of a hand-written tool loop over a scripted model."""

    async def run() -> None:
        for _ in range(runs):
            assert await _agent(0.0) == "The sum is 5."
        WORK["runs"] += runs

    return run


async def w5_agents(agents: int, latency_s: float) -> Runner:
    """``agents`` hand-written tool loops at once, the model sleeping ``latency_s`` per call."""

    async def run() -> None:
        answers = await asyncio.gather(*(_agent(latency_s) for _ in range(agents)))
        assert answers == ["The sum is 5."] * agents
        WORK["runs"] += agents

    return run


async def w7_structured(replies: int) -> Runner:
    """``Reply.model_validate_json`` on each scripted reply (no agent, no model call)."""
    documents = scripted_replies(replies)

    async def run() -> None:
        for document in documents:
            assert isinstance(Reply.model_validate_json(document), Reply)
            WORK["outputs"] += 1

    return run


async def w8_uneven(long_s: float, short_s: float, chain: int) -> Runner:
    """One task sleeping ``long_s`` beside a chain of ``chain`` sleeps of ``short_s``, gathered."""

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)
        WORK["nodes"] += 1

    async def chained() -> None:
        for _ in range(chain):
            await sleep(short_s)

    async def run() -> None:
        await asyncio.gather(sleep(long_s), chained())

    return run
