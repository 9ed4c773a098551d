"""One path for every tool call: `max_parallel` and a single validation hold whoever observes the run.

A run with an event subscriber, a hook plugin, model middleware and tool middleware must run
its tools exactly like a plain run: at most `max_parallel` at once, each call validated once.
"""

from __future__ import annotations

import json
from typing import Any

import anyio

from gecko.core.agent import Agent
from gecko.core.events import EventBus, ModelCallContext, ModelHandler, ToolCallContext, ToolHandler
from gecko.core.toolbox import ToolBox, ToolResult, tool
from gecko.plugins import hookimpl, plugin_manager
from gecko.plugins.models import ModelResponse
from gecko.testing.models import ScriptedModel, reply, tool_calls_reply
from gecko.types import Event, ToolCall


class CountingToolBox(ToolBox):
    """A toolbox counting validations per call id."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.validations: dict[str, int] = {}

    def validate(self, call: ToolCall) -> dict[str, Any]:
        self.validations[call.id] = self.validations.get(call.id, 0) + 1
        return super().validate(call)


class Concurrency:
    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.seen: list[int] = []

    def toolbox(self, max_parallel: int) -> CountingToolBox:
        @tool
        async def work(n: int) -> int:
            """Work on `n`."""
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.seen.append(n)
            await anyio.sleep(0.01)
            self.running -= 1
            return n

        return CountingToolBox([work], max_parallel=max_parallel)


class ToolHookPlugin:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.events: list[str] = []

    @hookimpl
    def gecko_tool_call(self, call: ToolCall, source: str) -> None:
        self.calls.append(call.id)

    @hookimpl
    async def gecko_event(self, event: Event) -> None:
        self.events.append(event.type)


def observed_bus() -> tuple[EventBus, list[str], list[str]]:
    bus = EventBus()
    events: list[str] = []
    layers: list[str] = []
    bus.subscribe(lambda event: events.append(event.type))

    async def model_layer(context: ModelCallContext, call_next: ModelHandler) -> ModelResponse:
        layers.append("model")
        return await call_next(context)

    async def tool_layer(context: ToolCallContext, call_next: ToolHandler) -> ToolResult:
        layers.append("tool")
        return await call_next(context)

    bus.use_model_middleware(model_layer)
    bus.use_tool_middleware(tool_layer)
    return bus, events, layers


def six_calls() -> ScriptedModel:
    batch = tool_calls_reply(*(ToolCall(id=f"c{n}", name="work", arguments=json.dumps({"n": n})) for n in range(6)))
    return ScriptedModel([batch, reply("done")])


async def test_max_parallel_and_one_validation_hold_with_subscriber_hook_and_middleware() -> None:
    concurrency = Concurrency()
    toolbox = concurrency.toolbox(max_parallel=2)
    bus, events, layers = observed_bus()
    hook_plugin = ToolHookPlugin()
    plugin_manager().register(hook_plugin, "test-tool-paths")
    try:
        output = await Agent(six_calls(), tools=toolbox, event_bus=bus).run("go")
    finally:
        plugin_manager().unregister(hook_plugin)

    assert output.content == "done"
    assert concurrency.peak == 2
    assert sorted(concurrency.seen) == list(range(6))
    assert toolbox.validations == {f"c{n}": 1 for n in range(6)}
    # Every observer saw every call: the capped path is the observed path.
    assert sorted(hook_plugin.calls) == [f"c{n}" for n in range(6)]
    assert events.count("tool.finished") == 6
    assert hook_plugin.events.count("tool.finished") == 6
    assert layers.count("tool") == 6
    assert layers.count("model") == 2


async def test_a_plain_run_is_capped_and_validated_once_the_same_way() -> None:
    concurrency = Concurrency()
    toolbox = concurrency.toolbox(max_parallel=2)

    await Agent(six_calls(), tools=toolbox).run("go")

    assert concurrency.peak == 2
    assert toolbox.validations == {f"c{n}": 1 for n in range(6)}


async def test_a_call_replaced_by_middleware_is_validated_before_it_runs() -> None:
    concurrency = Concurrency()
    toolbox = concurrency.toolbox(max_parallel=2)
    bus = EventBus(forward_to_plugins=False)

    async def rewrite(context: ToolCallContext, call_next: ToolHandler) -> ToolResult:
        context.call = context.call.model_copy(update={"arguments": '{"n": "not a number"}'})
        return await call_next(context)

    bus.use_tool_middleware(rewrite)
    model = ScriptedModel([tool_calls_reply(("work", '{"n": 1}')), reply("done")])

    output = await Agent(model, tools=toolbox, event_bus=bus).run("go")

    assert concurrency.seen == []
    assert "Invalid arguments" in output.messages[-2].text
