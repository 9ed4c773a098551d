"""Agent runs end to end on scripted models: answers, tool calls, usage, sessions."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import pytest

from gecko.compose.team import Team
from gecko.core.agent import Agent, session_key
from gecko.core.engine import ReActEngine
from gecko.core.events import EventBus, FinalOutput, StreamEvent, TextDelta
from gecko.core.toolbox import ToolBox, tool
from gecko.errors import ConfigurationError
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.models import ScriptedModel, reply, tool_calls_reply
from gecko.types import Message, Role, TokenUsage, ToolCall


class Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, object]]] = []


def make_tools(calls: Calls) -> list[object]:
    @tool
    async def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.seen.append(("add", {"a": a, "b": b}))
        return a + b

    @tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        calls.seen.append(("multiply", {"a": a, "b": b}))
        return a * b

    return [add, multiply]


def three_turn_model() -> ScriptedModel:
    return ScriptedModel(
        [
            tool_calls_reply(("add", '{"a": 2, "b": 3}'), input_tokens=11, output_tokens=7),
            tool_calls_reply(("multiply", '{"a": 5, "b": 4}'), input_tokens=23, output_tokens=9),
            reply("The result is 20.", input_tokens=37, output_tokens=13),
        ]
    )


EXPECTED_USAGE = TokenUsage(input_tokens=71, output_tokens=29, total_tokens=100, requests=3)


async def test_three_turn_run_returns_the_answer() -> None:
    calls = Calls()
    agent = Agent(three_turn_model(), tools=make_tools(calls))
    output = await agent.run("Compute (2 + 3) * 4")
    assert output.content == "The result is 20."


async def test_three_turn_run_runs_each_tool_once_with_validated_arguments() -> None:
    calls = Calls()
    agent = Agent(three_turn_model(), tools=make_tools(calls))
    await agent.run("Compute (2 + 3) * 4")
    assert calls.seen == [("add", {"a": 2, "b": 3}), ("multiply", {"a": 5, "b": 4})]


async def test_three_turn_run_sums_usage_exactly() -> None:
    agent = Agent(three_turn_model(), tools=make_tools(Calls()))
    output = await agent.run("Compute (2 + 3) * 4")
    assert output.usage == EXPECTED_USAGE


async def test_streamed_three_turn_run_sums_usage_exactly() -> None:
    agent = Agent(three_turn_model(), tools=make_tools(Calls()))
    events: list[StreamEvent] = [event async for event in agent.stream("Compute (2 + 3) * 4")]
    final = events[-1]
    assert isinstance(final, FinalOutput)
    assert final.output.usage == EXPECTED_USAGE
    assert final.output.content == "The result is 20."


async def test_tool_results_reach_the_model_as_observations() -> None:
    model = three_turn_model()
    agent = Agent(model, tools=make_tools(Calls()))
    await agent.run("Compute (2 + 3) * 4")
    last = model.requests[-1].messages
    assert [(m.role, m.text) for m in last if m.role is Role.TOOL] == [(Role.TOOL, "5"), (Role.TOOL, "20")]


async def test_system_prompt_is_sent_first_but_not_stored() -> None:
    model = ScriptedModel(["hi"])
    agent = Agent(model, system_prompt="Be brief.")
    output = await agent.run("hello")
    assert model.requests[0].messages[0].role is Role.SYSTEM
    assert [m.role for m in output.messages] == [Role.USER, Role.ASSISTANT]


async def test_session_keeps_the_conversation_between_runs() -> None:
    model = ScriptedModel(["first answer", "second answer"])
    agent = Agent(model, session_id="s1")
    await agent.run("first question")
    await agent.run("second question")
    assert [m.text for m in model.requests[1].messages] == ["first question", "first answer", "second question"]


async def test_session_is_stored_as_json_under_the_agent_namespace() -> None:
    storage = MemoryStorage()
    agent = Agent(ScriptedModel(["stored answer"]), storage=storage)
    await agent.run("question", session_id="user-7")
    document = await storage.get(session_key("user-7"))
    assert session_key("user-7") == "gecko:agent:user-7"
    assert [m["content"] for m in document["state"]["messages"]] == ["question", "stored answer"]


async def test_session_survives_a_new_agent_on_the_same_storage_url() -> None:
    storage = MemoryStorage()
    await Agent(ScriptedModel(["one"]), storage=storage).run("q1", session_id="shared")
    model = ScriptedModel(["two"])
    await Agent(model, storage=storage).run("q2", session_id="shared")
    assert [m.text for m in model.requests[0].messages] == ["q1", "one", "q2"]


async def test_agent_opened_from_a_storage_url_closes_it() -> None:
    agent = Agent(ScriptedModel(["a"]), storage="memory://", session_id="s")
    await agent.run("q")
    storage = await agent._open_storage()
    await agent.aclose()
    assert storage.closed


async def test_memory_prepares_the_window_sent_to_the_model() -> None:
    class LastMessageOnly:
        async def prepare(self, messages: Sequence[Message]) -> list[Message]:
            return [messages[-1]]

    model = ScriptedModel(["a", "b"])
    agent = Agent(model, memory=LastMessageOnly(), session_id="m")
    await agent.run("first")
    await agent.run("second")
    assert [m.text for m in model.requests[1].messages] == ["second"]


async def test_missing_input_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="needs an input"):
        await Agent(ScriptedModel(["x"])).run(None)


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


# What a team's input_mapper or an earlier workflow node may hand an agent: no JSON and no `str`.
UNWRITABLE_INPUTS = {
    "a list 100 000 deep": _nested(100_000),
    "a dict 100 000 deep": functools.reduce(lambda inner, _: {"a": inner}, range(100_000), {}),
    "an int of 5000 digits": 10**5000,
    "an object whose str raises": Unprintable(),
}


@pytest.mark.parametrize("value", UNWRITABLE_INPUTS.values(), ids=UNWRITABLE_INPUTS.keys())
async def test_an_input_that_cannot_become_text_is_a_configuration_error(value: object) -> None:
    model = ScriptedModel(["never"])
    with pytest.raises(ConfigurationError, match="cannot be written as text"):
        await Agent(model).run(value)
    assert model.requests == []
    results = await Team([Agent(model)], input_mapper=lambda raw, index: value).run("x")
    assert isinstance(results[0].error, ConfigurationError)


async def test_the_engine_run_returns_the_output_its_event_stream_ends_with() -> None:
    engine = ReActEngine(ScriptedModel(["first", "second"]), ToolBox())
    output = await engine.run(engine.new_state("hi"))
    events = [event async for event in engine.iterate(engine.new_state("hi"))]
    assert isinstance(events[-1], FinalOutput)
    assert (output.content, events[-1].output.content) == ("first", "second")


def test_a_new_state_puts_the_history_before_the_input() -> None:
    engine = ReActEngine(ScriptedModel([]), ToolBox())
    history = [Message.user("before"), Message.assistant("answer")]
    state = engine.new_state({"q": 1}, history)
    assert [message.text for message in state.messages] == ["before", "answer", '{"q": 1}']
    assert state.messages[:2] == history


def test_a_new_state_needs_an_input() -> None:
    with pytest.raises(ConfigurationError, match="needs an input"):
        ReActEngine(ScriptedModel([]), ToolBox()).new_state(None)


# A lone surrogate is not valid Unicode: no store, file or provider takes one. Where a model or a
# user hands one over, it reads as U+FFFD (a pair becomes its character) and the session saves.


@pytest.mark.parametrize("observed", [False, True], ids=["lean", "observed"])
@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_a_reply_holding_lone_surrogates_reads_them_as_replacement_characters(
    observed: bool, stream: bool
) -> None:
    storage = MemoryStorage()
    bus = EventBus(forward_to_plugins=False)
    if observed:
        bus.subscribe(lambda event: None)
    agent = Agent(ScriptedModel(["a\ud800b \ud83d\ude00 \udc00"]), storage=storage, event_bus=bus)
    if stream:
        events = [event async for event in agent.stream("q", session_id="s")]
        deltas = "".join(event.text for event in events if isinstance(event, TextDelta))
        assert deltas == "a\ufffdb \U0001f600 \ufffd"
        output = next(event.output for event in events if isinstance(event, FinalOutput))
    else:
        output = await agent.run("q", session_id="s")
    assert output.content == "a\ufffdb \U0001f600 \ufffd"
    model = ScriptedModel(["again"])
    await Agent(model, storage=storage).run("q2", session_id="s")
    assert [m.text for m in model.requests[0].messages] == ["q", "a\ufffdb \U0001f600 \ufffd", "q2"]


async def test_a_tool_call_holding_a_lone_surrogate_runs_with_it_read_as_a_replacement_character() -> None:
    received: list[str] = []

    @tool
    async def echo(text: str) -> str:
        """Echo the text."""
        received.append(text)
        return text

    model = ScriptedModel(
        [tool_calls_reply(ToolCall(id="c\udc00", name="echo", arguments='{"text": "x\ud800y"}')), reply("done")]
    )
    storage = MemoryStorage()
    output = await Agent(model, tools=[echo], storage=storage).run("q", session_id="s")
    assert output.content == "done"
    assert received == ["x\ufffdy"]
    call = model.requests[1].messages[1].tool_calls[0]
    assert (call.id, call.arguments) == ("c\ufffd", '{"text": "x\ufffdy"}')
    assert model.requests[1].messages[2].tool_call_id == "c\ufffd"


@pytest.mark.parametrize("input", ["q\ud800", {"text": "q\ud800"}], ids=["text", "data"])
async def test_an_input_holding_a_lone_surrogate_reads_it_as_a_replacement_character(input: object) -> None:
    model = ScriptedModel(["a"])
    await Agent(model, storage=MemoryStorage()).run(input, session_id="s")
    assert "\ufffd" in model.requests[0].messages[0].text
    assert "\ud800" not in model.requests[0].messages[0].text
