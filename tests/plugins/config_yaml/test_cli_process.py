"""Acceptance: `gecko run` in real processes — run to an interrupt, resume in a new process; unsafe tags refused."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _gecko(folder: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gecko.cli", *arguments],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines()]


def test_a_yaml_workflow_pauses_then_resumes_in_a_new_process(flow_dir: Path) -> None:
    first = _gecko(flow_dir, "run", "flow.yaml", "--input", "gecko", "--session", "s1")
    assert first.returncode == 0, first.stderr
    events = _lines(first.stdout)
    result = events[-1]
    assert result["event"] == "result"
    assert result["status"] == "paused"
    assert result["node"] == "approve"
    assert result["interrupt"] == {"question": "approve?", "draft": "GECKO:5! revised"}
    started = [event["name"] for event in events if event["event"] == "started" and event["kind"] == "workflow.node"]
    assert started[0] == "start"
    assert set(started[1:3]) == {"left", "right"}  # the fan-out
    assert started[3:] == ["join", "review", "revise", "approve"]  # the condition chose review, which jumped
    assert "too_short" not in started

    second = _gecko(flow_dir, "run", "flow.yaml", "--session", "s1", "--resume", "--input", "yes")
    assert second.returncode == 0, second.stderr
    result = _lines(second.stdout)[-1]
    assert result == {"event": "result", "status": "completed", "session_id": "s1", "output": "GECKO:5! revised / yes"}
    # Completed nodes did not run again in the second process; the interrupted node did.
    runs = (flow_dir / "runs.log").read_text().split()
    assert sorted(runs) == sorted(["start", "left", "right", "join", "review", "revise", "approve", "approve"])


def test_a_terminal_gets_text_progress(flow_dir: Path) -> None:
    # A pseudo-terminal makes stdout a TTY for the child, as in an interactive shell.
    leader, follower = pty.openpty()
    process = subprocess.run(
        [sys.executable, "-m", "gecko.cli", "run", "flow.yaml", "--input", "gecko", "--session", "tty"],
        cwd=flow_dir,
        stdout=follower,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    text = b"".join(chunks).decode()
    assert process.returncode == 0, process.stderr
    assert "> workflow.node join" in text
    assert "< workflow.node join: done" in text
    assert "paused at node approve" in text
    assert "--session tty --resume --input VALUE" in text


def test_a_python_object_tag_is_refused_with_its_line(flow_dir: Path) -> None:
    (flow_dir / "evil.yaml").write_text(
        "kind: workflow\nname: evil\nentry: a\nnodes:\n  a: !!python/object/apply:os.system ['touch pwned']\n"
    )
    process = _gecko(flow_dir, "run", "evil.yaml", "--input", "x")
    assert process.returncode == 2
    assert (
        "evil.yaml:5: nodes.a: tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed" in process.stderr
    )
    assert not (flow_dir / "pwned").exists()


def test_workflow_show_draws_a_yaml_definition_without_opening_its_storage(flow_dir: Path) -> None:
    process = _gecko(flow_dir, "workflow", "show", "flow.yaml")
    assert process.returncode == 0, process.stderr
    assert process.stdout.startswith("flowchart TD\n")
    assert "-.->|jump|" in process.stdout
    assert "%% layer 1: left, right" in process.stdout
    assert not (flow_dir / "review.db").exists()


NOISY_STEPS = """
import os
import subprocess
import sys

from gecko.compose.nodes import step


@step
def noisy(ctx):
    print("a print from the node")
    os.write(1, b"raw bytes on file descriptor 1\\n")
    subprocess.run([sys.executable, "-c", "print('a child process printing')"], check=True)
    return "done"
"""

NOISY_FLOW = """\
kind: workflow
name: noisy
entry: noisy
nodes:
  noisy: {call: noisy_steps:noisy}
"""


def test_piped_progress_stays_json_lines_while_user_code_prints(tmp_path: Path) -> None:
    (tmp_path / "noisy_steps.py").write_text(NOISY_STEPS)
    (tmp_path / "noisy.yaml").write_text(NOISY_FLOW)
    done = _gecko(tmp_path, "run", "noisy.yaml")
    assert done.returncode == 0, done.stderr
    # Every stdout line is a record; what user code wrote to stdout went to stderr instead.
    result = _lines(done.stdout)[-1]
    assert (result["event"], result["status"], result["output"]) == ("result", "completed", "done")
    for text in ("a print from the node", "raw bytes on file descriptor 1", "a child process printing"):
        assert text in done.stderr
