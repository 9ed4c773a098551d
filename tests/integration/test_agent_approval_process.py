"""A run paused for approval in one process resumes in another through a shared sqlite storage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

from gecko.core.agent import Agent
from gecko.core.toolbox import tool
from gecko.testing.models import ScriptedModel

PAUSING_PROCESS = """
import json, sys
import anyio
from gecko.core.agent import Agent, PausedOutput
from gecko.core.toolbox import tool
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import ToolCall

@tool(requires_approval=True)
async def pay(amount: int) -> str:
    '''Pay an amount.'''
    raise SystemExit("pay must not run before approval")

async def main() -> None:
    model = ScriptedModel([tool_calls_reply(ToolCall(id="call-pay", name="pay", arguments='{"amount": 30}'))])
    async with Agent(model, tools=[pay], storage=sys.argv[1]) as agent:
        output = await agent.run("pay 30", session_id="checkout")
    assert isinstance(output, PausedOutput)
    print(json.dumps([p.model_dump() for p in output.pending_approvals]))

anyio.run(main)
"""


@pytest.mark.slow
async def test_approval_resumes_in_another_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    script = tmp_path / "pause.py"
    script.write_text(PAUSING_PROCESS)
    done = await anyio.run_process([sys.executable, str(script), url])
    pending = json.loads(done.stdout)
    assert pending == [{"call_id": "call-pay", "tool_name": "pay", "arguments": {"amount": 30}, "reason": None}]

    paid: list[int] = []

    @tool(requires_approval=True)
    async def pay(amount: int) -> str:
        """Pay an amount."""
        paid.append(amount)
        return f"paid {amount}"

    async with Agent(ScriptedModel(["Paid 30."]), tools=[pay], storage=url) as agent:
        output = await agent.resume({"call-pay": True}, session_id="checkout")
    assert (output.content, paid, output.usage.requests) == ("Paid 30.", [30], 2)
