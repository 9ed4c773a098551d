"""Trace context across processes, and what is imported when the plugin is off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent

pytestmark = pytest.mark.slow


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )
    assert result.returncode == 0, result.stderr
    return result


def test_workflow_resumed_in_another_process_continues_the_same_trace(tmp_path: Path) -> None:
    state, first, second = tmp_path / "state.json", tmp_path / "first.json", tmp_path / "second.json"
    _run(str(HERE / "workflow_process.py"), "start", str(state), str(first))
    snapshot = next(found["value"] for found in json.loads(state.read_text()).values() if "traceparent" in str(found))
    assert "trace" in snapshot  # the carrier travels in the checkpoint, nowhere else
    _run(str(HERE / "workflow_process.py"), "resume", str(state), str(second))

    before, after = json.loads(first.read_text()), json.loads(second.read_text())
    assert sorted(span["name"] for span in before) == ["node draft", "node review", "workflow approval"]
    assert sorted(span["name"] for span in after) == ["node publish", "node review", "workflow approval"]
    assert {span["trace_id"] for span in before + after} == {before[0]["trace_id"]}
    (first_run,) = [span for span in before if span["name"] == "workflow approval"]
    (resumed_run,) = [span for span in after if span["name"] == "workflow approval"]
    assert first_run["parent_id"] is None
    assert resumed_run["parent_id"] == first_run["span_id"]
    assert resumed_run["attributes"]["gecko.workflow.resumed"] is True
    assert first_run["attributes"]["gecko.workflow.interrupted_node"] == "review"
    for span in after:
        if span["name"].startswith("node "):
            assert span["parent_id"] == resumed_run["span_id"]


W4 = """
import sys, anyio, gecko
from gecko import AgentBuilder
from gecko.compose.team import Team
from gecko.compose.workflow import Workflow
from gecko.core.toolbox import tool
from gecko.testing.models import ScriptedModel, reply, tool_calls_reply

@tool
async def add(a: int, b: int) -> int:
    '''Add.'''
    return a + b

async def main() -> None:
    model = ScriptedModel([tool_calls_reply(("add", '{"a": 2, "b": 3}')), reply("5")], cycle=True)
    agent = AgentBuilder().with_model(model).with_tools([add]).build()
    for _ in range(3):
        assert (await agent.run("2 + 3?")).content == "5"
    wf = Workflow("w")
    wf.add_node("a", agent)
    wf.set_entry_point("a")
    await wf.execute("x")
    await Team([agent, agent]).run("x")

anyio.run(main)
print(sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry"))
"""


def test_without_the_plugin_no_opentelemetry_module_is_imported() -> None:
    off = _run("-c", W4, env={"GECKO_DISABLED_PLUGINS": "otel"})
    assert json.loads(off.stdout.strip().replace("'", '"')) == []
    # The same run with the plugin loaded does import it: the check above can fail.
    on = _run("-c", W4)
    assert "opentelemetry.trace" in json.loads(on.stdout.strip().replace("'", '"'))
