"""LangGraph's side of each workload, on a scripted chat model.

``StateGraph`` for graphs, ``AsyncSqliteSaver`` with ``durability="sync"`` for W3, the prebuilt
ReAct agent for W4/W5 and langchain-core's ``with_structured_output`` for W7.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import warnings
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Protocol, TypedDict

import aiosqlite
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import create_react_agent

from frameworks import WORK, Reply, Runner, add, concurrent_runs, scripted_replies, sequential_runs

IMPORT_STATEMENT = "from langgraph.graph import StateGraph"


class _Count(TypedDict):
    count: int


class _Done(TypedDict):
    done: bool


async def _increment(state: _Count) -> dict[str, int]:
    return {"count": state["count"] + 1}


async def _noop(state: _Done) -> dict[str, bool]:
    return {}


async def _branch(state: _Done) -> dict[str, bool]:
    WORK["branches"] += 1
    return {}


async def _finish(state: _Done) -> dict[str, bool]:
    return {"done": True}


class _Step(Protocol):
    def __call__(self, state: _Done) -> Awaitable[dict[str, bool]]: ...


def _sleeper(seconds: float, counter: str) -> _Step:
    async def node(state: _Done) -> dict[str, bool]:
        await asyncio.sleep(seconds)
        WORK[counter] += 1
        return {}

    return node


def _chain(n: int) -> StateGraph[_Count]:
    builder = StateGraph(_Count)
    previous = START
    for i in range(n):
        builder.add_node(f"n{i}", _increment)
        builder.add_edge(previous, f"n{i}")
        previous = f"n{i}"
    builder.add_edge(previous, END)
    return builder


async def w1_chain(n: int) -> Runner:
    """A compiled ``StateGraph`` chain of ``n`` nodes."""
    graph = _chain(n).compile()
    config: Any = {"recursion_limit": n + 10}

    async def run() -> None:
        result = await graph.ainvoke({"count": 0}, config)
        assert result["count"] == n
        WORK["nodes"] += result["count"]

    return run


def _fanout(branches: dict[str, _Step]) -> Runner:
    builder: StateGraph[_Done] = StateGraph(_Done)
    builder.add_node("entry", _noop)
    builder.add_node("join", _finish)
    builder.add_edge(START, "entry")
    for name, node in branches.items():
        builder.add_node(name, node)
        builder.add_edge("entry", name)
    builder.add_edge(list(branches), "join")
    builder.add_edge("join", END)
    graph = builder.compile()

    async def run() -> None:
        result = await graph.ainvoke({"done": False})
        assert result["done"]

    return run


async def w2a_fanout(width: int) -> Runner:
    """Entry -> ``width`` parallel no-op nodes -> a join edge waiting on all of them."""
    return _fanout({f"p{i}": _branch for i in range(width)})


async def w2b_fanout_sleep(width: int, sleep_s: float) -> Runner:
    """Entry -> ``width`` parallel sleeping nodes -> a join edge waiting on all of them."""
    return _fanout({f"p{i}": _sleeper(sleep_s, "branches") for i in range(width)})


async def w3_checkpoint(n: int, synchronous: str, db: Path) -> Runner:
    """The W1 chain compiled with an ``AsyncSqliteSaver`` on ``db``, run with ``durability="sync"``.

    ``durability="sync"`` writes each superstep's checkpoint before the next step starts (the
    default, "async", lets the next step run while the write is in flight). The saver's connection
    is opened here so ``PRAGMA synchronous`` can be set (the saver itself keeps SQLite's default,
    FULL), and its tables are created before the timed run.
    """
    stack = AsyncExitStack()
    conn = await stack.enter_async_context(aiosqlite.connect(str(db)))
    await conn.execute(f"PRAGMA synchronous={synchronous}")
    saver = AsyncSqliteSaver(conn)
    await saver.setup()
    graph = _chain(n).compile(checkpointer=saver)
    config: Any = {"recursion_limit": n + 10, "configurable": {"thread_id": "bench"}}

    async def run() -> Path:
        result = await graph.ainvoke({"count": 0}, config, durability="sync")
        await stack.aclose()
        assert result["count"] == n
        WORK["nodes"] += result["count"]
        return db

    return run


class _ScriptedChat(BaseChatModel):
    """A chat model whose reply is computed by ``script`` from the conversation, after ``latency_s``."""

    script: Callable[[list[BaseMessage]], AIMessage]
    latency_s: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> _ScriptedChat:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        WORK["model calls"] += 1
        return ChatResult(generations=[ChatGeneration(message=self.script(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return self._generate(messages)


def _add_then_answer(messages: list[BaseMessage]) -> AIMessage:
    last = messages[-1]
    if isinstance(last, ToolMessage):
        return AIMessage(content=f"The sum is {last.content}.")
    return AIMessage(content="", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "call_add"}])


def _agent(latency_s: float) -> Any:
    with warnings.catch_warnings():
        # create_react_agent moved to the `langchain` package; langgraph-prebuilt still ships it.
        warnings.simplefilter("ignore", DeprecationWarning)
        return create_react_agent(_ScriptedChat(script=_add_then_answer, latency_s=latency_s), [add])


async def _ask(agent: Any) -> str:
    result = await agent.ainvoke({"messages": [("user", "What is 2 + 3?")]})
    return str(result["messages"][-1].content)


async def w4_agent(runs: int) -> Runner:
    """``runs`` sequential ``create_react_agent`` runs with the tool ``add``."""
    agent = _agent(0.0)
    return sequential_runs(lambda: _ask(agent), runs)


async def w5_agents(agents: int, latency_s: float) -> Runner:
    """``agents`` concurrent ``create_react_agent`` runs, the model sleeping ``latency_s`` per call."""
    agent = _agent(latency_s)
    return concurrent_runs(lambda: _ask(agent), agents)


async def w7_structured(replies: int) -> Runner:
    """``with_structured_output(Reply)`` (tool calling) on a model replaying one document per call."""
    documents = itertools.cycle(scripted_replies(replies))

    def next_reply(messages: list[BaseMessage]) -> AIMessage:
        # A provider adapter decodes the tool-call JSON; the scripted model does the same.
        args = json.loads(next(documents))
        return AIMessage(content="", tool_calls=[{"name": "Reply", "args": args, "id": "call_reply"}])

    structured = _ScriptedChat(script=next_reply).with_structured_output(Reply)

    async def run() -> None:
        for _ in range(replies):
            assert isinstance(await structured.ainvoke("Describe the user."), Reply)
            WORK["outputs"] += 1

    return run


async def w8_uneven(long_s: float, short_s: float, chain: int) -> Runner:
    """Entry -> {``long`` node; chain of ``chain`` nodes} -> a join edge waiting on both ends."""
    builder: StateGraph[_Done] = StateGraph(_Done)
    builder.add_node("entry", _noop)
    builder.add_node("long", _sleeper(long_s, "nodes"))
    builder.add_node("join", _finish)
    builder.add_edge(START, "entry")
    builder.add_edge("entry", "long")
    previous = "entry"
    for i in range(chain):
        builder.add_node(f"c{i}", _sleeper(short_s, "nodes"))
        builder.add_edge(previous, f"c{i}")
        previous = f"c{i}"
    builder.add_edge(["long", previous], "join")
    builder.add_edge("join", END)
    graph = builder.compile()

    async def run() -> None:
        result = await graph.ainvoke({"done": False})
        assert result["done"]

    return run
