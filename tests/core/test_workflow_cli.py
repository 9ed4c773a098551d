"""`gecko workflow show module:attr`."""

from __future__ import annotations

from pathlib import Path

import pytest

from gecko.cli import main

MODULE = """
from gecko.compose.workflow import Workflow

def build():
    wf = Workflow("cli")
    wf.add_node("A", lambda ctx: 1).add_node("B", lambda ctx: 2).add_edge("A", "B")
    return wf.set_entry_point("A")

flow = build()
broken = Workflow("broken")
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "cli_flows.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "cli_flows"


def test_workflow_show_prints_mermaid_and_layers(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflow", "show", f"{module}:flow"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("flowchart TD\n")
    assert "    n0 --> n1" in out
    assert "%% layer 1: B" in out


def test_workflow_show_calls_a_factory(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflow", "show", f"{module}:build"]) == 0
    assert "flowchart TD" in capsys.readouterr().out


def test_workflow_show_reports_invalid_graph(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflow", "show", f"{module}:broken"]) == 1
    assert "no nodes" in capsys.readouterr().err


def test_workflow_show_reports_missing_attribute(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflow", "show", f"{module}:nope"]) == 2
    assert "cannot load" in capsys.readouterr().err
