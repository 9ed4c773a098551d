"""Model usage a plugin spends for the current run (`current_run_usage`): counted in the run's usage and output,
held to its `UsageLimits`, on every path; charged to the innermost run, never to a concurrent one.

The plugin is a hook that calls a model of its own, as a judge does; that model and the agents' are the test
models (the only fakes: the remote model API).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, TypeVar

import anyio
import pytest

from gecko.compose.team import Team
from gecko.core.agent import Agent, PausedOutput
from gecko.core.events import EventBus, FinalOutput
from gecko.core.state import UsageLimits, current_run_usage
from gecko.core.toolbox import tool
from gecko.errors import UsageLimitExceeded
from gecko.plugins import hookimpl
from gecko.plugins.hookspecs import Operation
from gecko.plugins.manager import plugin_manager
from gecko.plugins.models import ModelRequest, ModelResponse
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.models import FunctionModel, ScriptedModel, reply, tool_calls_reply
from gecko.types import AgentOutput, Event, Message, TokenUsage, ToolCall

Hook = Literal["tool_result", "model_request"]
P = TypeVar("P", bound="Spending")


class Spending:
    """A plugin asking a model of its own, charged to the run; it reports 100 input tokens per character of the
    text it is asked about, and 7 output tokens."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.model = FunctionModel(self._answer)

    def _answer(self, request: ModelRequest) -> object:
        text = request.messages[0].text
        self.asked.append(text)
        return reply("fine", input_tokens=100 * len(text), output_tokens=7)

    async def spend(self, text: str) -> None:
        run = current_run_usage()
        assert run is not None
        run.check()
        response = await self.model.complete(ModelRequest(messages=[Message.user(text)]))
        run.add(response.usage)


class Spender(Spending):
    """A hook plugin asking its model about each tool result or each model request."""

    def __init__(self, hook: Hook) -> None:
        super().__init__()
        self.hook = hook

    @hookimpl
    async def gecko_tool_result(self, call: ToolCall, result: str, source: str) -> None:
        if self.hook == "tool_result":
            await self.spend(result)

    @hookimpl
    async def gecko_model_request(self, request: ModelRequest, source: str) -> None:
        if self.hook == "model_request":
            await self.spend("x")


class FinishSpender(Spending):
    """A hook plugin asking its model about each run's end, once its output is built (`agent.finished`,
    `agent.paused`)."""

    @hookimpl
    async def gecko_event(self, event: Event) -> None:
        if event.type in ("agent.finished", "agent.paused"):
            await self.spend("x")


class EndSpender(Spending):
    """A tracing plugin asking its model about each agent run when its operation ends."""

    @hookimpl
    async def gecko_operation_ended(self, operation: Operation) -> None:
        if operation.kind == "agent.run":
            await self.spend("x")


@contextmanager
def registered(plugin: P) -> Iterator[P]:
    manager = plugin_manager()
    manager.register(plugin, "test-engine-run-usage")
    try:
        yield plugin
    finally:
        manager.unregister(plugin)


@pytest.fixture(params=["tool_result", "model_request"])
def spender(request: pytest.FixtureRequest) -> Iterator[Spender]:
    with registered(Spender(request.param)) as plugin:
        yield plugin


@tool
async def echo(text: str) -> str:
    """Return the text."""
    return text


def echoing(*texts: str) -> ScriptedModel:
    """Asks for `echo` of each text in one reply (each reply 10 input and 5 output tokens), then answers "done"."""
    return ScriptedModel([tool_calls_reply(*(("echo", f'{{"text": "{text}"}}') for text in texts)), "done"])


def agent(model: ScriptedModel, observed: bool) -> Agent:
    bus = EventBus()
    if observed:
        events: list[Event] = []
        bus.subscribe(events.append)
    return Agent(model, tools=[echo], event_bus=bus)


def usage(requests: int, input_tokens: int, output_tokens: int) -> TokenUsage:
    return TokenUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        requests=requests,
    )


async def finished(agent: Agent, input: str, stream: bool, limits: UsageLimits | None = None) -> AgentOutput:
    if not stream:
        return await agent.run(input, usage_limits=limits)
    outputs = []
    async for event in agent.stream(input, usage_limits=limits):
        assert current_run_usage() is None  # the consumer between items is not in the run
        if isinstance(event, FinalOutput):
            outputs.append(event.output)
    [output] = outputs
    return output


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
@pytest.mark.parametrize("observed", [False, True], ids=["lean", "observed"])
async def test_what_a_hook_spends_is_in_the_run_s_usage(spender: Spender, observed: bool, stream: bool) -> None:
    output = await finished(agent(echoing("abc"), observed), "go", stream)

    # Two requests of the run's own (10 + 5 tokens each); the hook's: one per tool result or per model request.
    expected = usage(3, 20 + 300, 10 + 7) if spender.hook == "tool_result" else usage(4, 20 + 200, 10 + 14)
    assert output.content == "done"
    assert output.usage == expected
    assert current_run_usage() is None


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_a_request_a_hook_spends_counts_against_max_requests_before_the_run_s_own(
    spender: Spender, stream: bool
) -> None:
    model = echoing("abc")
    limits = UsageLimits(max_requests=1)

    with pytest.raises(UsageLimitExceeded, match="max_requests=1"):
        await finished(agent(model, observed=False), "go", stream, limits)

    if spender.hook == "model_request":
        # Checked again after the hook: the request it would have sent past the budget is not sent.
        assert (len(spender.asked), len(model.requests)) == (1, 0)
    else:
        assert (len(spender.asked), len(model.requests)) == (0, 1)  # the hook checked before spending


@pytest.mark.parametrize("observed", [False, True], ids=["lean", "observed"])
async def test_a_hook_over_the_token_budget_fails_the_run_with_the_limit_error_itself(observed: bool) -> None:
    # Two calls in one reply run concurrently: the hooks' failure is raised as it is, not in an exception group.
    with registered(Spender("tool_result")) as plugin, pytest.raises(UsageLimitExceeded, match="max_total_tokens=15"):
        await agent(echoing("a", "b"), observed).run("go", usage_limits=UsageLimits(max_total_tokens=15))
    assert plugin.asked == []


async def test_concurrent_runs_are_each_charged_what_was_spent_for_them() -> None:
    plugin = Spender("tool_result")
    both_asking = anyio.Event()
    waiting = [0]

    async def answer(request: ModelRequest) -> object:
        waiting[0] += 1
        if waiting[0] == 2:
            both_asking.set()
        await both_asking.wait()  # each run's charge lands while the other's is under way
        return plugin._answer(request)

    plugin.model = FunctionModel(answer)
    outputs: dict[str, AgentOutput] = {}

    async def run(text: str, stream: bool) -> None:
        outputs[text] = await finished(agent(echoing(text), observed=False), "go", stream)

    with registered(plugin):
        async with anyio.create_task_group() as group:
            group.start_soon(run, "a", False)
            group.start_soon(run, "bbbb", True)
    assert outputs["a"].usage == usage(3, 20 + 100, 10 + 7)
    assert outputs["bbbb"].usage == usage(3, 20 + 400, 10 + 7)


async def test_members_of_a_team_are_each_charged_what_was_spent_for_them() -> None:
    with registered(Spender("tool_result")):
        results = await Team([agent(echoing("a"), False), agent(echoing("bb"), True)]).run("go")
    assert [result.usage for result in results] == [usage(3, 20 + 100, 10 + 7), usage(3, 20 + 200, 10 + 7)]


async def delegating(plugin: Spending, inner: Agent) -> tuple[AgentOutput, AgentOutput]:
    """The outputs of `inner`, run by a tool of an outer run, and of that outer run, with `plugin` registered."""
    inner_outputs: list[AgentOutput] = []

    @tool
    async def delegate(text: str) -> str:
        """Ask another agent."""
        outer = current_run_usage()
        assert outer is not None
        assert outer.usage() == usage(1, 10, 5)  # what the run spent so far: its first request
        inner_outputs.append(await inner.run(text))
        assert current_run_usage() is outer
        return "ok"

    with registered(plugin):
        model = ScriptedModel([tool_calls_reply(("delegate", '{"text": "abc"}')), "done"])
        output = await Agent(model, tools=[delegate]).run("go")
    [inner_output] = inner_outputs
    return inner_output, output


async def test_a_nested_run_s_spending_is_charged_to_it_not_to_the_run_around_it() -> None:
    plugin = Spender("tool_result")
    inner, output = await delegating(plugin, agent(echoing("abc"), False))

    assert plugin.asked == ["abc", "ok"]
    assert inner.usage == usage(3, 20 + 300, 10 + 7)
    assert output.usage == usage(3, 20 + 200, 10 + 7)


def test_outside_a_run_there_is_no_run_to_charge() -> None:
    assert current_run_usage() is None


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
@pytest.mark.parametrize("spending", [FinishSpender, EndSpender], ids=["finished", "ended"])
async def test_what_a_hook_spends_after_the_output_is_built_is_in_that_output(
    spending: type[Spending], stream: bool
) -> None:
    with registered(spending()) as plugin:
        output = await finished(agent(echoing("abc"), False), "go", stream)

    assert plugin.asked == ["x"]
    assert output.usage == usage(3, 20 + 100, 10 + 7)


@pytest.mark.parametrize("spending", [FinishSpender, EndSpender], ids=["finished", "ended"])
async def test_what_a_hook_spends_after_a_run_paused_is_in_its_paused_output(spending: type[Spending]) -> None:
    @tool(requires_approval=True)
    async def erase(path: str) -> str:
        """Erase a file."""
        return path

    model = ScriptedModel([tool_calls_reply(("erase", '{"path": "x"}'))])
    with registered(spending()):
        output = await Agent(model, tools=[erase]).run("go")

    assert isinstance(output, PausedOutput)
    assert output.usage == usage(2, 10 + 100, 5 + 7)


async def test_what_a_nested_run_spends_at_its_end_is_charged_to_it_not_to_the_run_around_it() -> None:
    plugin = EndSpender()
    inner, output = await delegating(plugin, Agent(ScriptedModel(["inner"])))

    assert plugin.asked == ["x", "x"]
    assert inner.usage == usage(2, 10 + 100, 5 + 7)
    assert output.usage == usage(3, 20 + 100, 10 + 7)


class NegativeSpender(Spending):
    """A hook plugin whose model reports counts below zero, on each model request of the run."""

    def _answer(self, request: ModelRequest) -> object:
        return reply("fine", input_tokens=-1000, output_tokens=-70)

    @hookimpl
    async def gecko_model_request(self, request: ModelRequest, source: str) -> None:
        await self.spend("x")


async def test_counts_below_zero_are_no_spending_and_the_session_reads_back() -> None:
    # They lowered what the run had spent (under its budget), and the saved session failed every later run.
    storage = MemoryStorage()
    model = FunctionModel(lambda request: reply("done", input_tokens=-50, output_tokens=-5))
    with registered(NegativeSpender()):
        first = await Agent(model, storage=storage).run("hi", session_id="s")
        second = await Agent(model, storage=storage).run("again", session_id="s")

    assert first.usage == second.usage == usage(2, 0, 0)
    assert [message.text for message in second.messages] == ["hi", "done", "again", "done"]


async def test_a_total_below_its_parts_counts_their_sum_against_the_budget() -> None:
    # A model that leaves total_tokens at 0 kept every run under max_total_tokens.
    replies = iter([tool_calls_reply(("echo", '{"text": "a"}')), reply("done")])

    def unsummed(request: ModelRequest) -> ModelResponse:
        response = next(replies)
        return response.model_copy(update={"usage": TokenUsage(input_tokens=10, output_tokens=5)})

    with pytest.raises(UsageLimitExceeded, match="15 tokens spent reach max_total_tokens=15"):
        await Agent(FunctionModel(unsummed), tools=[echo]).run("hi", usage_limits=UsageLimits(max_total_tokens=15))
