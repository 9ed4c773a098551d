"""The opt-in pytest plugin gives users scripted agents, a storage and an event recorder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

USER_TESTS = """
import anyio

pytest_plugins = ["gecko.testing.pytest_plugin"]


def test_scripted_agent_answers(scripted_agent, gecko_events, gecko_storage):
    agent = scripted_agent(["hello"], event_bus=gecko_events.bus, storage=gecko_storage, session_id="s")
    output = anyio.run(agent.run, "hi")
    assert output.content == "hello"
    assert gecko_events.types[-1] == "agent.finished"
    assert anyio.run(gecko_storage.list_keys) == ["gecko:agent:s"]
"""


def test_user_tests_run_with_the_plugin_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_user.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout
