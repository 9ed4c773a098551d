"""An agent node whose tool needs approval pauses its workflow; `resume` continues that agent run."""

from __future__ import annotations

import pytest

from gecko.compose.nodes import NodeContext
from gecko.compose.workflow import Workflow
from gecko.core.agent import Agent
from gecko.core.toolbox import tool
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
    assert approval["pending"] == [{"call_id": "call-pay", "tool_name": "pay", "arguments": {"amount": 30}, "reason": None}]

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
