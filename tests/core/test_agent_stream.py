"""`agent.stream`: token deltas, tool events, the final output, and cancellation."""

from __future__ import annotations

import anyio
import pytest

from gecko.core.agent import Agent
from gecko.core.events import FinalOutput, TextDelta, ToolFinished, ToolStarted
from gecko.core.toolbox import Tool, tool
from gecko.testing.models import ScriptedModel, reply, tool_calls_reply


@tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def add_model() -> ScriptedModel:
    return ScriptedModel([tool_calls_reply(("add", '{"a": 2, "b": 3}')), reply("The sum is 5.")])


async def test_stream_yields_token_deltas_of_the_answer() -> None:
    deltas = [e.text async for e in Agent(add_model(), tools=[add]).stream("2+3") if isinstance(e, TextDelta)]
    assert deltas == ["The", " sum", " is", " 5."]


async def test_stream_yields_tool_started_then_finished() -> None:
    events = [e async for e in Agent(add_model(), tools=[add]).stream("2+3")]
    tool_events = [(type(e).__name__, e.call.name) for e in events if isinstance(e, (ToolStarted, ToolFinished))]
    assert tool_events == [("ToolStarted", "add"), ("ToolFinished", "add")]


async def test_stream_tool_finished_carries_the_observation() -> None:
    events = [e async for e in Agent(add_model(), tools=[add]).stream("2+3")]
    finished = next(e for e in events if isinstance(e, ToolFinished))
    assert (finished.content, finished.is_error) == ("5", False)


async def test_stream_ends_with_the_output_run_returns() -> None:
    events = [e async for e in Agent(add_model(), tools=[add]).stream("2+3")]
    ran = await Agent(add_model(), tools=[add]).run("2+3")
    final = events[-1]
    assert isinstance(final, FinalOutput)
    assert (final.output.content, final.output.usage) == (ran.content, ran.usage)


def endless_tool(started: anyio.Event, cleaned: list[str]) -> Tool:
    """A tool `slow` that signals `started`, waits forever, and records its cleanup in `cleaned`."""

    @tool
    async def slow() -> str:
        """Wait forever."""
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cleaned.append("slow")
        return "never"

    return slow


async def test_cancelling_a_run_mid_tool_cancels_the_tool_and_stops_the_run() -> None:
    started = anyio.Event()
    cleaned: list[str] = []
    slow = endless_tool(started, cleaned)

    model = ScriptedModel([tool_calls_reply(("slow", "{}")), "unreachable"])
    agent = Agent(model, tools=[slow])
    async with anyio.create_task_group() as group:
        group.start_soon(agent.run, "go")
        await started.wait()
        group.cancel_scope.cancel()
    assert cleaned == ["slow"]
    assert len(model.requests) == 1


async def test_cancelling_a_stream_mid_tool_cancels_the_tool() -> None:
    started = anyio.Event()
    cleaned: list[str] = []
    slow = endless_tool(started, cleaned)

    async def consume() -> None:
        async for _ in Agent(ScriptedModel([tool_calls_reply(("slow", "{}"))]), tools=[slow]).stream("go"):
            pass

    async with anyio.create_task_group() as group:
        group.start_soon(consume)
        await started.wait()
        group.cancel_scope.cancel()
    assert cleaned == ["slow"]


async def test_closing_a_stream_early_ends_it() -> None:
    model = ScriptedModel([reply("one two three four")])
    stream = Agent(model).stream("go")
    async for event in stream:
        assert isinstance(event, TextDelta)
        break
    await stream.aclose()  # type: ignore[attr-defined]
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
