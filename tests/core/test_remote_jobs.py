"""Team members and workflow nodes as executor jobs: located by import path, JSON only.

`ThreadExecutor` is a real executor that runs each job with `run_job` (its own event loop) in a
worker thread: the whole job path — encoding, import by path, the worker's run, the reply — runs
as it would on a cluster, without one.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from typing import Any

import anyio
import anyio.to_thread
import pytest

from gecko import Team, Workflow
from gecko.compose.nodes import Next, NodeContext, interrupt, step
from gecko.compose.remote import arun_job, import_path, run_job
from gecko.compose.team import ExecutionStrategy, MemberStatus
from gecko.errors import ConfigurationError, ExecutorError, UnstorableValueError
from gecko.plugins.executors import Executor
from gecko.plugins.storage.memory import MemoryStorage
from gecko.types import AgentOutput


class ThreadExecutor:
    """Runs every job in a worker thread with `run_job`, counting them; a cancelled job's thread is abandoned."""

    def __init__(self) -> None:
        self.jobs: list[str] = []

    async def submit(self, job: str) -> str:
        self.jobs.append(job)
        return await anyio.to_thread.run_sync(run_job, job, abandon_on_cancel=True)

    async def aclose(self) -> None:
        pass


class Unusual(Exception):
    pass


async def shout(text: str) -> str:
    return text.upper()


def count_words(text: str) -> dict[str, int]:
    return {"words": len(text.split())}


async def answer_agent(text: str) -> AgentOutput:
    return AgentOutput(content=f"agent read {text}")


def fail_plainly(text: str) -> str:
    raise ValueError(f"cannot read {text}")


def fail_unusually(text: str) -> str:
    raise Unusual("api_key=sk-12345678901234567890 was refused")


def return_a_set(text: str) -> set[str]:
    return set(text)


class Unreadable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this message cannot be read")


def fail_unreadably(text: str) -> str:
    raise Unreadable


def fail_with_a_surrogate(text: str) -> str:
    raise Unusual("cannot read \ud800 here")


def return_a_surrogate(text: str) -> str:
    return "half \udc00 a pair"


def return_a_huge_integer(text: str) -> int:
    return 10**5000


SLOW_RELEASED = threading.Event()


async def slow(text: str) -> str:
    """Finish only once the test releases it: a race can end before that only by cancelling it."""
    await anyio.to_thread.run_sync(SLOW_RELEASED.wait, 60)
    return "slow"


async def test_team_members_run_as_jobs_with_the_same_results() -> None:
    executor = ThreadExecutor()
    assert isinstance(executor, Executor)
    members: list[Any] = [shout, count_words, f"{__name__}:answer_agent"]
    remote = await Team(members, executor=executor).run("hello remote world")
    local = await Team([shout, count_words, answer_agent]).run("hello remote world")
    assert [result.result for result in remote] == [result.result for result in local]
    assert remote[1].result == {"words": 3}
    assert remote[2].result == AgentOutput(content="agent read hello remote world")
    assert len(executor.jobs) == 3


async def test_member_errors_come_back_typed_and_redacted() -> None:
    results = await Team([fail_plainly, fail_unusually, return_a_set], executor=ThreadExecutor()).run("x")
    assert [result.status for result in results] == [MemberStatus.ERROR] * 3
    assert isinstance(results[0].error, ValueError)
    assert str(results[0].error) == "cannot read x"
    assert isinstance(results[1].error, ExecutorError)
    assert "Unusual" in str(results[1].error)
    assert "sk-1234" not in str(results[1].error)
    assert isinstance(results[2].error, UnstorableValueError)


async def test_what_json_text_cannot_hold_is_a_typed_member_error() -> None:
    """Each once came back as a raw RuntimeError or ValueError, or as an ExecutorError blaming the reply's JSON."""
    members = [fail_unreadably, fail_with_a_surrogate, return_a_surrogate, return_a_huge_integer, shout, shout]
    inputs = ["x", "x", "x", "x", "a \ud800 b", 10**5000]
    executor = ThreadExecutor()
    results = await Team(members, executor=executor, input_mapper=lambda raw, index: inputs[index]).run("x")
    assert [result.status for result in results] == [MemberStatus.ERROR] * 6
    errors = [(type(result.error), str(result.error)) for result in results]
    assert errors[0] == (ExecutorError, f"{__name__}.Unreadable: <Unreadable whose message cannot be read>")
    assert errors[1] == (ExecutorError, f"{__name__}.Unusual: cannot read \ufffd here")
    reply = "the job's reply (its result, output, state writes or error) holds"
    assert errors[2] == (UnstorableValueError, f"{reply} a lone surrogate")
    assert errors[3][0] is UnstorableValueError
    assert errors[3][1].startswith(f"{reply} an unwritable number (Exceeds")
    assert errors[4] == (UnstorableValueError, "the job (its input or state) holds a lone surrogate")
    assert errors[5][0] is UnstorableValueError
    assert errors[5][1].startswith("the job (its input or state) holds an unwritable number")
    assert len(executor.jobs) == 4  # the last two were refused before they were sent


async def test_race_losers_are_cancelled_through_the_executor() -> None:
    team = Team([slow, shout], executor=ThreadExecutor(), strategy=ExecutionStrategy.RACE)
    SLOW_RELEASED.clear()
    try:
        with anyio.fail_after(60):  # bounds a hang only: slow never finishes on its own
            results = await team.run("fast")
    finally:
        SLOW_RELEASED.set()  # ends the abandoned thread
    assert (results[0].result, results[1].status) == ("FAST", MemberStatus.CANCELLED)


def test_members_must_be_importable() -> None:
    def local_member(text: str) -> str:
        return text

    with pytest.raises(ConfigurationError, match="cannot be located by import path"):
        Team([local_member], executor=ThreadExecutor())
    with pytest.raises(ConfigurationError, match="nothing found at import path"):
        Team(["gecko:no_such_member"], executor=ThreadExecutor())
    with pytest.raises(ConfigurationError, match="team member 0: job target 'os:system' is not a function"):
        Team(["os:system"], executor=ThreadExecutor())
    assert import_path(shout, "member") == f"{__name__}:shout"


@step(writes={"left"})
async def left(ctx: NodeContext) -> str:
    ctx.state["left"] = f"L({ctx.get_last_output()})"
    return "left done"


@step(writes={"right"})
def right(ctx: NodeContext) -> str:
    ctx.state["right"] = ["R", ctx.input]
    del ctx.state["scratch"]
    return "right done"


@step(jumps={"finish"})
async def decide(ctx: NodeContext) -> Next:
    approved = interrupt({"question": "go on?", "left": ctx.state["left"]})
    return Next("finish", input=f"approved={approved}", update_state={"decided": approved})


async def start(ctx: NodeContext) -> str:
    ctx.state["scratch"] = 1
    return "started"


async def finish(ctx: NodeContext) -> str:
    return f"{ctx.get_last_output()} {sorted(ctx.state)}"


def fan_out(storage: MemoryStorage, executor: Executor | None) -> Workflow:
    flow = Workflow("fan", storage=storage, executor=executor)
    for name, node in (("start", start), ("left", left), ("right", right), ("decide", decide), ("finish", finish)):
        flow.add_node(name, node)
    flow.add_edge("start", "left").add_edge("start", "right")
    flow.add_edge("left", "decide").add_edge("right", "decide")
    return flow.set_entry_point("start")


async def test_workflow_nodes_run_as_jobs_with_the_same_outcome() -> None:
    outcomes = []
    for executor in (None, ThreadExecutor()):
        flow = fan_out(MemoryStorage(), executor)
        paused = await flow.execute("in", session_id="s")
        assert paused.status == "paused"
        assert paused.interrupt == {"question": "go on?", "left": "L(started)"}
        done = await flow.resume("s", value=True)
        outcomes.append((done.output, done.state, paused.state))
        if executor is not None:
            # start, left, right, decide (interrupted), decide again, finish: each a job
            assert len(executor.jobs) == 6
    assert outcomes[0] == outcomes[1]
    output, state, _ = outcomes[1]
    assert output == "approved=True ['decided', 'left', 'right']"
    assert state == {"left": "L(started)", "right": ["R", "in"], "decided": True}


class Agentish:
    async def run(self, text: str) -> str:
        return f"ran {text}"


agentish = Agentish()
partial_system = functools.partial(os.system, "echo reached")


def member_job(target: str, value: Any = "x") -> str:
    return json.dumps({"v": 1, "kind": "member", "target": target, "input": value})


def node_job(target: str) -> str:
    fields = {"node": "n", "input": None, "last": None, "state": {}, "session_id": "s"}
    return json.dumps({"v": 1, "kind": "node", "target": target, **fields})


@pytest.mark.parametrize(
    "job",
    [
        member_job("os:system", "echo reached"),
        member_job("subprocess:getoutput", "echo reached"),
        member_job("builtins:eval", "1"),
        member_job(f"{__name__}:json.loads", "[]"),  # reached through an imported module
        member_job(f"{__name__}:Agentish"),  # a class is not a member
        member_job(f"{__name__}:partial_system"),  # an instance of a standard-library type
        node_job("builtins:print"),
        node_job(f"{__name__}:agentish"),  # a node is a function or a step
        member_job(f"{__name__}:shout").replace('"v": 1', '"v": 2'),
        member_job(f"{__name__}:shout").replace('"x"', "NaN"),
        member_job(f"{__name__}:shout").replace('"x"', "1e999"),
        member_job(f"{__name__}:shout").replace('"x"', '"\\udc00"'),
        # a repeated key: which target runs would depend on the reader
        member_job(f"{__name__}:shout").replace('"target"', '"target": "os:system", "target"'),
        '{"v": 1, "kind": "member", "target": null}',
        "[1]",
        "not json",
    ],
)
async def test_jobs_run_only_members_and_nodes_and_refuse_malformed_documents(job: str) -> None:
    reply = json.loads(await arun_job(job))
    assert reply["ok"] is False
    assert reply["error"]["v"]["type"] == "gecko.errors.ExecutorError"


async def test_module_level_functions_and_agents_still_run_as_member_jobs() -> None:
    targets = (
        (f"{__name__}:shout", "X"),
        (f"{__name__}:agentish", "ran x"),
        (f"{__name__}:callable_object", "called x"),
    )
    for target, expected in targets:
        assert json.loads(await arun_job(member_job(target))) == {"ok": True, "value": expected}


class ReplyingExecutor:
    """An executor whose worker answers every job with a fixed reply."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply

    async def submit(self, job: str) -> Any:
        return self.reply

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(
    "reply",
    [
        "not json",
        '{"ok": true, "output": NaN, "writes": {}, "deleted": [], "next": null}',
        '{"ok": true, "output": -1e400, "writes": {}, "deleted": [], "next": null}',
        '{"ok": true, "output": "\\ud800", "writes": {}, "deleted": [], "next": null}',
        '{"ok": true, "output": 1}',
        '{"ok": true, "output": 1, "output": 2, "writes": {}, "deleted": [], "next": null}',
        '{"ok": true, "output": 1, "writes": [], "deleted": [], "next": null}',
        '{"ok": true, "output": 1, "writes": {}, "deleted": "abc", "next": null}',
        '{"ok": true, "output": 1, "writes": {}, "deleted": [], "next": {"input": 1}}',
        None,
    ],
)
async def test_malformed_node_replies_raise_executor_error(reply: Any) -> None:
    flow = Workflow("replies", executor=ReplyingExecutor(reply))
    flow.add_node("a", start)
    flow.set_entry_point("a")
    with pytest.raises(ExecutorError):
        await flow.execute("x")


class CallableObject:
    async def __call__(self, text: str) -> str:
        return f"called {text}"


callable_object = CallableObject()
