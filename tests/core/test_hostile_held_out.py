"""Held-out hostile inputs: tool results, workflow jumps, interrupts resumed twice, a race nobody wins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest

from gecko import Team, Workflow
from gecko.compose.nodes import Next, NodeContext
from gecko.compose.team import ExecutionStrategy, MemberStatus
from gecko.core.toolbox import ToolBox, tool
from gecko.errors import SessionOwnedElsewhere, WorkflowError
from gecko.plugins.storage.memory import MemoryStorage
from gecko.types import ToolCall


def _self_containing() -> dict[str, Any]:
    found: dict[str, Any] = {}
    found["self"] = found
    return found


# (what the tool returns, text the observation holds); objects and errors whose str raises are
# in test_tool_results_fuzz.
HOSTILE_RESULTS: dict[str, tuple[Callable[[], Any], str]] = {
    "bytes that are not UTF-8": (lambda: b"\xff\xfe\x00", "\\xff\\xfe\\x00"),
    "twenty megabytes": (lambda: "x" * 20_000_000, "xxxx"),
    "a dict that contains itself": (_self_containing, "{...}"),
    "NaN": (lambda: float("nan"), "NaN"),
}


@pytest.mark.parametrize(("behaviour", "text"), HOSTILE_RESULTS.values(), ids=HOSTILE_RESULTS.keys())
async def test_a_hostile_tool_result_becomes_a_bounded_text_observation(
    behaviour: Callable[[], Any], text: str
) -> None:
    hostile = tool(behaviour, name="hostile", description="Return something hostile.")
    result = await ToolBox([hostile]).execute(ToolCall(id="c", name="hostile", arguments="{}"))
    assert isinstance(result.content, str)
    assert len(result.content) <= 60_000
    assert not result.is_error
    assert text in result.content


# --- Next ------------------------------------------------------------------------------------


def _two_nodes(jump: Callable[[int], Any], **options: Any) -> tuple[Workflow, list[str]]:
    runs: list[str] = []

    def first(ctx: NodeContext) -> str:
        runs.append("a")
        return "a"

    def second(ctx: NodeContext) -> Any:
        runs.append("b")
        return jump(runs.count("b"))

    wf = Workflow("jumps", **options).add_node("a", first).add_node("b", second).add_edge("a", "b")
    return wf.set_entry_point("a"), runs


async def test_a_jump_back_to_a_finished_node_is_a_cycle_error_unless_cycles_are_allowed() -> None:
    def back_once(round: int) -> Any:
        return Next("a") if round == 1 else "b done"

    refused, runs = _two_nodes(back_once)
    with pytest.raises(WorkflowError, match="jumped back to 'a', which already ran"):
        await refused.execute("x")
    assert runs == ["a", "b"]
    allowed, runs = _two_nodes(back_once, allow_cycles=True, max_steps=10)
    assert (await allowed.execute("x")).output == "b done"
    assert runs == ["a", "b", "a", "b"]


BAD_JUMPS: dict[str, tuple[Callable[[], Any], str]] = {
    "an unknown name": (lambda: Next("nowhere"), "jumped to unknown node 'nowhere'"),
    "an empty name": (lambda: Next(""), "jumped to unknown node ''"),
    "a name that is not a string": (lambda: Next(["a"]), r"Next\(node=...\) takes a node's name, not a list"),  # type: ignore[arg-type]
    "no name": (lambda: Next(None), r"takes a node's name, not a NoneType"),  # type: ignore[arg-type]
    "state updates that are not a mapping": (
        lambda: Next("b", update_state=5),  # type: ignore[arg-type]
        r"Next\(update_state=...\) takes a mapping of state keys, not a int",
    ),
}


@pytest.mark.parametrize(("jump", "match"), BAD_JUMPS.values(), ids=BAD_JUMPS.keys())
async def test_a_bad_jump_is_a_workflow_error_that_says_what_is_wrong(jump: Callable[[], Any], match: str) -> None:
    wf, runs = _two_nodes(lambda round: jump())
    with pytest.raises(WorkflowError, match=match):
        await wf.execute("x")
    assert runs == ["a", "b"]


# --- interrupts ------------------------------------------------------------------------------


def _approval(storage: MemoryStorage, seen: list[Any]) -> Workflow:
    def ask(ctx: NodeContext) -> str:
        answer = ctx.interrupt("approve?")
        seen.append(answer)
        return f"got {answer}"

    return Workflow("approve", storage=storage).add_node("ask", ask).set_entry_point("ask")


async def test_an_interrupt_resumed_twice_answers_the_second_resume_with_the_first_result() -> None:
    storage, seen = MemoryStorage(), []
    await _approval(storage, seen).execute("x", session_id="s")
    assert (await _approval(storage, seen).resume("s", "yes")).output == "got yes"
    again = await _approval(storage, seen).resume("s", "no")
    assert (again.output, seen) == ("got yes", ["yes"])


async def test_two_concurrent_resumes_of_one_interrupt_let_exactly_one_answer_through() -> None:
    storage, seen = MemoryStorage(), []
    await _approval(storage, seen).execute("x", session_id="s")
    outcomes: dict[str, Any] = {}

    async def resume(answer: str) -> None:
        try:
            outcomes[answer] = (await _approval(storage, seen).resume("s", answer)).output
        except SessionOwnedElsewhere:
            outcomes[answer] = "owned elsewhere"

    async with anyio.create_task_group() as group:
        group.start_soon(resume, "A")
        group.start_soon(resume, "B")
    assert len(seen) == 1
    assert sorted(outcomes.values()) == sorted([f"got {seen[0]}", "owned elsewhere"])


# --- a race nobody wins ----------------------------------------------------------------------


async def test_a_race_where_every_member_fails_reports_each_failure_and_no_winner() -> None:
    async def lookup(_: object) -> str:
        raise KeyError("missing")

    async def parse(_: object) -> str:
        raise ValueError("bad")

    def blocking(_: object) -> str:
        raise RuntimeError("down")

    results = await Team([lookup, parse, blocking], strategy=ExecutionStrategy.RACE).run("x")
    assert [(r.status, type(r.error), r.is_success) for r in results] == [
        (MemberStatus.ERROR, KeyError, False),
        (MemberStatus.ERROR, ValueError, False),
        (MemberStatus.ERROR, RuntimeError, False),
    ]
