"""Team members that pause for tool approvals: RACE waits for a finisher, ALL and RACE resume inside a workflow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from gecko.compose.nodes import NodeContext
from gecko.compose.team import ExecutionStrategy, MemberStatus, Team
from gecko.compose.workflow import Workflow
from gecko.core.agent import Agent, PausedOutput
from gecko.core.toolbox import tool
from gecko.errors import TeamMemberCancelled
from gecko.plugins import hookimpl, plugin_manager
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import Event, ToolCall

RACE = ExecutionStrategy.RACE


def payer(storage: MemoryStorage, paid: list[int], *replies: Any, call_id: str = "call-pay") -> Agent:
    """An agent whose first reply asks for the `pay` tool (which needs approval), then `replies`."""

    @tool(requires_approval=True)
    async def pay(amount: int) -> str:
        """Pay an amount."""
        paid.append(amount)
        return f"paid {amount}"

    call = ToolCall(id=call_id, name="pay", arguments='{"amount": 30}')
    return Agent(ScriptedModel([tool_calls_reply(call), *replies]), tools=[pay], storage=storage)


async def pending_sessions(storage: MemoryStorage) -> list[str]:
    """The agent sessions in `storage` that wait for approvals."""
    keys = await storage.list_keys("gecko:agent:")
    return [key for key in keys if (await storage.get(key))["pending"]]  # type: ignore[index]


def after_pause(storage: MemoryStorage, answer: str) -> Any:
    """A member that answers once an agent's paused run is saved in `storage` (and has returned)."""

    async def member(_: object) -> str:
        while not await storage.list_keys("gecko:agent:"):
            await anyio.lowlevel.checkpoint()
        for _ in range(10):
            await anyio.lowlevel.checkpoint()
        return answer

    return member


async def test_race_a_paused_member_is_not_a_winner_and_loses_to_one_that_finishes() -> None:
    storage, paid = MemoryStorage(), []

    results = await Team([payer(storage, paid), after_pause(storage, "done")], strategy=RACE).run("go")

    assert (results[0].member_index, results[0].value) == (1, "done")
    assert (results[1].member_index, results[1].status) == (0, MemberStatus.CANCELLED)
    assert isinstance(results[1].error, TeamMemberCancelled)
    assert "discarded" in str(results[1].error)
    # The loser's paused run was discarded: no approval waits anywhere, nothing was paid.
    assert (await storage.list_keys(), paid) == ([], [])


async def test_race_a_paused_loser_with_a_session_gets_its_session_back() -> None:
    storage, paid = MemoryStorage(), []
    agent = payer(storage, paid, "Nothing to pay.")
    agent.session_id = "till"
    await Agent(ScriptedModel(["Hello."]), storage=storage, session_id="till").run("hi")

    results = await Team([agent, after_pause(storage, "done")], strategy=RACE).run("pay 30")

    assert results[0].member_index == 1
    assert await pending_sessions(storage) == []
    # The session is usable again, as it was before the lost run.
    assert (await agent.run("anything to pay?")).content == "Nothing to pay."
    assert [message.text for message in agent.model.requests[-1].messages] == ["hi", "Hello.", "anything to pay?"]  # type: ignore[attr-defined]


async def test_race_without_a_finisher_pauses_and_keeps_the_paused_result() -> None:
    storage, paid = MemoryStorage(), []

    async def broken(_: object) -> str:
        # Fails only once the payer has paused, so a paused "winner" would cancel it instead.
        await after_pause(storage, "")(None)
        raise ValueError("no")

    results = await Team([broken, payer(storage, paid)], strategy=RACE).run("go")

    assert [result.member_index for result in results] == [0, 1]
    assert results[0].status is MemberStatus.ERROR
    assert isinstance(results[1].value, PausedOutput)
    assert await pending_sessions(storage) == [f"gecko:agent:{results[1].value.session_id}"]


async def test_race_timeout_with_a_paused_member_keeps_it_paused() -> None:
    storage, paid = MemoryStorage(), []

    async def stuck(_: object) -> str:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    results = await Team([payer(storage, paid), stuck], strategy=RACE).run("go", timeout=2.0)

    assert isinstance(results[0].value, PausedOutput)
    assert results[1].status is MemberStatus.TIMEOUT
    assert len(await pending_sessions(storage)) == 1


def _team_flow(team: Team, storage: MemoryStorage) -> Workflow:
    def receipt(ctx: NodeContext) -> list[Any]:
        return [[result.member_index, result.status.value] for result in ctx.get_last_output()]

    wf = Workflow("race-checkout", storage=storage, lease_ttl=None).add_node("team", team).add_node("receipt", receipt)
    return wf.add_edge("team", "receipt").set_entry_point("team")


async def test_a_race_node_whose_member_finishes_completes_without_pausing() -> None:
    storage, paid = MemoryStorage(), []
    wf = _team_flow(Team([payer(storage, paid), after_pause(storage, "done")], strategy=RACE), storage)

    result = await wf.execute("go", session_id="race-1")

    assert (result.status, result.output) == ("completed", [[1, "ok"], [0, "cancelled"]])
    assert await pending_sessions(storage) == []


async def test_a_race_node_resumes_its_paused_members_as_a_race() -> None:
    storage, paid = MemoryStorage(), []
    again = ToolCall(id="call-again", name="pay", arguments='{"amount": 1}')
    # Resumed, member 0 answers; member 1 pauses again, so it lost: its run is discarded.
    members = [
        payer(storage, paid, "Paid.", call_id="call-a"),
        payer(storage, paid, tool_calls_reply(again), call_id="call-b"),
    ]
    wf = _team_flow(Team(members, strategy=RACE), storage)

    paused = await wf.execute("go", session_id="race-2")
    assert paused.status == "paused"
    assert [call["member_index"] for call in paused.interrupt["approval"]["pending"]] == [0, 1]

    done = await wf.resume("race-2", value={"call-a": True, "call-b": True})

    assert (done.status, done.output) == ("completed", [[0, "ok"], [1, "cancelled"]])
    assert sorted(paid) == [30, 30]
    assert await pending_sessions(storage) == []


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    @hookimpl
    def gecko_event(self, event: Event) -> None:
        if event.type.startswith("team."):
            self.events.append(event)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    plugin_manager().register(recorder, "test-team-approval-events")
    yield recorder
    plugin_manager().unregister(recorder)


def member_events(events: list[Event]) -> list[tuple[str, int]]:
    """The member events between `team.started` and `team.finished`, checked to start before they end."""
    assert (events[0].type, events[-1].type) == ("team.started", "team.finished")
    seen = [(event.type, event.data["member_index"]) for event in events[1:-1]]
    for kind, index in seen:
        if kind != "team.member.started":
            assert seen.index(("team.member.started", index)) < seen.index((kind, index))
    return sorted(seen, key=lambda item: (item[1], item[0] != "team.member.started"))


async def test_members_resumed_by_a_workflow_publish_the_events_of_a_first_run(recorder: Recorder) -> None:
    storage, paid = MemoryStorage(), []
    clerk = Agent(ScriptedModel(["Filed."]))
    wf = _team_flow(Team([payer(storage, paid, "Paid 30."), clerk], name="desk"), storage)
    await wf.execute("go", session_id="events-1")
    assert member_events(recorder.events) == [
        ("team.member.started", 0),
        ("team.member.finished", 0),
        ("team.member.started", 1),
        ("team.member.finished", 1),
    ]
    recorder.events.clear()

    done = await wf.resume("events-1", value={"call-pay": True})

    assert done.output == [[0, "ok"], [1, "ok"]]
    # Only the paused member runs again, announced as in a first run; the team reports every member.
    assert member_events(recorder.events) == [("team.member.started", 0), ("team.member.finished", 0)]
    assert {event.source for event in recorder.events} == {"desk"}
    assert recorder.events[-1].data == {"statuses": {"0": "ok", "1": "ok"}, "winner": None}


async def test_a_race_reports_its_paused_loser_cancelled_and_no_winner_while_paused(recorder: Recorder) -> None:
    storage, paid = MemoryStorage(), []

    await Team([payer(storage, paid), after_pause(storage, "done")], name="r", strategy=RACE).run("go")

    ends = {event.data["member_index"]: event.type for event in recorder.events if "member_index" in event.data}
    assert ends == {0: "team.member.cancelled", 1: "team.member.finished"}
    assert recorder.events[-1].data == {"statuses": {"1": "ok", "0": "cancelled"}, "winner": 1}
    recorder.events.clear()

    async def broken(_: object) -> str:
        raise ValueError("no")

    await Team([payer(storage, paid), broken], name="r", strategy=RACE).run("go")

    assert recorder.events[-1].data == {"statuses": {"0": "ok", "1": "error"}, "winner": None}


async def test_race_a_paused_loser_that_cannot_discard_says_its_run_stays() -> None:
    storage, paid = MemoryStorage(), []
    agent = payer(storage, paid)

    async def wrapped(text: str) -> Any:  # returns the agent's PausedOutput, but has no `discard`
        return await agent.run(text)

    results = await Team([wrapped, after_pause(storage, "done")], strategy=RACE).run("go")

    assert (results[1].member_index, results[1].status) == (0, MemberStatus.CANCELLED)
    assert "stays" in str(results[1].error)
    assert len(await pending_sessions(storage)) == 1
