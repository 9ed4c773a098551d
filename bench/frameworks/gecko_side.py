"""Gecko's side of each workload (the interface is documented in ``frameworks/__init__.py``).

Graphs run on ``gecko.Workflow`` (plain async node functions, state written through ``ctx.state``),
W3 on the same workflow with ``CheckpointStrategy.ALWAYS`` into a ``sqlite://`` storage
(gecko-ai-storage-sqlite), W4/W5 on ``gecko.AgentBuilder`` with the shared async tool ``frameworks.add``
and a ``gecko.testing.models.FunctionModel`` whose reply is computed from the conversation (as the
peers' scripted models do), and W7 on ``gecko.Agent(output_type=Reply)`` with the "tool" strategy;
the extra W7 row ``w7_structure_engine`` times the bare ``StructureEngine.run`` under it.

``FunctionModel`` records every request in ``.requests`` (the request itself, one list append);
the runners clear that list at the start of each call so memory stays bounded, and the append stays
in the figures.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from frameworks import WORK, Reply, Runner, add, scripted_replies
from gecko import Agent, AgentBuilder, CheckpointStrategy, StructureEngine, Workflow
from gecko.compose.nodes import NodeContext
from gecko.core.structure import OUTPUT_TOOL_NAME
from gecko.plugins.models import ModelRequest
from gecko.plugins.storage import Storage
from gecko.plugins.storage.factory import create_storage
from gecko.testing.models import FunctionModel
from gecko.types import Message, Role, ToolCall

IMPORT_STATEMENT = "from gecko import Agent, Workflow, Team, tool"

_Node = Callable[[NodeContext], Awaitable[None]]


async def _increment(ctx: NodeContext) -> None:
    ctx.state["count"] = ctx.state.get("count", 0) + 1


async def _noop(ctx: NodeContext) -> None:
    return None


async def _branch(ctx: NodeContext) -> None:
    WORK["branches"] += 1


async def _finish(ctx: NodeContext) -> None:
    ctx.state["done"] = True


def _sleeper(seconds: float, counter: str) -> _Node:
    async def node(ctx: NodeContext) -> None:
        await anyio.sleep(seconds)
        WORK[counter] += 1

    return node


def _chain(n: int, storage: Storage | None = None) -> Workflow:
    workflow = Workflow("chain", storage=storage, checkpoint_strategy=CheckpointStrategy.ALWAYS)
    for i in range(n):
        workflow.add_node(f"n{i}", _increment)
        if i:
            workflow.add_edge(f"n{i - 1}", f"n{i}")
    workflow.set_entry_point("n0")
    workflow.compile()
    return workflow


async def w1_chain(n: int) -> Runner:
    """W1: a ``Workflow`` of ``n`` async nodes in one chain, each writing ``state["count"] + 1``.

    The state starts empty (the first node reads ``count`` as 0); the runner asserts ``count == n``.
    """
    workflow = _chain(n)

    async def run() -> None:
        result = await workflow.execute()
        assert result.state["count"] == n
        WORK["nodes"] += result.state["count"]

    return run


def _fanout(branches: dict[str, _Node]) -> Runner:
    workflow = Workflow("fanout")
    workflow.add_node("entry", _noop)
    workflow.add_node("join", _finish)
    for name, node in branches.items():
        workflow.add_node(name, node)
        workflow.add_edge("entry", name)
        workflow.add_edge(name, "join")
    workflow.set_entry_point("entry")
    workflow.compile()

    async def run() -> None:
        result = await workflow.execute()
        assert result.state["done"]

    return run


async def w2a_fanout(width: int) -> Runner:
    """W2a: entry -> ``width`` parallel no-op nodes -> a join node (runs once all of them finish)."""
    return _fanout({f"p{i}": _branch for i in range(width)})


async def w2b_fanout_sleep(width: int, sleep_s: float) -> Runner:
    """W2b: as W2a, but each parallel node awaits ``anyio.sleep(sleep_s)``."""
    return _fanout({f"p{i}": _sleeper(sleep_s, "branches") for i in range(width)})


async def w3_checkpoint(n: int, synchronous: str, db: Path) -> Runner:
    """W3: the W1 chain checkpointed after every node (``CheckpointStrategy.ALWAYS``) to ``sqlite:///{db}``.

    Setup opens the storage with ``?synchronous=``; the runner executes the chain once under session
    id ``"bench"`` (LangGraph's ``thread_id``), asserts ``count == n``, closes the storage and returns
    ``db``.
    """
    return _durable_chain(n, await create_storage(f"sqlite:///{db}?synchronous={synchronous.lower()}"), db)


async def w3_checkpoint_statements_on_loop(n: int, synchronous: str, db: Path) -> Runner:
    """W3 on ``sqlite:///{db}?synchronous=...&statements=loop``: statements that can finish at once run on the loop."""
    url = f"sqlite:///{db}?synchronous={synchronous.lower()}&statements=loop"
    return _durable_chain(n, await create_storage(url), db)


def _durable_chain(n: int, storage: Storage, db: Path) -> Runner:
    workflow = _chain(n, storage)

    async def run() -> Path:
        result = await workflow.execute(session_id="bench")
        await storage.close()
        assert result.state["count"] == n
        WORK["nodes"] += result.state["count"]
        return db

    return run


def _add_then_answer(request: ModelRequest) -> str | list[ToolCall]:
    WORK["model calls"] += 1
    last = request.messages[-1]
    if last.role is Role.TOOL:
        return f"The sum is {last.text}."
    return [ToolCall(id="call_add", name="add", arguments='{"a": 2, "b": 3}')]


async def w4_agent(runs: int) -> Runner:
    """W4: ``runs`` sequential ``Agent.run`` calls; the model asks for ``add(a=2, b=3)``, then answers."""
    model = FunctionModel(_add_then_answer)
    agent = AgentBuilder().with_model(model).with_tools([add]).build()

    async def run() -> None:
        model.requests.clear()
        for _ in range(runs):
            assert (await agent.run("What is 2 + 3?")).content == "The sum is 5."
        WORK["runs"] += runs

    return run


async def w5_agents(agents: int, latency_s: float) -> Runner:
    """W5: ``agents`` W4 runs at once in one task group, the model awaiting ``latency_s`` per call."""
    model = FunctionModel(_add_then_answer, delay=latency_s)
    agent = AgentBuilder().with_model(model).with_tools([add]).build()

    async def run() -> None:
        model.requests.clear()
        answers: list[str] = []

        async def ask() -> None:
            answers.append((await agent.run("What is 2 + 3?")).content)

        async with anyio.create_task_group() as tg:
            for _ in range(agents):
                tg.start_soon(ask)
        assert answers == ["The sum is 5."] * agents
        WORK["runs"] += agents

    return run


def _reply_tool_model(replies: int) -> FunctionModel:
    """A model that calls the output tool ``final_result`` with the next of ``replies`` documents."""
    documents = itertools.cycle(scripted_replies(replies))

    def next_reply(request: ModelRequest) -> list[ToolCall]:
        WORK["model calls"] += 1
        return [ToolCall(id="call_reply", name=OUTPUT_TOOL_NAME, arguments=next(documents))]

    return FunctionModel(next_reply)


async def w7_structured(replies: int) -> Runner:
    """W7: ``Agent(model, output_type=Reply, structure_strategy="tool").run(...)`` per reply.

    The "tool" strategy is what the peers do (LangGraph's ``with_structured_output``, Pydantic AI's
    output tool): the request offers the ``final_result`` output tool, the scripted model calls it
    with the next document, and the agent validates the arguments into ``Reply`` (``output.data``).
    """
    model = _reply_tool_model(replies)
    agent = Agent(model, output_type=Reply, structure_strategy="tool")

    async def run() -> None:
        model.requests.clear()
        for _ in range(replies):
            assert isinstance((await agent.run("Describe the user.")).data, Reply)
            WORK["outputs"] += 1

    return run


async def w7_structure_engine(replies: int) -> Runner:
    """W7, extra row: the bare ``StructureEngine(Reply, strategy="tool").run(model, messages)`` per reply."""
    model = _reply_tool_model(replies)
    engine = StructureEngine(Reply, strategy="tool")
    messages = [Message.user("Describe the user.")]

    async def run() -> None:
        model.requests.clear()
        for _ in range(replies):
            assert isinstance(await engine.run(model, messages), Reply)
            WORK["outputs"] += 1

    return run


async def w8_uneven(long_s: float, short_s: float, chain: int) -> Runner:
    """W8: entry -> {one node sleeping ``long_s``; a chain of ``chain`` nodes sleeping ``short_s``} -> join."""
    workflow = Workflow("uneven")
    workflow.add_node("entry", _noop)
    workflow.add_node("long", _sleeper(long_s, "nodes"))
    workflow.add_node("join", _finish)
    workflow.add_edge("entry", "long")
    previous = "entry"
    for i in range(chain):
        workflow.add_node(f"c{i}", _sleeper(short_s, "nodes"))
        workflow.add_edge(previous, f"c{i}")
        previous = f"c{i}"
    workflow.add_edge("long", "join")
    workflow.add_edge(previous, "join")
    workflow.set_entry_point("entry")
    workflow.compile()

    async def run() -> None:
        result = await workflow.execute()
        assert result.state["done"]

    return run
