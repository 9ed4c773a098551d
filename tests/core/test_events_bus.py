"""The event bus: subscribers, middleware around model and tool calls, and the plugin hooks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gecko.core.agent import Agent
from gecko.core.events import EventBus, ModelCallContext, ModelHandler, ToolCallContext, ToolHandler
from gecko.core.toolbox import ToolResult, tool
from gecko.errors import GuardrailViolation
from gecko.plugins import hookimpl, plugin_manager
from gecko.plugins.models import ModelResponse
from gecko.testing.models import ScriptedModel, reply, tool_calls_reply
from gecko.types import Event, Role, ToolCall


@tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def add_model() -> ScriptedModel:
    return ScriptedModel([tool_calls_reply(("add", '{"a": 2, "b": 3}')), reply("5")])


async def test_subscribers_receive_the_run_events_in_order() -> None:
    bus = EventBus(forward_to_plugins=False)
    seen: list[str] = []
    bus.subscribe(lambda event: seen.append(event.type))
    await Agent(add_model(), tools=[add], event_bus=bus).run("2+3")
    assert seen == [
        "agent.started",
        "model.finished",
        "tool.started",
        "tool.finished",
        "model.finished",
        "agent.finished",
    ]


async def test_subscription_filters_by_type_prefix() -> None:
    bus = EventBus(forward_to_plugins=False)
    seen: list[str] = []

    async def handler(event: Event) -> None:
        seen.append(event.type)

    bus.subscribe(handler, types=["tool.*"])
    await Agent(add_model(), tools=[add], event_bus=bus).run("2+3")
    assert seen == ["tool.started", "tool.finished"]


async def test_unsubscribed_handler_receives_nothing() -> None:
    bus = EventBus(forward_to_plugins=False)
    seen: list[Event] = []
    unsubscribe = bus.subscribe(seen.append)
    unsubscribe()
    await bus.publish(Event("x.y", "test", "run"))
    assert seen == []


async def test_failing_subscriber_does_not_break_the_run() -> None:
    bus = EventBus(forward_to_plugins=False)

    def broken(event: Event) -> None:
        raise RuntimeError("observer bug")

    bus.subscribe(broken)
    assert (await Agent(add_model(), tools=[add], event_bus=bus).run("2+3")).content == "5"


async def test_model_middleware_wraps_every_model_call() -> None:
    bus = EventBus(forward_to_plugins=False)
    turns: list[int] = []

    async def record(context: ModelCallContext, call_next: ModelHandler) -> ModelResponse:
        response = await call_next(context)
        turns.append(context.turn)
        return response

    bus.use_model_middleware(record)
    await Agent(add_model(), tools=[add], event_bus=bus).run("2+3")
    assert turns == [1, 2]


async def test_model_middleware_may_replace_the_response() -> None:
    bus = EventBus(forward_to_plugins=False)

    async def canned(context: ModelCallContext, call_next: ModelHandler) -> ModelResponse:
        return reply("intercepted")

    bus.use_model_middleware(canned)
    model = ScriptedModel([])
    output = await Agent(model, event_bus=bus).run("hi")
    assert (output.content, model.requests) == ("intercepted", [])


async def test_tool_middleware_wraps_every_tool_call_outermost_first() -> None:
    bus = EventBus(forward_to_plugins=False)
    order: list[str] = []

    def layer(name: str) -> Any:
        async def middleware(context: ToolCallContext, call_next: ToolHandler) -> ToolResult:
            order.append(f"{name}>")
            result = await call_next(context)
            order.append(f"<{name}")
            return result

        return middleware

    bus.use_tool_middleware(layer("outer"))
    bus.use_tool_middleware(layer("inner"))
    await Agent(add_model(), tools=[add], event_bus=bus).run("2+3")
    assert order == ["outer>", "inner>", "<inner", "<outer"]


class HookPlugin:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.tool_calls: list[str] = []
        self.block_tools = False

    @hookimpl
    async def gecko_event(self, event: Event) -> None:
        self.events.append(event.type)

    @hookimpl
    def gecko_tool_call(self, call: ToolCall, source: str) -> None:
        self.tool_calls.append(call.name)
        if self.block_tools:
            raise GuardrailViolation("payments are blocked")


@pytest.fixture
def hook_plugin() -> Iterator[HookPlugin]:
    plugin = HookPlugin()
    manager = plugin_manager()
    manager.register(plugin, "test-agent-hooks")
    try:
        yield plugin
    finally:
        manager.unregister(plugin)


async def test_plugins_observe_every_event_through_gecko_event(hook_plugin: HookPlugin) -> None:
    await Agent(add_model(), tools=[add]).run("2+3")
    assert hook_plugin.events[0] == "agent.started"
    assert hook_plugin.events[-1] == "agent.finished"


async def test_plugins_see_validated_tool_calls(hook_plugin: HookPlugin) -> None:
    await Agent(add_model(), tools=[add]).run("2+3")
    assert hook_plugin.tool_calls == ["add"]


async def test_plugin_guardrail_blocks_a_tool_call_and_tells_the_model(hook_plugin: HookPlugin) -> None:
    hook_plugin.block_tools = True
    model = add_model()
    await Agent(model, tools=[add]).run("2+3")
    observation = model.requests[1].messages[-1]
    assert observation.role is Role.TOOL
    assert "blocked" in observation.text


async def test_a_call_blocked_by_a_guardrail_ends_in_tool_failed_for_subscribers(hook_plugin: HookPlugin) -> None:
    hook_plugin.block_tools = True
    bus = EventBus(forward_to_plugins=False)
    seen: list[tuple[str, Any]] = []
    bus.subscribe(lambda event: seen.append((event.type, event.data.get("is_error"))), types=["tool.*"])
    await Agent(add_model(), tools=[add], event_bus=bus).run("2+3")
    assert seen == [("tool.started", None), ("tool.failed", True)]
