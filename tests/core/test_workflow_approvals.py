"""An agent node whose tool needs approval pauses its workflow; `resume` continues that agent run."""

from __future__ import annotations

import pytest

from gecko.compose.nodes import NodeContext
from gecko.compose.team import Team
from gecko.compose.workflow import Workflow
from gecko.core.agent import Agent
from gecko.core.toolbox import Tool, tool
from gecko.errors import ApprovalError
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import AgentOutput, ToolCall


def checkout(agent: Agent, storage: MemoryStorage, received: list[str]) -> Workflow:
    def receipt(ctx: NodeContext) -> str:
        output = ctx.get_last_output()
        assert isinstance(output, AgentOutput)
        received.append(output.content or "")
        return f"receipt: {output.content}"

    wf = Workflow("checkout", storage=storage).add_node("cart", lambda ctx: "pay 30").add_node("pay", agent)
    wf.add_node("receipt", receipt).add_edge("cart", "pay").add_edge("pay", "receipt")
    return wf.set_entry_point("cart")


async def test_a_tool_needing_approval_pauses_the_workflow_and_resume_continues_the_agent_run() -> None:
    paid: list[int] = []

    @tool(requires_approval=True)
    async def pay(amount: int) -> str:
        """Pay an amount."""
        paid.append(amount)
        return f"paid {amount}"

    storage, received = MemoryStorage(), []
    call = ToolCall(id="call-pay", name="pay", arguments='{"amount": 30}')
    agent = Agent(ScriptedModel([tool_calls_reply(call), "Paid 30."]), tools=[pay], storage=storage)
    wf = checkout(agent, storage, received)

    paused = await wf.execute(session_id="order-1")
    assert (paused.status, paused.interrupted_node, paid, received) == ("paused", "pay", [], [])
    approval = paused.interrupt["approval"]
    pending = [{"call_id": "call-pay", "tool_name": "pay", "arguments": {"amount": 30}, "reason": None}]
    assert approval["pending"] == pending

    done = await wf.resume("order-1", value={"call-pay": True})
    assert (done.status, done.output, paid, received) == ("completed", "receipt: Paid 30.", [30], ["Paid 30."])


async def test_decisions_the_agent_refuses_fail_the_resume_and_leave_the_workflow_paused() -> None:
    paid: list[int] = []

    @tool(requires_approval=True)
    async def pay(amount: int) -> str:
        """Pay an amount."""
        paid.append(amount)
        return f"paid {amount}"

    storage = MemoryStorage()
    call = ToolCall(id="call-pay", name="pay", arguments='{"amount": 30}')
    agent = Agent(ScriptedModel([tool_calls_reply(call), "Paid 30."]), tools=[pay], storage=storage)
    wf = checkout(agent, storage, [])
    await wf.execute(session_id="order-2")
    with pytest.raises(ApprovalError, match="call-pay"):
        await wf.resume("order-2", value={"another-call": True})
    assert paid == []
    done = await wf.resume("order-2", value={"call-pay": True})
    assert (done.output, paid) == ("receipt: Paid 30.", [30])


def _team_checkout(team: Team, storage: MemoryStorage) -> Workflow:
    def receipt(ctx: NodeContext) -> list[str | None]:
        results = ctx.get_last_output()
        return [result.value.content for result in results]

    wf = Workflow("team-checkout", storage=storage).add_node("cart", lambda ctx: "pay 30").add_node("team", team)
    wf.add_node("receipt", receipt).add_edge("cart", "team").add_edge("team", "receipt")
    return wf.set_entry_point("cart")


def _pay_tool(paid: list[int]) -> Tool:
    @tool(requires_approval=True)
    async def pay(amount: int) -> str:
        """Pay an amount."""
        paid.append(amount)
        return f"paid {amount}"

    return pay


async def test_a_team_member_waiting_for_approval_pauses_the_workflow_and_resume_continues_it() -> None:
    paid: list[int] = []
    storage = MemoryStorage()
    call = ToolCall(id="call-pay", name="pay", arguments='{"amount": 30}')
    payer = Agent(ScriptedModel([tool_calls_reply(call), "Paid 30."]), tools=[_pay_tool(paid)], storage=storage)
    # One reply only: a second run of this member would exhaust its script and fail the test.
    clerk = Agent(ScriptedModel(["Filed."]))
    wf = _team_checkout(Team([payer, clerk]), storage)

    paused = await wf.execute(session_id="team-order-1")
    assert (paused.status, paused.interrupted_node, paid) == ("paused", "team", [])
    pending = [
        {"call_id": "call-pay", "tool_name": "pay", "arguments": {"amount": 30}, "reason": None, "member_index": 0}
    ]
    assert paused.interrupt["approval"]["pending"] == pending

    done = await wf.resume("team-order-1", value={"call-pay": True})
    assert (done.status, done.output, paid) == ("completed", ["Paid 30.", "Filed."], [30])


async def test_team_members_waiting_on_the_same_call_id_take_their_decisions_per_member() -> None:
    paid: list[int] = []
    storage = MemoryStorage()
    call = ToolCall(id="call-1", name="pay", arguments='{"amount": 5}')
    members = [
        Agent(
            ScriptedModel([tool_calls_reply(call), f"Member {index} done."]), tools=[_pay_tool(paid)], storage=storage
        )
        for index in range(2)
    ]
    wf = _team_checkout(Team(members), storage)
    paused = await wf.execute(session_id="team-order-2")
    assert [approval["member_index"] for approval in paused.interrupt["approval"]["pending"]] == [0, 1]

    with pytest.raises(ApprovalError, match="per member"):
        await wf.resume("team-order-2", value={"call-1": True})
    with pytest.raises(ApprovalError, match="member 1"):
        await wf.resume("team-order-2", value={"0": {"call-1": True}})
    assert paid == []
    done = await wf.resume("team-order-2", value={"0": {"call-1": True}, "1": {"call-1": False}})
    assert (done.status, done.output, paid) == ("completed", ["Member 0 done.", "Member 1 done."], [5])
