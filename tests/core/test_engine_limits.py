"""The engine's bounds: max_turns, the loop breaker and usage limits, all checked before spending."""

from __future__ import annotations

import pytest

from gecko.core.agent import Agent
from gecko.core.engine import ReActEngine
from gecko.core.state import UsageLimits
from gecko.core.toolbox import ToolBox, tool
from gecko.errors import ConfigurationError, MaxTurnsExceeded, ToolLoopDetected, UsageLimitExceeded
from gecko.testing.models import ScriptedModel, reply, tool_calls_reply
from gecko.types import Role


class Counter:
    def __init__(self) -> None:
        self.runs = 0


def lookup_tool(counter: Counter) -> object:
    @tool
    async def lookup(key: str) -> str:
        """Look a key up."""
        counter.runs += 1
        return f"value of {key}"

    return lookup


async def test_loop_breaker_refuses_the_nth_identical_call_and_tells_the_model() -> None:
    counter = Counter()
    model = ScriptedModel([tool_calls_reply(("lookup", '{"key": "x"}'))] * 3 + ["gave up"])
    output = await Agent(model, tools=[lookup_tool(counter)], max_repeated_tool_calls=3).run("go")
    assert (output.content, counter.runs) == ("gave up", 2)
    assert "already called 2 times" in model.requests[3].messages[-1].text


async def test_loop_breaker_raises_when_the_model_repeats_after_the_warning() -> None:
    counter = Counter()
    model = ScriptedModel([tool_calls_reply(("lookup", '{"key": "x"}'))] * 4)
    with pytest.raises(ToolLoopDetected):
        await Agent(model, tools=[lookup_tool(counter)], max_repeated_tool_calls=3).run("go")
    assert counter.runs == 2


async def test_loop_breaker_compares_canonical_arguments() -> None:
    counter = Counter()
    model = ScriptedModel(
        [
            tool_calls_reply(("lookup", '{"key": "x"}')),
            tool_calls_reply(("lookup", '{ "key" : "x" }')),
            "stop",
        ]
    )
    await Agent(model, tools=[lookup_tool(counter)], max_repeated_tool_calls=2).run("go")
    assert counter.runs == 1


async def test_different_arguments_are_not_a_loop() -> None:
    counter = Counter()
    replies = [tool_calls_reply(("lookup", f'{{"key": "k{i}"}}')) for i in range(5)] + ["done"]
    output = await Agent(ScriptedModel(replies), tools=[lookup_tool(counter)], max_repeated_tool_calls=2).run("go")
    assert (output.content, counter.runs) == ("done", 5)


async def test_max_turns_stops_before_the_extra_request() -> None:
    model = ScriptedModel([tool_calls_reply(("lookup", f'{{"key": "k{i}"}}')) for i in range(10)])
    with pytest.raises(MaxTurnsExceeded):
        await Agent(model, tools=[lookup_tool(Counter())], max_turns=3).run("go")
    assert len(model.requests) == 3


async def test_request_limit_is_checked_before_the_call() -> None:
    model = ScriptedModel([tool_calls_reply(("lookup", '{"key": "a"}')), "answer"])
    agent = Agent(model, tools=[lookup_tool(Counter())], usage_limits=UsageLimits(max_requests=1))
    with pytest.raises(UsageLimitExceeded, match="max_requests=1"):
        await agent.run("go")
    assert len(model.requests) == 1


async def test_token_limit_stops_the_run_once_spent() -> None:
    model = ScriptedModel([tool_calls_reply(("lookup", '{"key": "a"}'), input_tokens=80, output_tokens=30), "x"])
    agent = Agent(model, tools=[lookup_tool(Counter())])
    with pytest.raises(UsageLimitExceeded, match="max_total_tokens=100"):
        await agent.run("go", usage_limits=UsageLimits(max_total_tokens=100))
    assert len(model.requests) == 1


async def test_run_within_limits_completes() -> None:
    model = ScriptedModel([reply("fine", input_tokens=3, output_tokens=2)])
    output = await Agent(model).run("go", usage_limits=UsageLimits(max_requests=1, max_total_tokens=10))
    assert output.content == "fine"


async def test_engine_runs_without_an_agent() -> None:
    engine = ReActEngine(ScriptedModel(["direct"]), ToolBox())
    from gecko.core.events import FinalOutput
    from gecko.core.state import RunState
    from gecko.types import Message

    events = [event async for event in engine.iterate(RunState(messages=[Message.user("hi")]))]
    assert isinstance(events[-1], FinalOutput)
    assert [m.role for m in events[-1].output.messages] == [Role.USER, Role.ASSISTANT]


@pytest.mark.parametrize("value", [0, -1, 1.5, float("nan"), True, "3"])
@pytest.mark.parametrize("option", ["max_turns", "max_repeated_tool_calls", "max_tool_calls_per_turn"])
def test_engine_rejects_bounds_that_are_not_whole_counts_of_at_least_one(option: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=option):
        ReActEngine(ScriptedModel([]), ToolBox(), **{option: value})


@pytest.mark.parametrize("value", [-1, 1.5, float("nan"), True, "3"])
def test_engine_rejects_tool_retries_that_are_not_whole_counts_of_at_least_zero(value: object) -> None:
    with pytest.raises(ConfigurationError, match="max_tool_retries"):
        ReActEngine(ScriptedModel([]), ToolBox(), max_tool_retries=value)  # type: ignore[arg-type]


def test_engine_takes_zero_tool_retries() -> None:
    assert ReActEngine(ScriptedModel([]), ToolBox(), max_tool_retries=0).max_tool_retries == 0
