"""Every hook fires from real agent, workflow and team runs, observed by a plugin installed
through an entry point (`gecko-fake-recorder`) and loaded by the process-wide manager."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from gecko.compose.team import ExecutionStrategy, Team
from gecko.compose.workflow import Workflow
from gecko.core.agent import Agent
from gecko.core.builder import AgentBuilder
from gecko.core.toolbox import tool
from gecko.plugins import plugin_manager
from gecko.plugins.hookspecs import Operation
from gecko.testing.models import ScriptedModel, reply, tool_calls_reply
from gecko.types import Event


@pytest.fixture
def calls() -> list[tuple[str, Any]]:
    from gecko_fake_recorder import CALLS

    records = {(r.name, r.distribution): r.status for r in plugin_manager().load_plugins()}
    assert records[("fakerecorder", "gecko-fake-recorder")] == "loaded"
    CALLS.clear()
    return CALLS


def _of(calls: list[tuple[str, Any]], hook: str) -> list[Any]:
    return [value for name, value in calls if name == hook]


def _events(calls: list[tuple[str, Any]], source: str) -> list[str]:
    return [event.type for event in _of(calls, "gecko_event") if isinstance(event, Event) and event.source == source]


def _agent(name: str, *, wait: bool = False) -> Agent:
    @tool
    async def lookup(city: str) -> str:
        """Weather of a city."""
        if wait:
            await anyio.sleep_forever()
        return f"sunny in {city}"

    model = ScriptedModel([tool_calls_reply(("lookup", '{"city": "Oslo"}')), reply(f"{name}: sunny")])
    return AgentBuilder().with_model(model).with_tools([lookup]).with_name(name).build()


async def test_agent_run_fires_model_tool_event_and_operation_hooks(calls: list[tuple[str, Any]]) -> None:
    output = await _agent("weather").run("weather in Oslo?")
    assert output.content == "weather: sunny"

    requests = _of(calls, "gecko_model_request")
    assert [source for _, source in requests] == ["weather", "weather"]
    assert requests[0][0].messages[-1].text == "weather in Oslo?"
    responses = [(response.finish_reason, response.message.text) for response, _ in _of(calls, "gecko_model_response")]
    assert responses == [("tool_calls", ""), ("stop", "weather: sunny")]
    ((call, source),) = _of(calls, "gecko_tool_call")
    assert (call.name, call.arguments, source) == ("lookup", '{"city": "Oslo"}', "weather")
    assert [(c.name, result) for c, result, _ in _of(calls, "gecko_tool_result")] == [("lookup", "sunny in Oslo")]
    assert _events(calls, "weather") == [
        "agent.started", "model.finished", "tool.started", "tool.finished", "model.finished", "agent.finished",
    ]  # fmt: skip
    started = _of(calls, "gecko_operation_started")
    assert [op.kind for op in started] == ["agent.run", "model.call", "tool.call", "model.call"]
    assert all(op.parent is started[0] for op in started[1:])
    assert [op.kind for op in _of(calls, "gecko_operation_ended")] == [
        "model.call", "tool.call", "model.call", "agent.run",
    ]  # fmt: skip
    assert started[0].output is output


async def test_workflow_run_publishes_run_and_node_events_and_operations(calls: list[tuple[str, Any]]) -> None:
    wf = Workflow("trip")
    wf.add_node("plan", lambda ctx: "Oslo")
    wf.add_node("ask", _agent("weather"))
    wf.add_node("never", lambda ctx: "unreachable")
    wf.add_edge("plan", "ask")
    wf.add_edge("plan", "never", condition=lambda ctx: False)
    wf.set_entry_point("plan")
    result = await wf.execute("go")
    assert result.output.content == "weather: sunny"

    events = _events(calls, "trip")
    assert events[0] == "workflow.started"
    assert events[-1] == "workflow.finished"
    node_events = [
        (event.type, event.data.get("node"))
        for event in _of(calls, "gecko_event")
        if event.source == "trip" and event.type.startswith("workflow.node.")
    ]
    assert node_events == [
        ("workflow.node.started", "plan"),
        ("workflow.node.finished", "plan"),
        ("workflow.node.skipped", "never"),
        ("workflow.node.started", "ask"),
        ("workflow.node.finished", "ask"),
    ]
    # The agent inside the node fires the agent hooks too.
    assert [source for _, source in _of(calls, "gecko_tool_call")] == ["weather"]
    started = {(op.kind, op.name): op for op in _of(calls, "gecko_operation_started")}
    run = started[("workflow.run", "trip")]
    assert started[("workflow.node", "ask")].parent is run
    assert started[("agent.run", "weather")].parent is started[("workflow.node", "ask")]
    assert run.status == "ok"
    assert run.output.content == "weather: sunny"


async def test_workflow_failure_is_published(calls: list[tuple[str, Any]]) -> None:
    def explode(ctx: object) -> None:
        raise RuntimeError("boom")

    wf = Workflow("fragile")
    wf.add_node("explode", explode)
    wf.set_entry_point("explode")
    with pytest.raises(Exception, match="boom"):
        await wf.execute("go")
    assert _events(calls, "fragile") == [
        "workflow.started", "workflow.node.started", "workflow.node.failed", "workflow.failed",
    ]  # fmt: skip


@pytest.mark.parametrize("strategy", [ExecutionStrategy.ALL, ExecutionStrategy.RACE])
async def test_team_run_publishes_member_events_and_operations(
    calls: list[tuple[str, Any]], strategy: ExecutionStrategy
) -> None:
    race = strategy is ExecutionStrategy.RACE
    members = [_agent("a0"), _agent("a1", wait=race), _agent("a2", wait=race)]
    results = await Team(members, name="crew", strategy=strategy).run("weather?")
    assert results[0].is_success

    events = [(e.type, e.data.get("member_index")) for e in _of(calls, "gecko_event") if e.source == "crew"]
    assert events[0] == ("team.started", None)
    assert events[-1] == ("team.finished", None)
    ends = {index: kind for kind, index in events if kind.startswith("team.member.") and kind != "team.member.started"}
    expected = "team.member.cancelled" if race else "team.member.finished"
    assert ends == {0: "team.member.finished", 1: expected, 2: expected}
    assert {source for _, source in _of(calls, "gecko_tool_call")} == {"a0", "a1", "a2"}

    ended: list[Operation] = _of(calls, "gecko_operation_ended")
    members_ops = {op.attributes["member_index"]: op for op in ended if op.kind == "team.member"}
    assert members_ops[0].status == "ok"
    assert {members_ops[1].status, members_ops[2].status} == {"cancelled" if race else "ok"}
    (team_op,) = [op for op in ended if op.kind == "team.run"]
    assert ended[-1] is team_op
    assert all(op.parent is team_op for op in members_ops.values())
