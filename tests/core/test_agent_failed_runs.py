"""A run that fails part-way (model error, turn limit) leaves its session's memory as it was; the next run works."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gecko.core.agent import Agent
from gecko.core.events import EventBus
from gecko.core.memory import TokenMemory
from gecko.core.toolbox import tool
from gecko.errors import MaxTurnsExceeded, ModelError, ModelServerError
from gecko.plugins.models import ModelRequest
from gecko.testing.models import FunctionModel
from gecko.types import ToolCall

ran: list[str] = []


@tool
def echo(text: str) -> str:
    """Echo the text."""
    ran.append(text)
    return text


def _failing_model(failure: str, requests: list[ModelRequest]) -> FunctionModel:
    """The first run calls `echo` then fails by `failure`; every later run answers "ok"."""

    def reply(request: ModelRequest) -> Any:
        requests.append(request)
        if request.messages[-1].text == "again":
            return "ok"
        if failure == "model error" and len(requests) > 1:
            raise ModelServerError("the provider fell over")
        return [ToolCall(id=f"c{len(requests)}", name="echo", arguments=json.dumps({"text": str(len(requests))}))]

    return FunctionModel(reply)


async def _run(agent: Agent, text: str, streamed: bool) -> str:
    if not streamed:
        return (await agent.run(text, session_id="s")).content
    events = [event async for event in agent.stream(text, session_id="s")]
    return str(events[-1].output.content)  # type: ignore[attr-defined]


@pytest.mark.parametrize("observed", [False, True], ids=["lean", "observed"])
@pytest.mark.parametrize("streamed", [False, True], ids=["run", "stream"])
@pytest.mark.parametrize(
    ("failure", "error"), [("model error", ModelError), ("turn limit", MaxTurnsExceeded)], ids=["model", "turns"]
)
async def test_a_failed_run_leaves_the_session_as_it_was_and_the_next_run_works(
    failure: str, error: type[Exception], streamed: bool, observed: bool
) -> None:
    requests: list[ModelRequest] = []
    seen: list[str] = []
    bus = EventBus()
    bus.subscribe(lambda event: seen.append(event.type))
    memory = TokenMemory(max_tokens=10_000)
    agent = Agent(
        model=_failing_model(failure, requests),
        tools=[echo],
        memory=memory,
        max_turns=3,
        **({"event_bus": bus} if observed else {}),
    )
    ran.clear()
    with pytest.raises(error):
        await _run(agent, "hi", streamed)
    assert ran  # the tool ran before the failure
    assert await _run(agent, "again", streamed) == "ok"
    assert [message.text for message in requests[-1].messages] == ["again"]
    assert ("tool.finished" in seen) is observed
