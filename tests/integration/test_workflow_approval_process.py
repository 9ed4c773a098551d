"""A workflow paused on an agent's tool approval in one process resumes in another (shared sqlite)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from gecko.compose.team import Team
from gecko.compose.workflow import Workflow
from gecko.core.agent import Agent
from gecko.core.toolbox import tool
from gecko.plugins.storage.factory import create_storage
from gecko.testing.models import ScriptedModel

# A process that pays through a tool needing approval: the preamble of the scripts below.
PAYING_PROCESS = """
import json, sys
import anyio
from gecko.compose.team import Team
from gecko.compose.workflow import Workflow
from gecko.core.agent import Agent
from gecko.core.toolbox import tool
from gecko.plugins.storage.factory import create_storage
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import ToolCall

@tool(requires_approval=True)
async def pay(amount: int) -> str:
    '''Pay an amount.'''
    raise SystemExit("pay must not run before approval")
"""

PAUSING_PROCESS = (
    PAYING_PROCESS
    + """

async def main() -> None:
    storage = await create_storage(sys.argv[1])
    model = ScriptedModel([tool_calls_reply(ToolCall(id="call-pay", name="pay", arguments='{"amount": 30}'))])
    agent = Agent(model, tools=[pay], storage=storage)
    wf = Workflow("checkout", storage=storage).add_node("cart", lambda ctx: "pay 30").add_node("pay", agent)
    wf.add_node("receipt", lambda ctx: "receipt").add_edge("cart", "pay").add_edge("pay", "receipt")
    result = await wf.set_entry_point("cart").execute(session_id="order-7")
    print(json.dumps({"status": result.status, "node": result.interrupted_node, "interrupt": result.interrupt}))
    await storage.close()

anyio.run(main)
"""
)


async def _paused_in_another_process(tmp_path: Path, script_text: str) -> tuple[str, dict[str, Any]]:
    """Run `script_text` in a new process on a sqlite database in `tmp_path`: the URL and what it printed."""
    url = f"sqlite:///{tmp_path / 'workflow.db'}"
    script = tmp_path / "pause.py"
    script.write_text(script_text)
    done = await anyio.run_process([sys.executable, str(script), url])
    return url, json.loads(done.stdout)


@pytest.mark.slow
async def test_an_approval_pause_resumes_in_another_process(tmp_path: Path) -> None:
    url, paused = await _paused_in_another_process(tmp_path, PAUSING_PROCESS)
    assert (paused["status"], paused["node"]) == ("paused", "pay")
    assert paused["interrupt"]["approval"]["pending"] == [
        {"call_id": "call-pay", "tool_name": "pay", "arguments": {"amount": 30}, "reason": None}
    ]

    paid: list[int] = []

    @tool(requires_approval=True)
    async def pay(amount: int) -> str:
        """Pay an amount."""
        paid.append(amount)
        return f"paid {amount}"

    async with await create_storage(url) as storage:
        agent = Agent(ScriptedModel(["Paid 30."]), tools=[pay], storage=storage)
        wf = Workflow("checkout", storage=storage).add_node("cart", lambda ctx: "never").add_node("pay", agent)
        wf.add_node("receipt", lambda ctx: f"receipt: {ctx.get_last_output().content}")
        wf.add_edge("cart", "pay").add_edge("pay", "receipt").set_entry_point("cart")
        result = await wf.resume("order-7", value={"call-pay": True})
    assert (result.status, result.output, paid) == ("completed", "receipt: Paid 30.", [30])
    assert [node for node, _ in result.history.entries()] == ["cart", "pay", "receipt"]


TEAM_PAUSING_PROCESS = (
    PAYING_PROCESS
    + """

async def main() -> None:
    storage = await create_storage(sys.argv[1])
    call = ToolCall(id="call-pay", name="pay", arguments='{"amount": 30}')
    payer = Agent(ScriptedModel([tool_calls_reply(call)]), tools=[pay], storage=storage)
    team = Team([payer, Agent(ScriptedModel(["Filed."]))])
    wf = Workflow("team-checkout", storage=storage).add_node("team", team).set_entry_point("team")
    result = await wf.execute("pay 30", session_id="order-8")
    print(json.dumps({"status": result.status, "node": result.interrupted_node,
                      "pending": result.interrupt["approval"]["pending"]}))
    await storage.close()

anyio.run(main)
"""
)


@pytest.mark.slow
async def test_a_team_approval_pause_resumes_in_another_process(tmp_path: Path) -> None:
    url, paused = await _paused_in_another_process(tmp_path, TEAM_PAUSING_PROCESS)
    assert (paused["status"], paused["node"]) == ("paused", "team")
    assert [(call["call_id"], call["member_index"]) for call in paused["pending"]] == [("call-pay", 0)]

    paid: list[int] = []

    @tool(requires_approval=True)
    async def pay(amount: int) -> str:
        """Pay an amount."""
        paid.append(amount)
        return f"paid {amount}"

    async with await create_storage(url) as storage:
        # The second member has no replies: it finished in the first process and must not run again.
        team = Team([Agent(ScriptedModel(["Paid 30."]), tools=[pay], storage=storage), Agent(ScriptedModel([]))])
        wf = Workflow("team-checkout", storage=storage).add_node("team", team).set_entry_point("team")
        result = await wf.resume("order-8", value={"call-pay": True})
    assert (result.status, paid) == ("completed", [30])
    assert [member.value.content for member in result.output] == ["Paid 30.", "Filed."]
