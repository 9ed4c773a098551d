"""Workflows checkpointed to SQLite resume by session id, also in another process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gecko.compose.nodes import NodeContext
from gecko.compose.workflow import CheckpointStrategy, Workflow
from gecko.errors import WorkflowError
from gecko.plugins.storage import Storage
from gecko.plugins.storage.factory import create_storage


async def test_seed_example_resumes_by_session_id_after_a_failure(tmp_path: Path) -> None:
    runs: list[str] = []
    crash = {"B": True}

    async def step_one(ctx: NodeContext) -> str:
        runs.append("A")
        return "Data from Step 1"

    async def step_two(ctx: NodeContext) -> str:
        runs.append("B")
        if crash["B"]:
            raise RuntimeError("power cut")
        return f"Finish with {ctx.get_last_output()}"

    def build(storage: Storage) -> Workflow:
        wf = Workflow("MyFlow", storage=storage, checkpoint_strategy=CheckpointStrategy.ALWAYS)
        wf.add_node("A", step_one).add_node("B", step_two).add_edge("A", "B")
        return wf.set_entry_point("A")

    url = f"sqlite:///{tmp_path / 'workflow.db'}"
    async with await create_storage(url) as storage:
        with pytest.raises(WorkflowError, match="power cut"):
            await build(storage).execute("init_input", session_id="uniq_session_id")
    crash["B"] = False
    async with await create_storage(url) as storage:
        result = await build(storage).execute("init_input", session_id="uniq_session_id")
    assert result.output == "Finish with Data from Step 1"
    assert runs == ["A", "B", "B"]


HITL = r"""
import sys
import anyio
from gecko.compose.nodes import interrupt
from gecko.compose.workflow import Workflow
from gecko.plugins.storage.factory import create_storage


async def ask(ctx):
    return f"{ctx.get_last_output()} -> {interrupt('approve?')}"


async def main():
    async with await create_storage(sys.argv[1]) as storage:
        wf = Workflow("hitl", storage=storage).add_node("draft", lambda ctx: "draft").add_node("ask", ask)
        wf.add_edge("draft", "ask").set_entry_point("draft")
        if sys.argv[2] == "start":
            result = await wf.execute(session_id="h")
            print(result.status, result.interrupt)
        else:
            result = await wf.resume("h", sys.argv[3])
            print(result.status, result.output)


anyio.run(main)
"""


def test_interrupted_run_resumes_in_another_process(tmp_path: Path) -> None:
    script = tmp_path / "hitl.py"
    script.write_text(HITL)
    url = f"sqlite:///{tmp_path / 'hitl.db'}"

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, str(script), url, *args], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    assert run("start") == "paused approve?"
    assert run("resume", "yes") == "completed draft -> yes"
