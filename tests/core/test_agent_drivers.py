"""The two drivers of the ReAct loop take the same steps.

`run` and `resume` drive the loop as one coroutine (`complete`); `iterate` drives it as an event
generator. Unobserved and observed (subscriber, hook plugin) runs through either driver end with
the same output, conversation, usage and events, and fail with the same typed errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from gecko.core.agent import Agent
from gecko.core.events import FinalOutput
from gecko.core.state import PausedOutput, RunState
from gecko.core.structure import OUTPUT_TOOL_NAME
from gecko.core.toolbox import tool
from gecko.errors import StructuredOutputError, StructuredOutputInvalid, UnknownToolError
from gecko.plugins import hookimpl, plugin_manager
from gecko.plugins.models import ModelRequest, ModelResponse
from gecko.testing.models import ScriptedModel, reply
from gecko.types import AgentOutput, Event, ToolCall


class Reply(BaseModel):
    name: str
    age: int


class Observer:
    """A hook plugin seeing model requests and events: with it, every run is observed."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def gecko_model_request(self, request: ModelRequest, source: str) -> None:
        self.seen.append("model_request")

    @hookimpl
    async def gecko_event(self, event: Event) -> None:
        self.seen.append(event.type)


@pytest.fixture
def observer() -> Iterator[Observer]:
    plugin = Observer()
    manager = plugin_manager()
    manager.register(plugin, "test-agent-drivers-observer")
    try:
        yield plugin
    finally:
        manager.unregister(plugin)


@tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool(requires_approval=True)
async def erase(path: str) -> str:
    """Erase a file."""
    return f"erased {path}"


def output_call(arguments: str, call_id: str = "out") -> list[ToolCall]:
    return [ToolCall(id=call_id, name=OUTPUT_TOOL_NAME, arguments=arguments)]


SCRIPTS: dict[str, list[Any]] = {
    "structured": [output_call('{"name": "Ada", "age": 36}')],
    "structured after a re-ask and a tool": [
        output_call('{"name": "Ada", "age": "old"}', "bad"),
        [ToolCall(id="t1", name="add", arguments='{"a": 2, "b": 3}')],
        output_call('{"name": "Ada", "age": 5}'),
    ],
    "text after a tool and a refused call": [
        [ToolCall(id="t1", name="nope", arguments="{}")],
        [ToolCall(id="t2", name="add", arguments='{"a": 2, "b": 3}')],
        "The sum is 5.",
    ],
}


def agent_for(script: list[Any], **options: Any) -> tuple[Agent, ScriptedModel]:
    model = ScriptedModel(script)
    output_type = None if isinstance(script[-1], str) else Reply
    return Agent(model, tools=[add, erase], output_type=output_type, structure_strategy="tool", **options), model


async def through_generator(agent: Agent, input: str) -> AgentOutput:
    """The run driven by the event generator (`ReActEngine.iterate`, not streamed)."""
    engine = agent.engine
    structure = agent._structure(agent.output_type)
    events = [event async for event in engine.iterate(engine.new_state(input), structure=structure)]
    assert len(events) == 1
    assert isinstance(events[0], FinalOutput)
    return events[0].output


async def drive(agent: Agent, driver: str, input: str) -> AgentOutput:
    """`agent.run(input)`, or the same run through the event generator."""
    return await agent.run(input) if driver == "run" else await through_generator(agent, input)


def summary(output: AgentOutput) -> tuple[Any, ...]:
    return (
        type(output),
        output.content,
        output.data,
        [message.model_dump() for message in output.messages],
        output.usage,
    )


def event_log(agent: Agent) -> list[tuple[str, dict[str, Any]]]:
    log: list[tuple[str, dict[str, Any]]] = []
    agent.events.subscribe(lambda event: log.append((event.type, event.data)))
    return log


@pytest.mark.parametrize("name", sorted(SCRIPTS))
async def test_run_and_the_event_generator_end_the_same_unobserved(name: str) -> None:
    by_run, _ = agent_for(SCRIPTS[name])
    by_generator, _ = agent_for(SCRIPTS[name])
    assert summary(await by_run.run("Who?")) == summary(await through_generator(by_generator, "Who?"))


@pytest.mark.parametrize("name", sorted(SCRIPTS))
async def test_observed_runs_end_as_unobserved_ones_and_both_drivers_publish_the_same_events(
    name: str, observer: Observer
) -> None:
    plain, _ = agent_for(SCRIPTS[name])
    with_observers = []
    for _ in range(2):
        agent, model = agent_for(SCRIPTS[name])
        with_observers.append((agent, model, event_log(agent)))
    (by_run, run_model, run_events), (by_generator, generator_model, generator_events) = with_observers
    observer.seen.clear()
    run_output = await by_run.run("Who?")
    run_hooks = list(observer.seen)
    observer.seen.clear()
    generator_output = await through_generator(by_generator, "Who?")
    assert summary(run_output) == summary(generator_output)
    assert run_events == generator_events
    assert run_hooks == observer.seen
    assert run_events[0][0] == "agent.started"
    assert run_events[-1][0] == "agent.finished"
    assert run_hooks.count("model_request") == len(run_model.requests) == len(generator_model.requests)
    # Unobserved runs end the same way, minus the observation.
    plain.engine.bus._forward = False
    assert summary(await plain.run("Who?")) == summary(run_output)


async def test_the_stored_session_is_the_same_through_run_and_stream() -> None:
    script = SCRIPTS["structured after a re-ask and a tool"]
    by_run, _ = agent_for(script, session_id="s")
    by_stream, _ = agent_for(script, session_id="s")
    run_output = await by_run.run("Who?")
    stream_output = [event async for event in by_stream.stream("Who?")][-1]
    assert isinstance(stream_output, FinalOutput)
    assert summary(run_output) == summary(stream_output.output)
    stored = []
    for agent in (by_run, by_stream):
        _, _, document, version = await agent._load("s")
        assert document is not None
        assert (version, document["pending"]) == (1, [])
        stored.append([message.model_dump() for message in RunState.from_json(document["state"]).messages])
    assert stored[0] == stored[1] == [message.model_dump() for message in run_output.messages]


@pytest.mark.parametrize("observed", [False, True])
async def test_malformed_output_is_the_same_typed_error_through_both_drivers(observed: bool) -> None:
    script = [output_call('{"name": "Ada"}', f"c{i}") for i in range(3)]
    errors: list[tuple[str, str]] = []
    events: list[list[tuple[str, dict[str, Any]]]] = []
    for driver in ("run", "generator"):
        agent, model = agent_for(script, structure_retries=2)
        if observed:
            events.append(event_log(agent))
        with pytest.raises(StructuredOutputError) as caught:
            await drive(agent, driver, "Who?")
        errors.append((type(caught.value).__name__, str(caught.value)))
        assert len(model.requests) == 3
    assert errors[0] == errors[1]
    if observed:
        assert events[0] == events[1]
        assert events[0][-1][0] == "agent.failed"


async def test_an_unknown_tool_fails_the_same_through_both_drivers() -> None:
    script = [[ToolCall(id=f"c{i}", name="nope", arguments="{}")] for i in range(3)]
    messages = []
    for driver in ("run", "generator"):
        agent, _ = agent_for([*script, "done"], max_tool_retries=2)
        with pytest.raises(UnknownToolError) as caught:
            await drive(agent, driver, "Go")
        messages.append(str(caught.value))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("observed", [False, True])
async def test_approvals_pause_and_resume_the_same_through_both_drivers(observed: bool) -> None:
    script: list[Any] = [[ToolCall(id="e1", name="erase", arguments='{"path": "/tmp/x"}')], "Erased."]
    finals = []
    for driver in ("run", "generator"):
        agent, _ = agent_for(script, session_id="s")
        log = event_log(agent) if observed else []
        paused = await agent.run("Erase it")
        assert isinstance(paused, PausedOutput)
        if driver == "run":
            output = await agent.resume({"e1": True}, session_id="s")
        else:
            _, _, document, _ = await agent._load("s")
            assert document is not None
            state = RunState.from_json(document["state"])
            events = [event async for event in agent.engine.iterate(state, approvals={"e1": True})]
            output = events[-1].output  # type: ignore[union-attr]
        finals.append((summary(output)[1:], [event for event, _ in log]))
    assert finals[0] == finals[1]
    assert any(message["content"] == "erased /tmp/x" for message in finals[0][0][2])


@pytest.mark.parametrize("observed", [False, True])
async def test_cancelling_a_run_cancels_both_drivers_without_a_failure_event(observed: bool) -> None:
    for driver in ("run", "generator"):
        agent = Agent(ScriptedModel([reply("late")], delay=10))
        log = event_log(agent) if observed else []
        with anyio.move_on_after(0.05) as scope:
            await drive(agent, driver, "Wait")
        assert scope.cancelled_caught
        assert "agent.failed" not in [event for event, _ in log]
        assert [event for event, _ in log] == (["agent.started"] if observed else [])


async def test_a_model_error_is_not_swallowed_by_either_driver() -> None:
    class Broken(ScriptedModel):
        async def _respond(self, request: ModelRequest) -> ModelResponse:
            raise RuntimeError("endpoint down")

    for driver in ("run", "generator"):
        agent = Agent(Broken([]))
        log = event_log(agent)
        with pytest.raises(RuntimeError, match="endpoint down"):
            await drive(agent, driver, "Hi")
        assert [event for event, _ in log] == ["agent.started", "agent.failed"]


# Structured replies a run takes at once, repairs, re-asks or fails on: each ends the same lean
# (no subscriber, hook or middleware) and observed, through `run` and through the event generator.
STRUCTURED_SCENARIOS: dict[str, list[Any]] = {
    "valid": [output_call('{"name": "Ada", "age": 36}')],
    "repaired": [output_call("```json\n{'name': 'Ada', 'age': 36,}\n```")],
    "re-asked after a repeated key": [
        output_call('{"name": "Ada", "age": 36, "age": 37}', "twice"),
        output_call('{"name": "Ada", "age": 36}'),
    ],
    "re-asked after NaN and a huge number": [
        output_call('{"name": "Ada", "age": NaN}', "nan"),
        output_call('{"name": "Ada", "age": 1e999}', "huge"),
        output_call('{"name": "Ada", "age": 36}'),
    ],
    "failing": [output_call('{"name": "Ada", "age": "old"}', f"bad{i}") for i in range(3)],
}


async def structured_outcome(script: list[Any], driver: str, observed: bool) -> tuple[Any, ...]:
    """What a run of `script` ends with: its summary, or its error's type and text; and the requests sent."""
    agent, model = agent_for(script)
    events = event_log(agent) if observed else None
    try:
        output = await drive(agent, driver, "Who?")
    except StructuredOutputInvalid as exc:
        outcome: tuple[Any, ...] = (type(exc), str(exc), exc.errors)
        end = "agent.failed"
    else:
        outcome = summary(output)
        end = "agent.finished"
    if events is not None:
        assert (events[0][0], events[-1][0]) == ("agent.started", end)
    return outcome, [request.model_dump() for request in model.requests]


@pytest.mark.parametrize("name", sorted(STRUCTURED_SCENARIOS))
async def test_structured_replies_end_the_same_lean_and_observed_through_both_drivers(
    name: str, observer: Observer
) -> None:
    script = STRUCTURED_SCENARIOS[name]
    observed = [await structured_outcome(script, driver, observed=True) for driver in ("run", "generator")]
    plugin_manager().unregister(observer)
    try:
        lean = [await structured_outcome(script, driver, observed=False) for driver in ("run", "generator")]
    finally:
        plugin_manager().register(observer, "test-agent-drivers-observer")

    assert lean[0] == lean[1] == observed[0] == observed[1]
    outcome, requests = lean[0]
    assert len(requests) == len(script)
    if name == "failing":
        assert outcome[0] is StructuredOutputInvalid
        assert "age" in outcome[2]
    else:
        assert outcome[2] == Reply(name="Ada", age=36)
    assert "model_request" in observer.seen


def test_a_run_id_is_drawn_once_when_first_read_and_kept_through_json() -> None:
    state = RunState([])
    assert repr(state) == "RunState(run_id=None, messages=0, requests=0)"
    run_id = state.run_id
    assert len(run_id) == 16
    assert int(run_id, 16) >= 0
    assert state.run_id == run_id
    assert RunState.from_json(state.to_json()).run_id == run_id
    assert RunState([]).run_id != run_id
