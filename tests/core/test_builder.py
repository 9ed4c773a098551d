"""`AgentBuilder` assembles the agent the seed describes."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from gecko.core.agent import Agent
from gecko.core.builder import AgentBuilder
from gecko.core.events import EventBus
from gecko.core.state import UsageLimits
from gecko.core.toolbox import ToolBox, tool
from gecko.errors import ConfigurationError, UsageLimitExceeded
from gecko.plugins.models import ModelCapabilities
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import Role


@tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Answer(BaseModel):
    value: int


async def test_builder_assembles_model_tools_prompt_and_session() -> None:
    model = ScriptedModel([tool_calls_reply(("add", '{"a": 1, "b": 2}')), "3"])
    storage = MemoryStorage()
    agent = (
        AgentBuilder()
        .with_model(model)
        .with_tools([add])
        .with_system_prompt("Be exact.")
        .with_session_id("b1")
        .with_storage(storage)
        .with_max_turns(4)
        .build()
    )
    output = await agent.run("1+2")
    assert output.content == "3"
    assert model.requests[0].messages[0].role is Role.SYSTEM
    assert await storage.list_keys("gecko:agent:") == ["gecko:agent:b1"]


async def test_builder_output_type_fills_data() -> None:
    model = ScriptedModel(['{"value": 4}'], capabilities=ModelCapabilities(tools=False, json_schema=False))
    agent = AgentBuilder().with_model(model).with_output_type(Answer).build()
    assert (await agent.run("2+2")).data == Answer(value=4)


async def test_builder_usage_limits_apply() -> None:
    agent = AgentBuilder().with_model(ScriptedModel(["x"])).with_usage_limits(UsageLimits(max_requests=0)).build()
    with pytest.raises(UsageLimitExceeded):
        await agent.run("go")


def test_builder_accepts_a_model_spec() -> None:
    agent = AgentBuilder().with_model("scripted:demo", replies=["hi"]).build()
    assert agent.model.model == "demo"


def test_builder_uses_a_given_toolbox_and_event_bus() -> None:
    toolbox, bus = ToolBox([add]), EventBus()
    agent = AgentBuilder().with_model(ScriptedModel([])).with_tools(toolbox).with_event_bus(bus).build()
    assert (agent.toolbox, agent.events) == (toolbox, bus)


def test_build_without_a_model_says_what_to_call() -> None:
    with pytest.raises(ConfigurationError, match="with_model"):
        AgentBuilder().build()


def test_build_refuses_a_toolbox_and_loose_tools_together() -> None:
    builder = AgentBuilder().with_model(ScriptedModel([])).with_tools(ToolBox()).with_tools([add])
    with pytest.raises(ConfigurationError, match="not both"):
        builder.build()


def test_agent_refuses_a_model_that_is_not_a_chat_model() -> None:
    with pytest.raises(ConfigurationError, match="ChatModel"):
        Agent("openai:gpt-4o")  # type: ignore[arg-type]
