"""`gecko_tool_admit`: a hook holds a call for approval (with a reason) or refuses it before the turn runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gecko.core.agent import Agent, PausedOutput
from gecko.core.toolbox import tool
from gecko.errors import ApprovalRequired, GuardrailViolation
from gecko.plugins import hookimpl, plugin_manager
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import Message, Role, ToolCall


class Gate:
    def __init__(self) -> None:
        self.decision: type[GuardrailViolation] | None = None
        self.seen: list[tuple[str, int]] = []

    @hookimpl
    def gecko_tool_admit(self, call: ToolCall, messages: list[Message], source: str) -> None:
        self.seen.append((call.id, len(messages)))
        if self.decision is not None:
            raise self.decision(f"{call.name} needs a human: {source}")


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    plugin_manager().register(gate, "test-tool-admit")
    try:
        yield gate
    finally:
        plugin_manager().unregister(gate)


class Bank:
    def __init__(self) -> None:
        self.paid: list[int] = []

    def agent(self) -> Agent:
        @tool
        async def pay(amount: int) -> str:
            """Pay an amount."""
            self.paid.append(amount)
            return f"paid {amount}"

        model = ScriptedModel([tool_calls_reply(ToolCall(id="p", name="pay", arguments='{"amount": 5}')), "bye"])
        return Agent(model, tools=[pay], name="teller")


async def test_admitted_calls_run_and_the_hook_sees_the_conversation(gate: Gate) -> None:
    bank = Bank()
    output = await bank.agent().run("pay 5")
    assert (output.content, bank.paid) == ("bye", [5])
    assert gate.seen == [("p", 2)]  # the user's message and the reply asking for the call


async def test_approval_required_pauses_with_the_reason_and_resumes(gate: Gate) -> None:
    gate.decision = ApprovalRequired
    bank = Bank()
    agent = bank.agent()
    paused = await agent.run("pay 5")
    assert isinstance(paused, PausedOutput)
    assert [(p.call_id, p.reason) for p in paused.pending_approvals] == [("p", "pay needs a human: teller")]
    assert bank.paid == []
    output = await agent.resume({"p": True}, session_id=paused.session_id)
    assert (output.content, bank.paid) == ("bye", [5])


@pytest.mark.parametrize("approved", [True, False])
async def test_a_held_call_waits_for_its_decision_on_resume_though_the_hook_no_longer_holds_it(
    gate: Gate, approved: bool
) -> None:
    gate.decision = ApprovalRequired
    bank = Bank()
    agent = bank.agent()
    paused = await agent.run("pay 5")
    assert isinstance(paused, PausedOutput)
    gate.decision = None  # what the hook knew went with the process that paused
    output = await agent.resume({"p": approved}, session_id=paused.session_id)
    assert bank.paid == ([5] if approved else [])
    assert output.messages[-2].text == (
        "paid 5" if approved else "Error: the user rejected this call of pay; it did not run"
    )
    assert gate.seen == [("p", 2), ("p", 2)]


async def test_a_violation_refuses_the_call_and_tells_the_model(gate: Gate) -> None:
    gate.decision = GuardrailViolation
    bank = Bank()
    output = await bank.agent().run("pay 5")
    observation = output.messages[-2]
    assert bank.paid == []
    assert (observation.role, observation.tool_call_id) == (Role.TOOL, "p")
    assert observation.text == "Error: the call was refused by a guardrail: pay needs a human: teller"
