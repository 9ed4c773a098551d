"""Structured output through the agent: parse, bounded re-asks, strategy fallback, tools first."""

from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel

from gecko.core.agent import Agent
from gecko.core.builder import AgentBuilder
from gecko.core.structure import OUTPUT_TOOL_NAME
from gecko.core.toolbox import tool
from gecko.errors import StructuredOutputError, UnsupportedRequestError
from gecko.plugins.models import ModelCapabilities, ModelRequest, ModelResponse
from gecko.testing.models import FunctionModel, ScriptedModel, reply, tool_calls_reply
from gecko.types import Message, Role, TokenUsage

PROMPTED_ONLY = ModelCapabilities(tools=False, json_schema=False)


class City(BaseModel):
    name: str
    population: int


async def test_final_answer_is_parsed_into_the_output_type() -> None:
    model = ScriptedModel(['{"name": "Lyon", "population": 520000}'], capabilities=PROMPTED_ONLY)
    output = await Agent(model, output_type=City).run("Lyon?")
    assert output.data == City(name="Lyon", population=520000)


async def test_invalid_answer_is_reasked_with_the_validation_errors() -> None:
    model = ScriptedModel(
        ['{"name": "Lyon", "population": "many"}', '{"name": "Lyon", "population": 520000}'],
        capabilities=PROMPTED_ONLY,
    )
    output = await Agent(model, output_type=City).run("Lyon?")
    reask = model.requests[1].messages[-2]
    assert output.data == City(name="Lyon", population=520000)
    assert reask.role is Role.USER
    assert "population" in reask.text


async def test_output_type_per_run_overrides_the_agent() -> None:
    model = ScriptedModel(['{"name": "Nice", "population": 340000}'], capabilities=PROMPTED_ONLY)
    output = await Agent(model).run("Nice?", output_type=City)
    assert isinstance(output.data, City)


async def test_truncated_answer_is_never_accepted() -> None:
    truncated = ModelResponse(
        message=Message.assistant('{"name": "Lyon", "population": 520000}'),
        usage=TokenUsage(input_tokens=1, output_tokens=1, total_tokens=2, requests=1),
        finish_reason="length",
    )
    model = ScriptedModel([truncated] * 3, capabilities=PROMPTED_ONLY)
    with pytest.raises(StructuredOutputError):
        await Agent(model, output_type=City, structure_retries=2).run("Lyon?")
    assert len(model.requests) == 3


async def test_exhausted_strategies_end_with_a_typed_error_after_bounded_reasks() -> None:
    model = ScriptedModel(["not json"] * 6, capabilities=ModelCapabilities(tools=True, json_schema=False))
    with pytest.raises(StructuredOutputError, match="tool, prompted"):
        await Agent(model, output_type=City, structure_retries=2).run("Lyon?")
    assert len(model.requests) == 6


async def test_failed_strategy_falls_back_to_the_next_one() -> None:
    model = ScriptedModel(
        ["nonsense", '{"name": "Metz", "population": 120000}'],
        capabilities=ModelCapabilities(tools=True, json_schema=False),
    )
    output = await Agent(model, output_type=City, structure_retries=0).run("Metz?")
    assert output.data == City(name="Metz", population=120000)
    assert [t.name for t in model.requests[0].tools] == [OUTPUT_TOOL_NAME]
    assert model.requests[1].messages[-1].role is Role.SYSTEM


async def test_output_tool_call_is_the_final_answer_after_real_tools() -> None:
    @tool
    async def census(city: str) -> int:
        """Population of a city."""
        return 520000

    model = ScriptedModel(
        [
            tool_calls_reply(("census", '{"city": "Lyon"}')),
            tool_calls_reply((OUTPUT_TOOL_NAME, '{"name": "Lyon", "population": 520000}')),
        ],
        capabilities=ModelCapabilities(tools=True, json_schema=False),
    )
    output = await Agent(model, tools=[census], output_type=City).run("Lyon?")
    assert output.data == City(name="Lyon", population=520000)
    assert output.messages[-1].role is Role.TOOL


async def test_structured_run_sums_usage_over_reasks() -> None:
    model = ScriptedModel(
        [reply("bad", input_tokens=4, output_tokens=1), reply('{"name": "A", "population": 1}', input_tokens=6)],
        capabilities=PROMPTED_ONLY,
    )
    output = await Agent(model, output_type=City).run("?")
    assert output.usage == TokenUsage(input_tokens=10, output_tokens=6, total_tokens=16, requests=2)


async def test_an_endpoint_refusing_json_schema_falls_back_to_json_mode_within_the_run() -> None:
    def respond(request: ModelRequest) -> str:
        if request.response_format is not None and request.response_format.type == "json_schema":
            raise UnsupportedRequestError("Input should be 'text' or 'json_object'", feature="json_schema")
        return '{"name": "Lyon", "population": 520000}'

    model = FunctionModel(respond, capabilities=ModelCapabilities(tools=True, json_schema=True))
    output = await Agent(model, output_type=City).run("Lyon?")
    assert output.data == City(name="Lyon", population=520000)
    formats = [r.response_format.type if r.response_format else None for r in model.requests]
    assert formats == ["json_schema", "json_object"]
    assert output.usage.requests == 1  # the refused request spent nothing


async def test_a_refused_strategy_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    def respond(request: ModelRequest) -> str:
        if request.tools:
            raise UnsupportedRequestError("tools are not supported", feature="tools")
        return '{"name": "Lyon", "population": 520000}'

    model = FunctionModel(respond, capabilities=ModelCapabilities(tools=True, json_schema=False))
    with caplog.at_level(logging.DEBUG, logger="gecko.structure"):
        await Agent(model, output_type=City).run("Lyon?")
    assert "refused the tool strategy" in caplog.text


async def test_the_builder_opts_into_lax_coercion_explicitly() -> None:
    coercible = '{"name": "Lyon", "population": "520000"}'
    strict = ScriptedModel([coercible], cycle=True, capabilities=PROMPTED_ONLY)
    with pytest.raises(StructuredOutputError, match="population"):
        await AgentBuilder().with_model(strict).with_output_type(City).build().run("Lyon?")
    lax = ScriptedModel([coercible], capabilities=PROMPTED_ONLY)
    output = await AgentBuilder().with_model(lax).with_output_type(City, lax=True).build().run("Lyon?")
    assert output.data == City(name="Lyon", population=520000)
