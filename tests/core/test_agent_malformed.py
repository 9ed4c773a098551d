"""Malformed model output never crashes a run and never runs a tool on bad input."""

from __future__ import annotations

import json

import pytest

from gecko.core.agent import Agent
from gecko.core.toolbox import tool
from gecko.errors import ModelOutputError, ToolArgumentsError, UnknownToolError
from gecko.plugins.models import ModelResponse
from gecko.testing.models import ScriptedModel, reply, tool_calls_reply
from gecko.types import Message, Role, TokenUsage, ToolCall

DEEP = "[" * 5000 + "]" * 5000
BAD_ARGUMENTS = {
    "truncated json": '{"a": 1, "b": ',
    "wrong types": '{"a": "1", "b": true}',
    "unknown key": '{"a": 1, "b": 2, "c": 3}',
    "one megabyte": json.dumps({"a": 1, "b": 2, "pad": "x" * 1_000_000}),
    "deep nesting": '{"a": 1, "b": ' + DEEP + "}",
    "fenced": '```json\n{"a": 1, "b": 2}\n```',
}


class Counter:
    def __init__(self) -> None:
        self.runs = 0


def adder(counter: Counter) -> object:
    @tool
    async def add(a: int, b: int) -> int:
        """Add two integers."""
        counter.runs += 1
        return a + b

    return add


@pytest.mark.parametrize("arguments", list(BAD_ARGUMENTS.values()), ids=list(BAD_ARGUMENTS))
async def test_bad_arguments_end_with_a_typed_error_after_bounded_reasks(arguments: str) -> None:
    counter = Counter()
    model = ScriptedModel([tool_calls_reply(("add", arguments))] * 3 + ["never reached"])
    agent = Agent(model, tools=[adder(counter)], max_tool_retries=2)
    with pytest.raises(ToolArgumentsError):
        await agent.run("add")
    assert counter.runs == 0
    assert len(model.requests) == 3


async def test_unknown_tool_names_end_with_a_typed_error_after_bounded_reasks() -> None:
    counter = Counter()
    model = ScriptedModel([tool_calls_reply(("sum_numbers", '{"a": 1, "b": 2}'))] * 3)
    agent = Agent(model, tools=[adder(counter)])
    with pytest.raises(UnknownToolError):
        await agent.run("add")
    assert counter.runs == 0


async def test_unknown_tool_observation_names_the_valid_tools() -> None:
    model = ScriptedModel([tool_calls_reply(("sum_numbers", "{}")), "ok"])
    agent = Agent(model, tools=[adder(Counter())])
    await agent.run("add")
    observation = model.requests[1].messages[-1]
    assert observation.role is Role.TOOL
    assert "add" in observation.text
    assert observation.text.startswith("Error:")


async def test_model_recovers_after_one_bad_turn() -> None:
    counter = Counter()
    model = ScriptedModel([tool_calls_reply(("add", '{"a": "1"}')), tool_calls_reply(("add", '{"a": 1, "b": 2}')), "3"])
    output = await Agent(model, tools=[adder(counter)]).run("add")
    assert (output.content, counter.runs) == ("3", 1)


async def test_valid_call_beside_an_invalid_one_runs_and_the_invalid_one_is_reported() -> None:
    counter = Counter()
    model = ScriptedModel([tool_calls_reply(("add", '{"a": 1, "b": 2}'), ("nope", "{}")), "done"])
    await Agent(model, tools=[adder(counter)]).run("add")
    observations = [m.text for m in model.requests[1].messages if m.role is Role.TOOL]
    assert counter.runs == 1
    assert observations[0] == "3"
    assert observations[1].startswith("Error:")


async def test_tool_calls_cut_off_by_length_never_run() -> None:
    counter = Counter()
    truncated = ModelResponse(
        message=Message.assistant(None, [ToolCall(id="t1", name="add", arguments='{"a": 1, "b": 2}')]),
        usage=TokenUsage(input_tokens=1, output_tokens=1, total_tokens=2, requests=1),
        finish_reason="length",
    )
    model = ScriptedModel([truncated] * 3)
    with pytest.raises(ModelOutputError, match="cut off"):
        await Agent(model, tools=[adder(counter)]).run("add")
    assert counter.runs == 0


async def test_every_tool_call_gets_exactly_one_observation_in_order() -> None:
    model = ScriptedModel([tool_calls_reply(("nope", "{}"), ("add", '{"a": 1, "b": 1}'), ("add", "{")), "end"])
    output = await Agent(model, tools=[adder(Counter())]).run("go")
    assistant = output.messages[1]
    observations = output.messages[2:5]
    assert [m.tool_call_id for m in observations] == [call.id for call in assistant.tool_calls]


async def test_text_answer_with_a_failing_tool_is_still_an_answer() -> None:
    @tool
    async def explode() -> str:
        """Always fails."""
        raise RuntimeError("secret-token-123 leaked")

    model = ScriptedModel([tool_calls_reply(("explode", "{}")), reply("sorry")])
    output = await Agent(model, tools=[explode]).run("go")
    assert output.content == "sorry"
    assert model.requests[1].messages[-1].text.startswith("Error:")
