"""What a run reads from the plugins, the event bus and the toolbox is cached per engine, never stale.

The engine computes a run's flags (which hooks exist, whether anyone listens, whether tool calls
are wrapped, the tool definitions) once, and again only when a plugin registers or unregisters,
a subscriber or a middleware comes or goes, or a tool is added or removed. Each test below
changes one of these between two runs of the same agent and fails if the second run used the
first run's flags. A structured run ends the same whether anyone observes it or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from gecko.core.agent import Agent
from gecko.core.events import EventBus, ModelCallContext, ModelHandler, TextDelta, ToolCallContext, ToolHandler
from gecko.core.structure import OUTPUT_TOOL_NAME
from gecko.core.toolbox import Tool, ToolResult, tool
from gecko.errors import StructuredOutputError
from gecko.plugins import manager as manager_module
from gecko.plugins import plugin_manager
from gecko.plugins.manager import PluginManager
from gecko.plugins.models import ModelRequest, ModelResponse
from gecko.testing.models import FunctionModel, ScriptedModel, reply, tool_calls_reply
from gecko.types import AgentOutput, Message, TextPart, ToolCall

from .test_agent_drivers import Observer, observer  # noqa: F401
from .test_agent_tool_paths import observed_bus
from .test_plugins_hookspecs import SECRET_REPLY, MaskingPlugin, in_threes


class Reply(BaseModel):
    name: str
    age: int
    tags: list[str]


def reply_model(arguments: str) -> FunctionModel:
    """A model that always calls the output tool with `arguments`."""

    def next_reply(request: ModelRequest) -> list[ToolCall]:
        return [ToolCall(id="call_reply", name=OUTPUT_TOOL_NAME, arguments=arguments)]

    return FunctionModel(next_reply)


def structured_agent(model: FunctionModel, **options: Any) -> Agent:
    return Agent(model, output_type=Reply, structure_strategy="tool", **options)


def summary(output: AgentOutput) -> tuple[Any, ...]:
    return (
        output.content,
        output.data,
        [message.model_dump() for message in output.messages],
        output.usage,
    )


DOCUMENT = '{"name": "ada", "age": 36, "tags": ["a", "b"]}'


RUN_EVENTS = ["agent.started", "model.finished", "agent.finished"]
OBSERVED_RUN = ["agent.started", "model_request", "model.finished", "agent.finished"]


async def test_a_structured_tool_run_ends_the_same_lean_and_observed() -> None:
    lean = await structured_agent(reply_model(DOCUMENT)).run("Describe the user.")
    plugin = Observer()
    manager = plugin_manager()
    manager.register(plugin, "test-agent-run-flags")
    bus, events, layers = observed_bus()
    try:
        observed = await structured_agent(reply_model(DOCUMENT), event_bus=bus).run("Describe the user.")
    finally:
        manager.unregister(plugin)

    assert isinstance(lean.data, Reply)
    assert summary(observed) == summary(lean)
    assert events == RUN_EVENTS
    assert plugin.seen == OBSERVED_RUN
    assert layers == ["model"]


async def test_malformed_tool_arguments_fail_lean_with_the_typed_error_of_an_observed_run(
    observer: Observer,  # noqa: F811
) -> None:
    malformed = reply_model('{"name": "ada", "age": "old", "tags": []}')
    with pytest.raises(StructuredOutputError) as observed:
        await structured_agent(malformed, structure_retries=1).run("Describe the user.")
    plugin_manager().unregister(observer)
    try:
        with pytest.raises(StructuredOutputError) as lean:
            await structured_agent(malformed, structure_retries=1).run("Describe the user.")
    finally:
        plugin_manager().register(observer, "test-agent-drivers-observer")

    assert type(lean.value) is type(observed.value)
    assert str(lean.value) == str(observed.value)
    assert "age" in str(lean.value)
    assert "model_request" in observer.seen


async def test_a_plugin_registered_after_a_run_is_called_by_the_next_run_and_not_after_it_leaves() -> None:
    agent = structured_agent(reply_model(DOCUMENT))
    await agent.run("first")
    plugin = Observer()
    manager = plugin_manager()
    manager.register(plugin, "test-agent-run-flags-late")
    try:
        second = await agent.run("second")
    finally:
        manager.unregister(plugin)
    third = await agent.run("third")

    # One run's worth: the run after unregistering called nothing.
    assert plugin.seen == OBSERVED_RUN
    assert third.data == second.data


async def test_a_replaced_plugin_manager_is_read_by_the_next_run(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = structured_agent(reply_model(DOCUMENT))
    await agent.run("first")
    replacement = PluginManager()
    plugin = Observer()
    replacement.register(plugin, "test-agent-run-flags-replacement")
    monkeypatch.setattr(manager_module, "_manager", replacement)

    await agent.run("second")

    assert "model_request" in plugin.seen


async def test_a_subscriber_added_after_a_run_sees_the_next_run_and_none_after_unsubscribing() -> None:
    bus = EventBus(forward_to_plugins=False)
    agent = structured_agent(reply_model(DOCUMENT), event_bus=bus)
    await agent.run("first")
    events: list[str] = []
    unsubscribe = bus.subscribe(lambda event: events.append(event.type))

    await agent.run("second")
    unsubscribe()
    await agent.run("third")

    assert events == RUN_EVENTS


async def test_middleware_added_after_a_run_wraps_the_next_run() -> None:
    @tool
    async def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    bus = EventBus(forward_to_plugins=False)
    model = ScriptedModel([tool_calls_reply(("add", '{"a": 2, "b": 3}')), reply("5")] * 2)
    agent = Agent(model, tools=[add], event_bus=bus)
    await agent.run("first")
    layers: list[str] = []

    async def model_layer(context: ModelCallContext, call_next: ModelHandler) -> ModelResponse:
        layers.append("model")
        return await call_next(context)

    async def tool_layer(context: ToolCallContext, call_next: ToolHandler) -> ToolResult:
        layers.append(f"tool:{context.call.name}")
        return await call_next(context)

    bus.use_model_middleware(model_layer)
    bus.use_tool_middleware(tool_layer)
    output = await agent.run("second")

    assert output.content == "5"
    assert layers == ["model", "tool:add", "model"]


async def test_a_tool_added_after_a_run_is_offered_by_the_next_request() -> None:
    model = reply_model(DOCUMENT)
    agent = structured_agent(model)
    await agent.run("first")

    @tool
    async def lookup(name: str) -> str:
        """Look a user up."""
        return name

    agent.toolbox.add(lookup)
    await agent.run("second")

    offered = [[definition.name for definition in request.tools] for request in model.requests]
    assert offered == [[OUTPUT_TOOL_NAME], ["lookup", OUTPUT_TOOL_NAME]]


class LookupSource:
    """A tool source offering `lookup`, counting how often it opens."""

    def __init__(self) -> None:
        self.opened = 0

    async def open(self) -> Sequence[Tool]:
        self.opened += 1

        @tool
        async def lookup(name: str) -> str:
            """Look a user up."""
            return name

        return [lookup]

    async def aclose(self) -> None:
        return None


async def test_tools_of_a_closed_source_are_offered_again_only_once_it_reopens_at_the_next_run() -> None:
    model = reply_model(DOCUMENT)
    source = LookupSource()
    agent = structured_agent(model, tools=[source])
    await agent.run("first")
    await agent.toolbox.aclose()
    offered_while_closed = agent.engine.run_flags(plugin_manager()).definitions
    await agent.run("second")

    assert offered_while_closed == []
    assert source.opened == 2
    offered = [[definition.name for definition in request.tools] for request in model.requests]
    assert offered == [["lookup", OUTPUT_TOOL_NAME], ["lookup", OUTPUT_TOOL_NAME]]


def tool_then_output_model() -> ScriptedModel:
    """A tool call, a malformed output call (re-asked), then a valid output call."""
    return ScriptedModel(
        [
            tool_calls_reply(ToolCall(id="c1", name="add", arguments='{"a": 2, "b": 3}')),
            tool_calls_reply(ToolCall(id="c2", name=OUTPUT_TOOL_NAME, arguments='{"name": "ada"}')),
            tool_calls_reply(ToolCall(id="c3", name=OUTPUT_TOOL_NAME, arguments=DOCUMENT)),
        ]
        * 2
    )


async def test_a_tool_turn_and_a_reask_end_the_same_lean_and_observed() -> None:
    @tool
    async def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    model = tool_then_output_model()
    lean = await structured_agent(model, tools=[add]).run("Describe the user.")
    plugin = Observer()
    manager = plugin_manager()
    manager.register(plugin, "test-agent-run-flags-tool-turn")
    bus, events, layers = observed_bus()
    try:
        observed = await structured_agent(model, tools=[add], event_bus=bus).run("Describe the user.")
    finally:
        manager.unregister(plugin)

    assert lean.data == Reply(name="ada", age=36, tags=["a", "b"])
    assert summary(observed) == summary(lean)
    assert [message.role for message in lean.messages].count("tool") == 3
    assert layers == ["model", "tool", "model", "model"]
    assert events.count("model.finished") == 3
    assert events[-1] == "agent.finished"


async def test_a_multimodal_final_answer_ends_the_same_lean_and_observed() -> None:
    final = ModelResponse(message=Message.assistant([TextPart(text="five"), TextPart(text=" apples")]))
    lean = await Agent(ScriptedModel([final])).run("Count.")
    bus, events, _ = observed_bus()
    observed = await Agent(ScriptedModel([final]), event_bus=bus).run("Count.")

    assert lean.content == "five apples"
    assert summary(observed) == summary(lean)
    assert events == RUN_EVENTS


async def test_a_stream_filter_registered_after_a_run_filters_the_next_stream_and_none_after_it_leaves() -> None:
    agent = Agent(ScriptedModel([SECRET_REPLY], deltas=in_threes, cycle=True))

    async def streamed() -> list[str]:
        return [event.text async for event in agent.stream("password?") if isinstance(event, TextDelta)]

    before = await streamed()
    plugin = MaskingPlugin("hunter2")
    manager = plugin_manager()
    manager.register(plugin, "test-agent-run-flags-stream-filter")
    try:
        filtered = await streamed()
    finally:
        manager.unregister(plugin)
    after = await streamed()

    assert before == after == in_threes(SECRET_REPLY)
    assert "".join(filtered) == SECRET_REPLY.replace("hunter2", "*******")
    assert len(plugin.made) == 1
