"""Odd tool-call shapes from a model: each ends with an answer or a `GeckoError`, and no tool runs
from a call that is not exactly one admissible, valid call (the fuzzing is in test_agent_hostile)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from gecko.core.agent import Agent
from gecko.core.toolbox import tool
from gecko.errors import GeckoError
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import ToolCall


class Count(BaseModel):
    n: int


def _call(arguments: str = '{"n": 1}', *, name: str = "record", id: str = "c1") -> ToolCall:
    return ToolCall(id=id, name=name, arguments=arguments)


DEEP = '{"n": ' + "[" * 100_000 + "]" * 100_000 + "}"
SHAPES: dict[str, tuple[list[ToolCall], bool]] = {
    # name: (the calls of one reply, whether `record` may run)
    "2 MB of arguments": ([_call('{"n": 1, "x": "' + "y" * 2_000_000 + '"}')], False),
    "arguments nested 100 000 deep": ([_call(DEEP)], False),
    "a 1 MB tool name": ([_call(name="r" * 1_000_000)], False),
    "control characters in the name": ([_call(name="rec\x00ord\n")], False),
    "an empty name": ([_call(name="")], False),
    "two calls with one id": ([_call(), _call('{"n": 2}')], False),
    "an empty id": ([_call(id="")], False),
    "a 1 MB id": ([_call(id="i" * 1_000_000)], True),
    "1000 calls": ([_call(id=f"c{index}") for index in range(1000)], False),
    "an array of arguments": ([_call("[1, 2]")], False),
    "null arguments": ([_call("null")], False),
    "empty arguments": ([_call("")], False),
    "a 100 000-digit number": ([_call('{"n": ' + "9" * 100_000 + "}")], False),
    "a lone surrogate": ([_call('{"n": 1, "s": "\\ud800"}')], False),
    "the output tool, nested 100 000 deep": ([_call(DEEP, name="final_result")], False),
}


@pytest.mark.parametrize("structured", [False, True])
@pytest.mark.parametrize(("calls", "may_run"), SHAPES.values(), ids=SHAPES.keys())
async def test_an_odd_reply_ends_typed_and_runs_only_valid_calls(
    calls: list[ToolCall], may_run: bool, structured: bool
) -> None:
    ran: list[int] = []

    @tool
    async def record(n: int) -> int:
        """Record `n`."""
        ran.append(n)
        return n

    replies = [tool_calls_reply(*calls), "done", '{"n": 1}', '{"n": 1}']
    agent = Agent(ScriptedModel(replies), tools=[record], output_type=Count if structured else None)
    try:
        output = await agent.run("go")
    except GeckoError:
        output = None
    assert ran == ([1] if may_run else [])
    if output is not None and structured:
        assert output.data == Count(n=1)
