"""Tools that need approval pause the run; resume runs approved calls and reports rejected ones."""

from __future__ import annotations

import pytest

from gecko.core.agent import Agent, PausedOutput
from gecko.core.toolbox import tool
from gecko.errors import ApprovalError
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import Role, ToolCall


class Ledger:
    def __init__(self) -> None:
        self.paid: list[int] = []


def pay_tool(ledger: Ledger) -> object:
    @tool(requires_approval=True)
    async def pay(amount: int) -> str:
        """Pay an amount."""
        ledger.paid.append(amount)
        return f"paid {amount}"

    return pay


def pay_model() -> ScriptedModel:
    return ScriptedModel(
        [tool_calls_reply(ToolCall(id="call-pay", name="pay", arguments='{"amount": 30}')), "Payment handled."]
    )


async def test_tool_needing_approval_pauses_before_running() -> None:
    ledger = Ledger()
    output = await Agent(pay_model(), tools=[pay_tool(ledger)]).run("pay 30")
    assert isinstance(output, PausedOutput)
    assert [(p.call_id, p.tool_name, p.arguments) for p in output.pending_approvals] == [
        ("call-pay", "pay", {"amount": 30})
    ]
    assert ledger.paid == []


async def test_approving_resumes_and_runs_the_tool() -> None:
    ledger = Ledger()
    agent = Agent(pay_model(), tools=[pay_tool(ledger)])
    paused = await agent.run("pay 30")
    assert isinstance(paused, PausedOutput)
    output = await agent.resume({"call-pay": True}, session_id=paused.session_id)
    assert (output.content, ledger.paid) == ("Payment handled.", [30])


async def test_rejecting_reports_the_rejection_to_the_model() -> None:
    ledger = Ledger()
    model = pay_model()
    agent = Agent(model, tools=[pay_tool(ledger)])
    paused = await agent.run("pay 30")
    assert isinstance(paused, PausedOutput)
    await agent.resume({"call-pay": False}, session_id=paused.session_id)
    observation = model.requests[-1].messages[-1]
    assert ledger.paid == []
    assert observation.role is Role.TOOL
    assert "rejected" in observation.text


async def test_resume_sums_usage_across_the_pause() -> None:
    agent = Agent(pay_model(), tools=[pay_tool(Ledger())])
    paused = await agent.run("pay 30")
    assert isinstance(paused, PausedOutput)
    output = await agent.resume({"call-pay": True}, session_id=paused.session_id)
    assert (output.usage.requests, output.usage.total_tokens) == (2, 30)


async def test_paused_session_resumes_from_another_agent_on_the_same_storage() -> None:
    storage = MemoryStorage()
    ledger = Ledger()
    first = Agent(pay_model(), tools=[pay_tool(ledger)], storage=storage)
    paused = await first.run("pay 30", session_id="checkout")
    assert isinstance(paused, PausedOutput)
    assert paused.session_id == "checkout"
    second = Agent(ScriptedModel(["Done by the second agent."]), tools=[pay_tool(ledger)], storage=storage)
    output = await second.resume({"call-pay": True}, session_id="checkout")
    assert (output.content, ledger.paid) == ("Done by the second agent.", [30])


async def test_run_on_a_session_waiting_for_approval_is_refused() -> None:
    agent = Agent(pay_model(), tools=[pay_tool(Ledger())], session_id="s")
    await agent.run("pay 30")
    with pytest.raises(ApprovalError, match="waits for approval"):
        await agent.run("something else")


async def test_resume_without_a_decision_for_every_call_is_refused() -> None:
    agent = Agent(pay_model(), tools=[pay_tool(Ledger())])
    paused = await agent.run("pay 30")
    assert isinstance(paused, PausedOutput)
    with pytest.raises(ApprovalError, match="call-pay"):
        await agent.resume({}, session_id=paused.session_id)


async def test_resume_naming_calls_that_are_not_pending_is_refused() -> None:
    agent = Agent(pay_model(), tools=[pay_tool(Ledger())])
    paused = await agent.run("pay 30")
    assert isinstance(paused, PausedOutput)
    with pytest.raises(ApprovalError, match="not pending"):
        await agent.resume({"call-pay": True, "other": True}, session_id=paused.session_id)


async def test_resume_of_a_session_without_pending_calls_is_refused() -> None:
    agent = Agent(ScriptedModel(["hi"]), session_id="plain")
    await agent.run("hello")
    with pytest.raises(ApprovalError, match="no run waiting"):
        await agent.resume({"x": True}, session_id="plain")


async def test_calls_without_approval_in_a_paused_turn_wait_too() -> None:
    ran: list[str] = []

    @tool
    async def note(text: str) -> str:
        """Write a note."""
        ran.append(text)
        return "noted"

    model = ScriptedModel(
        [
            tool_calls_reply(("note", '{"text": "a"}'), ToolCall(id="p", name="pay", arguments='{"amount": 1}')),
            "ok",
        ]
    )
    agent = Agent(model, tools=[note, pay_tool(Ledger())])
    paused = await agent.run("go")
    assert ran == []
    assert isinstance(paused, PausedOutput)
    await agent.resume({"p": True}, session_id=paused.session_id)
    assert ran == ["a"]


async def test_discard_takes_the_session_back_to_before_the_paused_run() -> None:
    ledger, storage = Ledger(), MemoryStorage()
    call = ToolCall(id="call-pay", name="pay", arguments='{"amount": 30}')
    model = ScriptedModel(["Hello.", tool_calls_reply(call), "Noted."])
    agent = Agent(model, tools=[pay_tool(ledger)], storage=storage, session_id="s")
    await agent.run("hi")
    paused = await agent.run("pay 30")
    assert isinstance(paused, PausedOutput)

    await agent.discard("s")

    assert (await agent.run("just a note")).content == "Noted."
    sent = [(message.role, message.text) for message in model.requests[-1].messages]
    assert sent == [(Role.USER, "hi"), (Role.ASSISTANT, "Hello."), (Role.USER, "just a note")]
    assert ledger.paid == []
    with pytest.raises(ApprovalError, match="no run waiting"):
        await agent.resume({"call-pay": True}, session_id="s")


async def test_discard_deletes_a_session_the_paused_run_began() -> None:
    storage = MemoryStorage()
    agent = Agent(pay_model(), tools=[pay_tool(Ledger())], storage=storage)
    paused = await agent.run("pay 30")
    assert isinstance(paused, PausedOutput)
    assert await storage.list_keys() == [f"gecko:agent:{paused.session_id}"]

    await agent.discard(paused.session_id)

    assert await storage.list_keys() == []


async def test_discard_of_a_session_without_pending_calls_is_refused() -> None:
    agent = Agent(ScriptedModel(["hi"]), session_id="plain")
    await agent.run("hello")
    with pytest.raises(ApprovalError, match="no run waiting"):
        await agent.discard("plain")
    with pytest.raises(ApprovalError, match="no run waiting"):
        await agent.discard("never-used")


async def test_a_held_call_nested_past_what_a_paused_session_reads_back_is_refused_to_the_model() -> None:
    # 198 levels paused the run, and the saved session could not be read again (no resume, no discard).
    @tool(requires_approval=True)
    async def keep(data: object) -> str:
        """Keep data."""
        return "kept"

    deep = '{"data": ' + "[" * 197 + "]" * 197 + "}"
    model = ScriptedModel([tool_calls_reply(("keep", deep)), "Nothing kept."])
    output = await Agent(model, tools=[keep], storage=MemoryStorage()).run("keep it", session_id="s")

    assert output.content == "Nothing kept."
    refusal = model.requests[1].messages[-1]
    assert refusal.role is Role.TOOL
    assert "nested deeper than 100 levels" in (refusal.text or "")
