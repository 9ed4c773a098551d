"""Every hookspec is documented in its docstring, listed in docs/hooks.md, and exercised here.

A hook added to `gecko.plugins.hookspecs` without a `test_hook_<name>_...` test in this module,
a docstring, or an entry in the `::: gecko.plugins.hookspecs` members of docs/hooks.md (which
renders the docstrings on the documentation site) fails the meta-tests below.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from gecko.compose.team import ExecutionStrategy, Team
from gecko.compose.workflow import Workflow
from gecko.core.agent import Agent
from gecko.core.builder import AgentBuilder
from gecko.core.events import EventBus, FinalOutput, TextDelta
from gecko.core.toolbox import tool
from gecko.errors import ApprovalRequired, GuardrailViolation, ModelServerError, WorkflowError
from gecko.plugins import hookimpl, hookspecs, plugin_manager
from gecko.plugins import manager as manager_module
from gecko.plugins.hookspecs import Operation
from gecko.plugins.manager import PluginManager, current_operation
from gecko.plugins.models import ModelChunk, ModelRequest, ModelResponse
from gecko.testing.models import FunctionModel, ScriptedModel, reply, tool_calls_reply
from gecko.types import Event, Message, TokenUsage, ToolCall

HOOKS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("gecko_"))
DOCS = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"


def test_hookspecs_are_found() -> None:
    assert "gecko_event" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_has_a_docstring_saying_when_it_fires_and_how_results_combine(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert len(doc.splitlines()) >= 3, f"{hook} needs a docstring: when it fires, sync/async, how results combine"
    assert "Return values" in doc or "returns" in doc.lower()


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_is_rendered_in_hooks_md(hook: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    directive = text.index("::: gecko.plugins.hookspecs")
    members = re.findall(r"^        - (\w+)$", text[directive:], flags=re.MULTILINE)
    assert hook in members, f"list {hook} under `members:` of the `::: gecko.plugins.hookspecs` block in docs/hooks.md"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_is_exercised_by_a_test(hook: str) -> None:
    tests = [name for name in vars(sys.modules[__name__]) if name.startswith(f"test_hook_{hook}_")]
    assert tests, f"add a test named test_hook_{hook}_<behaviour> to this module"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_is_prefixed_and_not_firstresult(hook: str) -> None:
    options = getattr(hookspecs, hook).gecko_spec
    assert not options.get("firstresult")


# --- one behaviour per hook, through the typed manager ----------------------------


def _request() -> ModelRequest:
    return ModelRequest(messages=[Message.user("secret 1234")])


async def test_hook_gecko_event_reaches_async_and_sync_observers() -> None:
    manager = PluginManager()
    seen: list[str] = []

    class AsyncObserver:
        @hookimpl
        async def gecko_event(self, event: Event) -> None:
            seen.append(f"async:{event.type}")

    class SyncObserver:
        @hookimpl
        def gecko_event(self, event: Event) -> None:
            seen.append(f"sync:{event.type}")

    manager.register(AsyncObserver())
    manager.register(SyncObserver())
    await manager.event(Event(type="agent.started", source="a", run_id="r1"))
    assert sorted(seen) == ["async:agent.started", "sync:agent.started"]


async def test_hook_gecko_model_request_can_redact_in_place() -> None:
    manager = PluginManager()

    class Redactor:
        @hookimpl
        async def gecko_model_request(self, request: ModelRequest, source: str) -> None:
            request.messages[:] = [Message.user(m.text.replace("1234", "####")) for m in request.messages]

    manager.register(Redactor())
    request = _request()
    await manager.model_request(request, source="agent")
    assert request.messages[0].text == "secret ####"


async def test_hook_gecko_model_request_violation_reaches_the_caller() -> None:
    manager = PluginManager()

    class Blocker:
        @hookimpl
        def gecko_model_request(self, request: ModelRequest, source: str) -> None:
            raise GuardrailViolation(f"blocked for {source}")

    manager.register(Blocker())
    with pytest.raises(GuardrailViolation, match="blocked for agent"):
        await manager.model_request(_request(), source="agent")


async def test_hook_gecko_model_response_sees_request_and_response() -> None:
    manager = PluginManager()
    seen: list[tuple[str, str]] = []

    class Auditor:
        @hookimpl
        async def gecko_model_response(self, request: ModelRequest, response: ModelResponse, source: str) -> None:
            seen.append((request.messages[0].text, response.message.text))

    manager.register(Auditor())
    response = ModelResponse(message=Message.assistant("hello"), usage=TokenUsage())
    await manager.model_response(_request(), response, source="agent")
    assert seen == [("secret 1234", "hello")]


async def test_hook_gecko_tool_call_violation_blocks_the_call() -> None:
    manager = PluginManager()

    class Blocker:
        @hookimpl
        async def gecko_tool_call(self, call: ToolCall, source: str) -> None:
            if call.name == "rm":
                raise GuardrailViolation("rm is not allowed")

    manager.register(Blocker())
    await manager.tool_call(ToolCall(id="1", name="ls", arguments="{}"), source="agent")
    with pytest.raises(GuardrailViolation):
        await manager.tool_call(ToolCall(id="2", name="rm", arguments="{}"), source="agent")


async def test_hook_gecko_tool_result_receives_the_result_text() -> None:
    manager = PluginManager()
    seen: list[tuple[str, str, str]] = []

    class Auditor:
        @hookimpl
        def gecko_tool_result(self, call: ToolCall, result: str, source: str) -> None:
            seen.append((call.name, result, source))

    manager.register(Auditor())
    await manager.tool_result(ToolCall(id="1", name="ls", arguments="{}"), "a.txt", source="agent")
    assert seen == [("ls", "a.txt", "agent")]


# --- operations: real agent, workflow and team runs observed by a registered plugin ---------


class _OperationRecorder:
    """Records every operation start and end, and checks each end matches a start."""

    def __init__(self) -> None:
        self.started: list[Operation] = []
        self.ended: list[Operation] = []

    @hookimpl
    def gecko_operation_started(self, operation: Operation) -> None:
        assert operation.status == "running"
        assert operation.parent is None or operation.parent in self.started
        self.started.append(operation)

    @hookimpl
    async def gecko_operation_ended(self, operation: Operation) -> None:
        await anyio.lowlevel.checkpoint()  # an async observer, awaited even when cancelled
        assert operation in self.started
        assert operation not in self.ended
        self.ended.append(operation)

    def of(self, kind: str) -> list[Operation]:
        return [op for op in self.started if op.kind == kind]


@pytest.fixture
def recorder() -> Iterator[_OperationRecorder]:
    manager = plugin_manager()
    plugin = _OperationRecorder()
    manager.register(plugin)
    try:
        yield plugin
    finally:
        manager.unregister(plugin)


def _chain(op: Operation | None) -> list[str]:
    names = []
    while op is not None:
        names.append(f"{op.kind}:{op.name}")
        op = op.parent
    return names


def _barrier_agent(name: str, inside: dict[str, Operation | None]) -> Agent:
    """An agent whose two tools each wait for the other: the calls provably run concurrently."""
    both = {"count": 0, "event": anyio.Event()}

    async def arrive() -> None:
        both["count"] += 1
        if both["count"] == 2:
            both["event"].set()
        await both["event"].wait()

    @tool
    async def first() -> str:
        """First half."""
        await arrive()
        inside[f"{name}.first"] = current_operation()
        return "one"

    @tool
    async def second() -> str:
        """Second half."""
        await arrive()
        inside[f"{name}.second"] = current_operation()
        return "two"

    model = ScriptedModel([tool_calls_reply(("first", "{}"), ("second", "{}")), reply(f"{name} done")])
    return AgentBuilder().with_model(model).with_tools([first, second]).with_name(name).build()


async def test_hook_gecko_operation_started_parents_parallel_tools_and_branches(recorder: _OperationRecorder) -> None:
    inside: dict[str, Operation | None] = {}
    left, right = _barrier_agent("left", inside), _barrier_agent("right", inside)
    wf = Workflow("fan")
    wf.add_node("split", lambda ctx: "go")
    wf.add_node("left", left)
    wf.add_node("right", right)
    wf.add_edge("split", "left").add_edge("split", "right")
    wf.set_entry_point("split")
    await wf.execute("x")

    tools = recorder.of("tool.call")
    assert len(tools) == 4
    for op in tools:
        branch = op.parent.parent.name if op.parent and op.parent.parent else None
        assert _chain(op) == [
            f"tool.call:{op.name}",
            f"agent.run:{branch}",
            f"workflow.node:{branch}",
            "workflow.run:fan",
        ]
        # Inside the tool, the current operation is its own call: nested runs parent to it.
        assert inside[f"{branch}.{op.name}"] is op
    models = recorder.of("model.call")
    assert len(models) == 4
    assert all(op.parent is not None and op.parent.kind == "agent.run" for op in models)
    assert all(isinstance(op.output, ModelResponse) for op in models)
    assert {op.name for op in recorder.of("workflow.node")} == {"split", "left", "right"}
    assert all(op.status == "ok" for op in recorder.ended)
    assert len(recorder.ended) == len(recorder.started)


async def test_hook_gecko_operation_started_lets_a_plugin_add_request_settings(recorder: _OperationRecorder) -> None:
    class Injector:
        @hookimpl
        def gecko_operation_started(self, operation: Operation) -> None:
            if operation.kind == "model.call":
                operation.input.settings["extra_headers"] = {"traceparent": f"00-{operation.id}"}

    seen: list[dict[str, object]] = []

    def answer(request: ModelRequest) -> ModelResponse:
        seen.append(dict(request.settings))
        return reply("ok")

    manager = plugin_manager()
    injector = Injector()
    manager.register(injector)
    try:
        await AgentBuilder().with_model(FunctionModel(answer)).build().run("hi")
    finally:
        manager.unregister(injector)
    (model_op,) = recorder.of("model.call")
    assert seen == [{"extra_headers": {"traceparent": f"00-{model_op.id}"}}]
    # Whether the model would send such headers is announced with the call (this one would not).
    assert model_op.attributes == {"provider": "function", "sends_extra_headers": False}


async def test_hook_gecko_operation_ended_reports_race_losers_cancelled_after_their_children(
    recorder: _OperationRecorder,
) -> None:
    def racer(index: int) -> Agent:
        @tool
        async def work() -> str:
            """Work; only member 0 ever finishes."""
            if index:
                await anyio.sleep_forever()
            return "done"

        model = ScriptedModel([tool_calls_reply(("work", "{}")), reply(f"member {index}")])
        return AgentBuilder().with_model(model).with_tools([work]).with_name(f"a{index}").build()

    team = Team([racer(i) for i in range(3)], name="race", strategy=ExecutionStrategy.RACE)
    results = await team.run("go")
    assert results[0].member_index == 0
    assert results[0].is_success

    (team_op,) = recorder.of("team.run")
    members = {op.attributes["member_index"]: op for op in recorder.of("team.member")}
    assert all(op.parent is team_op for op in members.values())
    assert members[0].status == "ok"
    assert members[1].status == members[2].status == "cancelled"
    for op in recorder.of("tool.call"):
        index = int(op.parent.name[1:]) if op.parent else -1
        assert _chain(op) == ["tool.call:work", f"agent.run:a{index}", f"team.member:race[{index}]", "team.run:race"]
        assert op.status == ("ok" if index == 0 else "cancelled")
    assert team_op.status == "ok"
    assert team_op.output == results
    # Every operation ends once, after everything inside it.
    assert len(recorder.ended) == len(recorder.started)
    position = {op.id: index for index, op in enumerate(recorder.ended)}
    for op in recorder.ended:
        if op.parent is not None:
            assert position[op.id] < position[op.parent.id]


async def test_hook_gecko_operation_ended_marks_failures_with_their_error(recorder: _OperationRecorder) -> None:
    @tool
    async def broken() -> str:
        """Always fails."""
        raise RuntimeError("disk on fire")

    model = ScriptedModel([tool_calls_reply(("broken", "{}")), reply("sorry")])
    agent = AgentBuilder().with_model(model).with_tools([broken]).with_name("a").build()

    async def fail(ctx: object) -> None:
        raise ValueError("bad node")

    wf = Workflow("failing")
    wf.add_node("agent", agent)
    wf.add_node("fail", fail)
    wf.add_edge("agent", "fail")
    wf.set_entry_point("agent")
    with pytest.raises(WorkflowError):
        await wf.execute("x")
    (tool_op,) = recorder.of("tool.call")
    assert tool_op.status == "error"
    assert "disk on fire" in str(tool_op.error)
    nodes = {op.name: op for op in recorder.of("workflow.node")}
    assert nodes["agent"].status == "ok"
    assert nodes["fail"].status == "error"
    assert isinstance(nodes["fail"].error, ValueError)
    (run_op,) = recorder.of("workflow.run")
    assert run_op.status == "error"
    assert run_op.error is nodes["fail"].error


async def test_operations_are_not_built_when_no_plugin_observes(monkeypatch: pytest.MonkeyPatch) -> None:
    # A process whose installed plugins observe nothing (installed ones, e.g. otel, are left out).
    monkeypatch.setenv("GECKO_DISABLE_PLUGIN_AUTOLOAD", "1")
    quiet = PluginManager()
    quiet.load_plugins()
    monkeypatch.setattr(manager_module, "_manager", quiet)
    assert not plugin_manager().traces

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("an Operation was built with nobody observing")

    monkeypatch.setattr(manager_module, "Operation", forbidden)
    inside: dict[str, Operation | None] = {}
    wf = Workflow("quiet")
    wf.add_node("agent", _barrier_agent("agent", inside))
    wf.set_entry_point("agent")
    team = Team([wf, _barrier_agent("member", inside)], strategy=ExecutionStrategy.ALL)
    results = await team.run("x")
    assert all(result.is_success for result in results)
    assert set(inside.values()) == {None}


async def test_hook_gecko_operation_ended_reports_streams_finished_and_closed_early(
    recorder: _OperationRecorder,
) -> None:
    def agent() -> Agent:
        model = ScriptedModel([tool_calls_reply(("first", "{}")), reply("all the words of the answer")])

        @tool
        async def first() -> str:
            """A tool."""
            return "one"

        return AgentBuilder().with_model(model).with_tools([first]).with_name("streamer").build()

    events = [event async for event in agent().stream("go")]
    assert isinstance(events[-1], FinalOutput)
    (run,) = recorder.of("agent.run")
    assert run.status == "ok"
    assert run.output is events[-1].output
    models = recorder.of("model.call")
    assert [op.parent for op in models] == [run, run]
    assert all(op.status == "ok" and isinstance(op.output, ModelResponse) for op in models)

    recorder.started.clear()
    recorder.ended.clear()
    async with aclosing(agent().stream("go")) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                break  # stop in the middle of the streamed answer
    assert [(op.kind, op.status) for op in recorder.ended] == [
        ("model.call", "ok"), ("tool.call", "ok"), ("model.call", "cancelled"), ("agent.run", "cancelled"),
    ]  # fmt: skip
    assert len(recorder.ended) == len(recorder.started)
    assert current_operation() is None


async def test_hook_gecko_tool_admit_sees_the_conversation_and_may_hold_the_call() -> None:
    manager = PluginManager()
    seen: list[tuple[str, int, str]] = []

    class Gate:
        @hookimpl
        async def gecko_tool_admit(self, call: ToolCall, messages: list[Message], source: str) -> None:
            seen.append((call.name, len(messages), source))
            if call.name == "send_email":
                raise ApprovalRequired("send_email after reading a web page")

    manager.register(Gate())
    conversation = [Message.user("hi")]
    await manager.tool_admit(ToolCall(id="1", name="ls", arguments="{}"), conversation, source="agent")
    with pytest.raises(ApprovalRequired, match="after reading a web page"):
        await manager.tool_admit(ToolCall(id="2", name="send_email", arguments="{}"), conversation, source="agent")
    assert seen == [("ls", 1, "agent"), ("send_email", 1, "agent")]


# --- stream filters: a plugin rewrites streamed text, holding back what may continue ---------


class Masker:
    """A stream filter masking `word`, holding back its length less one so a word cut across deltas is seen whole."""

    def __init__(self, word: str) -> None:
        self.word = word
        self.held = ""

    def feed(self, text: str) -> str:
        held = (self.held + text).replace(self.word, "*" * len(self.word))
        cut = max(len(held) - (len(self.word) - 1), 0)
        self.held = held[cut:]
        return held[:cut]

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held


class MaskingPlugin:
    """Gives each streamed reply a `Masker` of `word`; counts the filters it made."""

    def __init__(self, word: str) -> None:
        self.word = word
        self.made: list[Masker] = []

    @hookimpl
    def gecko_stream_filter(self, source: str) -> Masker:
        self.made.append(Masker(self.word))
        return self.made[-1]


def in_threes(text: str) -> list[str]:
    return [text[start : start + 3] for start in range(0, len(text), 3)]


SECRET_REPLY = "the password is hunter2, ok"


@pytest.mark.parametrize("path", ["lean", "subscribed", "middleware"])
async def test_hook_gecko_stream_filter_rewrites_deltas_cut_inside_a_word_on_every_path(path: str) -> None:
    bus = EventBus(forward_to_plugins=False)
    if path == "subscribed":
        bus.subscribe(lambda event: None)
    if path == "middleware":
        bus.use_model_middleware(lambda context, call_next: call_next(context))
    plugin = MaskingPlugin("hunter2")
    manager = plugin_manager()
    manager.register(plugin, "test-stream-filter")
    try:
        model = ScriptedModel([SECRET_REPLY], deltas=in_threes)
        events = [event async for event in Agent(model, event_bus=bus).stream("password?")]
    finally:
        manager.unregister(plugin)

    deltas = [event.text for event in events if isinstance(event, TextDelta)]
    assert "".join(deltas) == "the password is *******, ok"
    assert not any("hunter2" in delta for delta in deltas)
    assert len(deltas) == (1 if path == "middleware" else len(in_threes(SECRET_REPLY)) - 1)
    assert len(plugin.made) == 1
    # The final reply is what `gecko_model_response` leaves: this plugin rewrites only the stream.
    assert isinstance(events[-1], FinalOutput)
    assert events[-1].output.content == SECRET_REPLY


async def test_hook_gecko_stream_filter_chains_implementations_sync_and_async_per_reply() -> None:
    class AsyncMasking(MaskingPlugin):
        @hookimpl
        async def gecko_stream_filter(self, source: str) -> Masker:
            await anyio.lowlevel.checkpoint()
            self.made.append(Masker(self.word))
            return self.made[-1]

    class Abstaining:
        @hookimpl
        def gecko_stream_filter(self, source: str) -> None:
            return None

    @tool
    async def lookup() -> str:
        """Look it up."""
        return "found"

    plugins = [MaskingPlugin("hunter2"), AsyncMasking("*, ok"), Abstaining()]
    manager = plugin_manager()
    # pluggy calls the last registered first: the hunter2 masker, then the second one.
    for index, plugin in reversed(list(enumerate(plugins))):
        manager.register(plugin, f"test-stream-filter-{index}")
    try:
        model = ScriptedModel([tool_calls_reply(("lookup", "{}")), SECRET_REPLY], deltas=in_threes)
        events = [event async for event in Agent(model, tools=[lookup]).stream("password?")]
    finally:
        for plugin in plugins:
            manager.unregister(plugin)

    text = "".join(event.text for event in events if isinstance(event, TextDelta))
    # The first filter's masks are the second's input, also what the first still held at the end.
    assert text == "the password is " + "*" * 11
    # One filter per implementation and streamed reply: the tool call's reply and the answer.
    assert [len(plugin.made) for plugin in plugins[:2]] == [2, 2]


async def test_hook_gecko_stream_filter_drops_what_it_holds_when_the_stream_fails() -> None:
    class Failing(ScriptedModel):
        async def _stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
            yield ModelChunk(text="the password is hunt")
            raise ModelServerError("the connection was lost")

    plugin = MaskingPlugin("hunter2")
    manager = plugin_manager()
    manager.register(plugin, "test-stream-filter-failing")
    deltas: list[str] = []

    async def consume() -> None:
        async for event in Agent(Failing(["unused"])).stream("password?"):
            if isinstance(event, TextDelta):
                deltas.append(event.text)

    try:
        with pytest.raises(ModelServerError):
            await consume()
    finally:
        manager.unregister(plugin)

    assert deltas == ["the password i"]
    assert plugin.made[0].held == "s hunt"
