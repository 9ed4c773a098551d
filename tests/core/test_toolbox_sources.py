"""Tools described by JSON schemas, and tool sources that join a toolbox when it opens."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from gecko import Agent
from gecko.core.toolbox import Tool, ToolBox, ToolSource
from gecko.errors import ConfigurationError, ToolArgumentsError
from gecko.testing.models import ScriptedModel
from gecko.types import ToolCall

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def check_city(arguments: dict[str, Any]) -> dict[str, Any]:
    if set(arguments) != {"city"} or not isinstance(arguments["city"], str):
        raise ToolArgumentsError(f"expected exactly a string 'city', got {sorted(arguments)}")
    return arguments


async def weather(**arguments: Any) -> str:
    return f"sunny in {arguments['city']}"


def weather_tool(name: str = "weather") -> Tool:
    return Tool.from_schema(
        weather, name=name, description="The weather of a city.", parameters=SCHEMA, validate=check_city
    )


class Source:
    """A tool source that records how it is used."""

    def __init__(self, *tools: Tool) -> None:
        self.tools = tools
        self.opened = 0
        self.closed = 0

    async def open(self) -> Sequence[Tool]:
        self.opened += 1
        return self.tools

    async def aclose(self) -> None:
        self.closed += 1

    def __repr__(self) -> str:
        return "Source()"


def test_a_schema_tool_shows_its_schema_and_validates_with_its_validator() -> None:
    tool = weather_tool()
    assert tool.definition().parameters == SCHEMA
    assert tool.validate_arguments('{"city": "Oslo"}') == {"city": "Oslo"}
    with pytest.raises(ToolArgumentsError, match="expected exactly a string 'city'"):
        tool.validate_arguments('{"city": "Oslo", "days": 3}')
    with pytest.raises(ToolArgumentsError, match="a key appears twice"):
        tool.validate_arguments('{"city": "Oslo", "city": "Rome"}')
    with pytest.raises(ToolArgumentsError, match="not valid JSON"):
        tool.validate_arguments('{"city": ')
    with pytest.raises(ToolArgumentsError, match="expected a JSON object of arguments, got str"):
        tool.validate_arguments('"Oslo"')
    with pytest.raises(ConfigurationError, match="must match"):
        weather_tool(name="no spaces allowed")


async def test_a_schema_tool_runs_in_a_toolbox() -> None:
    toolbox = ToolBox([weather_tool()])
    result = await toolbox.execute(ToolCall(id="c1", name="weather", arguments='{"city": "Oslo"}'))
    assert (result.content, result.is_error) == ("sunny in Oslo", False)


async def test_sources_open_once_and_their_tools_leave_when_closed() -> None:
    source = Source(weather_tool())
    assert isinstance(source, ToolSource)
    toolbox = ToolBox([source])
    assert toolbox.names == ()
    await toolbox.open()
    await toolbox.open()
    assert (source.opened, toolbox.names) == (1, ("weather",))
    await toolbox.aclose()
    assert (source.closed, toolbox.names) == (1, ())
    await toolbox.open()  # a closed toolbox opens again
    assert (source.opened, toolbox.names) == (2, ("weather",))


async def test_a_source_whose_tools_clash_is_closed_again() -> None:
    def weather(city: str) -> str:
        return city

    source = Source(weather_tool())
    toolbox = ToolBox([weather, source])
    with pytest.raises(ConfigurationError, match="tools weather of Source\\(\\) clash"):
        await toolbox.open()
    assert (source.opened, source.closed) == (1, 1)
    twice = Source(weather_tool(), weather_tool())
    with pytest.raises(ConfigurationError, match="clash"):
        await ToolBox([twice]).open()
    assert twice.closed == 1


async def test_an_agent_opens_its_sources_at_the_first_run_and_closes_them() -> None:
    source = Source(weather_tool())
    model = ScriptedModel([[("weather", '{"city": "Oslo"}')], "sunny"])
    async with Agent(model, tools=[source]) as agent:
        output = await agent.run("weather in Oslo?")
        assert output.content == "sunny"
        assert [tool.name for tool in model.requests[0].tools] == ["weather"]
        assert source.opened == 1
    assert source.closed == 1


# Arguments a lenient reader (`json.loads`) accepts but no JSON writer can send on as they are: a
# schema tool's server would get `null` for a non-finite number, and a lone surrogate cannot be
# encoded at all (an MCP session died of one).
UNSENDABLE_ARGUMENTS = {
    "NaN": '{"city": NaN}',
    "Infinity": '{"city": Infinity}',
    "-Infinity": '{"city": [-Infinity]}',
    "an overflowing float": '{"city": 1e400}',
    "an overflowing float, nested": '{"city": {"a": [1, -1e999]}}',
    "a lone high surrogate escape": '{"city": "\\ud800"}',
    "a lone low surrogate escape": '{"city": "x\\udc00"}',
    "a lone surrogate in a key": '{"\\ud800": 1}',
    "a raw lone surrogate": '{"city": "\ud800"}',
    "nesting 300 deep": '{"city": ' + "[" * 300 + "]" * 300 + "}",
    "an integer of 5000 digits": '{"city": ' + "9" * 5000 + "}",
}


@pytest.mark.parametrize("arguments", UNSENDABLE_ARGUMENTS.values(), ids=UNSENDABLE_ARGUMENTS.keys())
def test_a_schema_tool_refuses_arguments_no_json_writer_can_send(arguments: str) -> None:
    seen: list[dict[str, Any]] = []
    tool = Tool.from_schema(
        weather, name="weather", description="", parameters=SCHEMA, validate=lambda value: seen.append(value) or value
    )
    with pytest.raises(ToolArgumentsError, match="Invalid arguments for tool 'weather'"):
        tool.validate_arguments(arguments)
    assert seen == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"city": "a\\u0000b"}', {"city": "a\x00b"}),
        ('{"city": "\\ud83d\\ude00"}', {"city": "\U0001f600"}),
        ('{"city": ' + "9" * 1000 + "}", {"city": int("9" * 1000)}),
        ('{"city": [1e308, -0.0, 5e-324]}', {"city": [1e308, -0.0, 5e-324]}),
        ('{"city": ' + "[" * 150 + "]" * 150 + "}", None),
    ],
    ids=["NUL", "a surrogate pair", "1000 digits", "extreme finite floats", "nesting 150 deep"],
)
def test_a_schema_tool_passes_on_odd_but_sendable_arguments(arguments: str, expected: dict[str, Any] | None) -> None:
    tool = Tool.from_schema(weather, name="weather", description="", parameters=SCHEMA, validate=lambda value: value)
    decoded = tool.validate_arguments(arguments)
    assert decoded == (json.loads(arguments) if expected is None else expected)
