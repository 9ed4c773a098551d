"""Agent and team outputs checkpointed by a process that dies come back exactly in another process.

The child runs `draft` (an agent node) and `review` (a team node) on sqlite, then dies (`os._exit`)
inside `report`; this process resumes the session: neither node runs again, and their stored
results are the same `AgentOutput` and `MemberResult` objects an uncrashed run holds.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from gecko.compose.team import MemberResult, MemberStatus
from gecko.errors import ModelError
from gecko.plugins.storage.factory import create_storage
from gecko.types import AgentOutput, Message, TokenUsage

PIPELINE = """
import os, sys
import anyio
from gecko.compose.team import Team
from gecko.compose.workflow import Workflow
from gecko.core.agent import Agent
from gecko.errors import ModelError
from gecko.plugins.storage.factory import create_storage
from gecko.testing.models import ScriptedModel


def build(storage, replies, report):
    async def refuses(text):
        raise ValueError("cannot review", 3)

    async def model_down(text):
        raise ModelError("model down")

    team = Team(
        [Agent(ScriptedModel(replies[1]), name="reviewer"), refuses, model_down],
        input_mapper=lambda output, index: output.content,
    )
    wf = Workflow("pipeline", storage=storage).add_node("draft", Agent(ScriptedModel(replies[0]), name="drafter"))
    wf.add_node("review", team).add_node("report", report)
    return wf.add_edge("draft", "review").add_edge("review", "report").set_entry_point("draft")


async def die(ctx):
    sys.stdout.flush()
    os._exit(3)


async def main(url):
    storage = await create_storage(url)
    await build(storage, (["a draft"], ["looks good"]), die).execute("write it", session_id="s")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
"""


@pytest.mark.slow
async def test_agent_and_team_outputs_resume_exactly_in_another_process(tmp_path: Path) -> None:
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    url = f"sqlite:///{tmp_path / 'workflow.db'}"
    crashed = await anyio.run_process([sys.executable, str(script), url], check=False)
    assert crashed.returncode == 3, crashed.stderr.decode()
    build = runpy.run_path(str(script))["build"]
    received: list[Any] = []

    async def report(ctx: Any) -> str:
        received.append(ctx.get_last_output())
        return "reported"

    async with await create_storage(url) as storage:
        # No replies left: an agent that ran again would fail the resumed run.
        result = await build(storage, ([], []), report).resume("s")
        reference = await build(storage, (["a draft"], ["looks good"]), report).execute("write it", session_id="ref")

    assert result.output == "reported"
    draft = result.history["draft"]
    assert type(draft) is AgentOutput
    assert draft == reference.history["draft"]
    assert [type(message) for message in draft.messages] == [Message, Message]
    assert type(draft.usage) is TokenUsage

    [reviewed, _] = received
    assert reviewed is result.history["review"]
    assert [type(member) for member in reviewed] == [MemberResult] * 3
    assert [member.status for member in reviewed] == [MemberStatus.OK, MemberStatus.ERROR, MemberStatus.ERROR]
    assert type(reviewed[0].result) is AgentOutput
    assert reviewed[0].result == reference.history["review"][0].result
    assert reviewed[0].usage == reference.history["review"][0].usage
    assert type(reviewed[0].usage) is TokenUsage
    assert (type(reviewed[1].error), reviewed[1].error.args) == (ValueError, ("cannot review", 3))
    assert (type(reviewed[2].error), reviewed[2].error.args) == (ModelError, ("model down",))
    assert all(type(member.latency) is float for member in reviewed)
