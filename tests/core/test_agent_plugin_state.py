"""The data a plugin keeps with a run (`RunState.plugin_state`): JSON only, saved with the run, carried by an
agent's session to its later runs, and to a paused run's resumption."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gecko.core.agent import Agent, PausedOutput
from gecko.core.state import RunState, current_run_usage
from gecko.core.toolbox import tool
from gecko.errors import UnstorableValueError
from gecko.plugins import hookimpl
from gecko.plugins.manager import plugin_manager
from gecko.plugins.models import ModelRequest
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import Message


class Counter:
    """A hook plugin counting, in its namespace of the run's state, the model requests it has seen."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.value: object = None

    @hookimpl
    def gecko_model_request(self, request: ModelRequest, source: str) -> None:
        run = current_run_usage()
        assert run is not None
        data = run.state.plugin_state("counter")
        count = data.get("requests", 0)
        self.seen.append(count)
        data["requests"] = count + 1
        log = data.setdefault("log", [])
        assert isinstance(log, list)
        log.append(count)  # changed in place
        if self.value is not None:
            data["value"] = self.value


@pytest.fixture
def counter() -> Iterator[Counter]:
    plugin = Counter()
    manager = plugin_manager()
    manager.register(plugin, "test-agent-plugin-state")
    try:
        yield plugin
    finally:
        manager.unregister(plugin)


async def test_a_session_carries_the_plugins_data_to_its_next_run(counter: Counter) -> None:
    storage = MemoryStorage()

    async def run(session: str | None) -> None:
        await Agent(ScriptedModel(["done"]), storage=storage).run("hi", session_id=session)

    await run("a")
    await run("a")
    await run("b")
    await run(None)

    assert counter.seen == [0, 1, 0, 0]


@tool(requires_approval=True)
async def erase(path: str) -> str:
    """Erase a file."""
    return f"erased {path}"


async def test_a_paused_run_resumes_with_the_plugins_data(counter: Counter) -> None:
    storage = MemoryStorage()
    model = ScriptedModel([tool_calls_reply(("erase", '{"path": "x"}')), "done"])
    agent = Agent(model, tools=[erase], storage=storage)

    paused = await agent.run("erase x", session_id="s")
    assert isinstance(paused, PausedOutput)
    await agent.resume({paused.pending_approvals[0].call_id: True}, session_id="s")

    assert counter.seen == [0, 1]


async def test_a_discarded_run_takes_the_plugins_data_back_to_before_it(counter: Counter) -> None:
    storage = MemoryStorage()
    await Agent(ScriptedModel(["done"]), storage=storage).run("hi", session_id="s")
    model = ScriptedModel([tool_calls_reply(("erase", '{"path": "x"}')), tool_calls_reply(("erase", '{"path": "y"}'))])
    pausing = Agent(model, tools=[erase], storage=storage)
    paused = await pausing.run("erase x", session_id="s")
    assert isinstance(paused, PausedOutput)
    # Resumed and paused again: still one run, discarded whole.
    assert isinstance(await pausing.resume({paused.pending_approvals[0].call_id: True}, session_id="s"), PausedOutput)

    await pausing.discard("s")
    await Agent(ScriptedModel(["done"]), storage=storage).run("hi", session_id="s")

    assert counter.seen == [0, 1, 2, 1]
    saved = await storage.get("gecko:agent:s")
    assert isinstance(saved, dict)
    assert saved["state"]["plugins"] == {"counter": {"requests": 2, "log": [0, 1]}}


async def test_data_that_is_not_json_is_refused_when_the_session_is_saved(counter: Counter) -> None:
    counter.value = {1, 2}

    with pytest.raises(UnstorableValueError, match="plugin data of namespaces counter is not JSON data"):
        await Agent(ScriptedModel(["done"]), storage=MemoryStorage()).run("hi", session_id="s")


def test_the_plugins_data_round_trips_through_json_and_a_state_without_it_reads_as_empty() -> None:
    state = RunState([Message.user("hi")])
    state.plugin_state("guard")["taint"] = "why"
    state.plugin_state("empty")

    saved = state.to_json()
    assert saved["plugins"] == {"guard": {"taint": "why"}}  # an empty namespace is not saved
    assert RunState.from_json(saved).plugins == {"guard": {"taint": "why"}}
    del saved["plugins"]
    assert RunState.from_json(saved).plugins == {}


@pytest.mark.parametrize("value", [float("nan"), (1, object()), b"bytes"])
def test_plugin_data_that_is_not_json_is_an_unstorable_value(value: object) -> None:
    state = RunState([Message.user("hi")])
    state.plugin_state("guard")["value"] = value

    with pytest.raises(UnstorableValueError):
        state.to_json()


@pytest.mark.parametrize("value", [{1: "a"}, {1: "a", "1": "b"}, {"x": {None: 1}}, (1, 2)])
def test_plugin_data_that_would_read_back_otherwise_is_an_unstorable_value(value: object) -> None:
    # JSON writes keys 1, True, None as "1", "true", "null" (two keys may become one) and a tuple as a list.
    state = RunState([Message.user("hi")])
    state.plugin_state("guard")["value"] = value

    with pytest.raises(UnstorableValueError, match="plugin data of namespaces guard is not JSON data"):
        state.to_json()


def _nested(levels: int) -> list[object]:
    value: list[object] = []
    for _ in range(levels - 1):
        value = [value]
    return value


async def test_plugin_data_nested_past_what_a_session_reads_back_is_refused_when_saved(counter: Counter) -> None:
    # 150 levels were saved, and the session's every later run failed: its reader takes 200 levels in all.
    storage = MemoryStorage()
    counter.value = _nested(99)  # with its namespace, 100 levels
    await Agent(ScriptedModel(["done"]), storage=storage).run("hi", session_id="s")
    counter.value = _nested(150)
    with pytest.raises(UnstorableValueError, match="nested deeper than 100 levels"):
        await Agent(ScriptedModel(["done"]), storage=storage).run("hi", session_id="s")
    counter.value = None
    await Agent(ScriptedModel(["done"]), storage=storage).run("hi", session_id="s")

    saved = await storage.get("gecko:agent:s")
    assert isinstance(saved, dict)
    assert saved["state"]["plugins"]["counter"]["value"] == _nested(99)
