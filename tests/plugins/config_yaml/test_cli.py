"""`gecko run` in process: agents and teams, JSON lines when piped, refusals with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gecko.cli import main

AGENT = """\
kind: agent
name: greeter
model: {spec: "scripted:demo", settings: {replies: ["hello from yaml"]}}
"""

TEAM = """\
kind: team
name: board
members:
  - {kind: agent, name: a, model: {spec: "scripted:a", settings: {replies: ["yes"]}}}
  - review_steps:start
"""


def _records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_run_an_agent(flow_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (flow_dir / "agent.yaml").write_text(AGENT)
    assert main(["run", "agent.yaml", "--input", "hi"]) == 0
    records = _records(capsys.readouterr().out)
    assert records[0] == {"event": "started", "kind": "agent.run", "name": "greeter", "id": records[0]["id"]}
    assert records[-1] == {"event": "result", "status": "completed", "output": "hello from yaml", "data": None}


def test_run_a_team_reports_each_member(flow_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (flow_dir / "team.yaml").write_text(TEAM)
    assert main(["run", "team.yaml", "--input-json", '{"n": 1}']) == 0
    records = _records(capsys.readouterr().out)
    members = sorted(record["name"] for record in records if record.get("kind") == "team.member")
    assert members == ["board[0]", "board[0]", "board[1]", "board[1]"]  # started and ended
    result = records[-1]["output"]
    assert isinstance(result, list)
    assert result[0] == {"member_index": 0, "ok": True, "result": {"content": "yes", "data": None}, "error": None}
    assert result[1]["ok"] is False  # start(ctx) given a dict has no .input
    assert "AttributeError" in result[1]["error"]


def test_resume_needs_a_session(flow_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "flow.yaml", "--resume"]) == 2
    assert "--resume needs --session" in capsys.readouterr().err


def test_resume_of_an_agent_is_refused(flow_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (flow_dir / "agent.yaml").write_text(AGENT)
    assert main(["run", "agent.yaml", "--session", "s", "--resume"]) == 2
    assert "--resume continues workflows only" in capsys.readouterr().err


def test_a_failing_run_exits_1_with_the_cause(flow_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a list has a len() for node left but no .upper() for node right: exactly one branch fails
    assert main(["run", "flow.yaml", "--input-json", '["ab"]']) == 1
    err = capsys.readouterr().err
    assert err.startswith("gecko run: WorkflowError: node 'right' of workflow 'review' failed: AttributeError")


@pytest.mark.parametrize("text", ["{nope", '{"n": NaN}', "[Infinity]", "[" * 100_000 + "]" * 100_000])
def test_bad_json_input_is_refused(flow_dir: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    assert main(["run", "flow.yaml", "--input-json", text]) == 2
    assert "--input-json is not JSON" in capsys.readouterr().err


def test_show_refuses_an_agent(flow_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (flow_dir / "agent.yaml").write_text(AGENT)
    assert main(["workflow", "show", "agent.yaml"]) == 2
    assert "expected a workflow, got Agent" in capsys.readouterr().err
