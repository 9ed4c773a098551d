"""A steps module and definitions written to a temporary folder, importable by the tests and by `gecko run`."""

from __future__ import annotations

from pathlib import Path

import pytest

STEPS = '''
"""Node functions of the review flow; each appends its name to runs.log in the working folder."""

from pathlib import Path

from gecko.compose.nodes import Next, step


def _ran(name):
    with Path("runs.log").open("a") as log:
        log.write(name + "\\n")


@step
def start(ctx):
    _ran("start")
    return ctx.input


@step(writes=("left",))
def left(ctx):
    _ran("left")
    ctx.state["left"] = len(ctx.get_last_output())
    return "L"


@step(writes=("right",))
def right(ctx):
    _ran("right")
    ctx.state["right"] = ctx.get_last_output().upper()
    return "R"


@step
def join(ctx):
    _ran("join")
    return f"{ctx.state['right']}:{ctx.state['left']}"


def is_long(ctx):
    return ctx.state["left"] > 3


def is_short(ctx):
    return ctx.state["left"] <= 3


@step
def too_short(ctx):
    _ran("too_short")
    return "short"


@step(jumps=("revise",))
def review(ctx):
    _ran("review")
    if not ctx.state.get("revised"):
        return Next(node="revise", input=ctx.get_last_output() + "!", update_state={"revised": True})
    return "unreachable"


@step
def revise(ctx):
    _ran("revise")
    return ctx.get_last_output() + " revised"


@step
def approve(ctx):
    _ran("approve")
    answer = ctx.interrupt({"question": "approve?", "draft": ctx.get_last_output()})
    return f"{ctx.get_last_output()} / {answer}"
'''

FLOW = """\
# A fan-out (left, right), a condition (review or too_short), a Next jump (review -> revise)
# and an interrupt (approve), checkpointed to SQLite.
kind: workflow
name: review
entry: start
storage: sqlite:///./review.db
checkpoint: always
nodes:
  start: {call: review_steps:start}
  left: {call: review_steps:left}
  right: {call: review_steps:right}
  join: {call: review_steps:join}
  review: {call: review_steps:review, jumps: [revise]}
  too_short: {call: review_steps:too_short}
  revise: {call: review_steps:revise}
  approve: {call: review_steps:approve}
edges:
  - {from: start, to: left}
  - {from: start, to: right}
  - {from: left, to: join}
  - {from: right, to: join}
  - {from: join, to: review, when: review_steps:is_long}
  - {from: join, to: too_short, when: review_steps:is_short}
  - {from: revise, to: approve}
"""


@pytest.fixture
def flow_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding `review_steps.py` and `flow.yaml`, as the working directory and on sys.path."""
    (tmp_path / "review_steps.py").write_text(STEPS)
    (tmp_path / "flow.yaml").write_text(FLOW)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path
