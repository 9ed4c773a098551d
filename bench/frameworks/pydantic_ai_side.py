"""Pydantic AI's side of each workload, on a ``FunctionModel``.

pydantic-graph's ``GraphBuilder`` for graphs, ``Agent`` with a tool for W4/W5, and ``output_type`` (the
output tool) for W7.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_graph import GraphBuilder, StepContext, reduce_null

from frameworks import WORK, Reply, Runner, UnsupportedError, add, scripted_replies

IMPORT_STATEMENT = "from pydantic_ai import Agent"


@dataclass
class _Count:
    count: int = 0


async def _increment(ctx: StepContext[_Count, None, None]) -> None:
    ctx.state.count += 1


async def _noop(ctx: StepContext[None, None, None]) -> None:
    return None


async def _branch(ctx: StepContext[None, None, None]) -> None:
    WORK["branches"] += 1


async def w1_chain(n: int) -> Runner:
    """A ``GraphBuilder`` chain of ``n`` steps, each incrementing the graph state."""
    g = GraphBuilder(state_type=_Count)
    steps = [g.step(_increment, node_id=f"n{i}") for i in range(n)]
    g.add_edge(g.start_node, steps[0])
    for source, destination in itertools.pairwise(steps):
        g.add_edge(source, destination)
    g.add_edge(steps[-1], g.end_node)
    graph = g.build()

    async def run() -> None:
        state = _Count()
        await graph.run(state=state)
        assert state.count == n
        WORK["nodes"] += state.count

    return run


def _fanout(width: int, step: Any) -> Runner:
    g = GraphBuilder()
    entry = g.step(_noop, node_id="entry")
    branches = [g.step(step, node_id=f"p{i}") for i in range(width)]
    join = g.join(reduce_null, initial=None, node_id="join")
    g.add_edge(g.start_node, entry)
    g.add(g.edge_from(entry).to(*branches))
    for branch in branches:
        g.add_edge(branch, join)
    g.add_edge(join, g.end_node)
    graph = g.build()

    async def run() -> None:
        await graph.run()

    return run


async def w2a_fanout(width: int) -> Runner:
    """Entry -> a broadcast to ``width`` parallel no-op steps -> a ``reduce_null`` join."""
    return _fanout(width, _branch)


async def w2b_fanout_sleep(width: int, sleep_s: float) -> Runner:
    """Entry -> a broadcast to ``width`` parallel sleeping steps -> a ``reduce_null`` join."""

    async def sleeper(ctx: StepContext[None, None, None]) -> None:
        await asyncio.sleep(sleep_s)
        WORK["branches"] += 1

    return _fanout(width, sleeper)


async def w3_checkpoint(n: int, synchronous: str, db: Path) -> Runner:
    """UnsupportedError: pydantic-graph has no SQLite state persistence."""
    raise UnsupportedError("pydantic-graph has no SQLite checkpointer")


def _add_then_answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    WORK["model calls"] += 1
    last = messages[-1]
    if isinstance(last, ModelRequest):
        for part in last.parts:
            if isinstance(part, ToolReturnPart):
                return ModelResponse(parts=[TextPart(f"The sum is {part.content}.")])
    return ModelResponse(parts=[ToolCallPart("add", {"a": 2, "b": 3})])


async def w4_agent(runs: int) -> Runner:
    """``runs`` sequential ``Agent.run`` calls on a ``FunctionModel`` with the tool ``add``."""
    agent = Agent(FunctionModel(_add_then_answer), tools=[add])

    async def run() -> None:
        for _ in range(runs):
            assert (await agent.run("What is 2 + 3?")).output == "The sum is 5."
        WORK["runs"] += runs

    return run


async def w5_agents(agents: int, latency_s: float) -> Runner:
    """``agents`` concurrent ``Agent.run`` calls, the ``FunctionModel`` sleeping ``latency_s`` per call."""

    async def slow_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await asyncio.sleep(latency_s)
        return _add_then_answer(messages, info)

    agent = Agent(FunctionModel(slow_model), tools=[add])

    async def run() -> None:
        results = await asyncio.gather(*(agent.run("What is 2 + 3?") for _ in range(agents)))
        assert [r.output for r in results] == ["The sum is 5."] * agents
        WORK["runs"] += agents

    return run


async def w7_structured(replies: int) -> Runner:
    """``Agent(output_type=Reply)``: the ``FunctionModel`` calls the output tool with one document per run."""
    documents = itertools.cycle(scripted_replies(replies))

    def next_reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        WORK["model calls"] += 1
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, next(documents))])

    agent = Agent(FunctionModel(next_reply), output_type=Reply)

    async def run() -> None:
        for _ in range(replies):
            assert isinstance((await agent.run("Describe the user.")).output, Reply)
            WORK["outputs"] += 1

    return run


async def w8_uneven(long_s: float, short_s: float, chain: int) -> Runner:
    """Entry -> a broadcast to {``long`` step; chain of ``chain`` steps} -> a ``reduce_null`` join."""

    async def long_step(ctx: StepContext[None, None, None]) -> None:
        await asyncio.sleep(long_s)
        WORK["nodes"] += 1

    async def short_step(ctx: StepContext[None, None, None]) -> None:
        await asyncio.sleep(short_s)
        WORK["nodes"] += 1

    g = GraphBuilder()
    entry = g.step(_noop, node_id="entry")
    long = g.step(long_step, node_id="long")
    links = [g.step(short_step, node_id=f"c{i}") for i in range(chain)]
    join = g.join(reduce_null, initial=None, node_id="join")
    g.add_edge(g.start_node, entry)
    g.add(g.edge_from(entry).to(long, links[0]))
    for source, destination in itertools.pairwise(links):
        g.add_edge(source, destination)
    g.add_edge(long, join)
    g.add_edge(links[-1], join)
    g.add_edge(join, g.end_node)
    graph = g.build()

    async def run() -> None:
        await graph.run()

    return run
