"""`Next` jumps to any node: jump-only nodes, declared jumps checked at build time, pictures."""

from __future__ import annotations

from typing import Any

import pytest

from gecko.compose.nodes import Next, NodeContext, NodeStatus, step
from gecko.compose.workflow import Workflow
from gecko.errors import WorkflowDefinitionError, WorkflowError


async def test_seed_jump_to_a_node_no_edge_reaches_runs_it_with_the_previous_output() -> None:
    @step("Router")
    async def router(ctx: NodeContext) -> Next:
        return Next(node="Special", input=None)

    @step("Special")
    async def special(ctx: NodeContext) -> str:
        return f"special got {ctx.get_last_output()}"

    wf = Workflow("seed").add_node("A", lambda ctx: "from A").add_node("Router", router)
    wf.add_node("Special", special).add_node("Normal", lambda ctx: "normal")
    wf.add_edge("A", "Router").add_edge("Router", "Normal").set_entry_point("A")
    result = await wf.execute("in")
    assert result.output == "special got from A"
    assert result.node_status["Normal"] is NodeStatus.SKIPPED
    assert [node for node, _ in result.history.entries()] == ["A", "Router", "Special"]


def jump_island(jump: bool) -> Workflow:
    """A -> B -> D, and the jump-only island J -> D: D must not wait for J when nobody jumps."""
    wf = Workflow("island")
    wf.add_node("A", lambda ctx: "a").add_node("B", lambda ctx: Next("J") if jump else "b")
    wf.add_node("J", lambda ctx: "j").add_node("D", lambda ctx: f"D<{ctx.get_last_output()}>")
    wf.add_edge("A", "B").add_edge("B", "D").add_edge("J", "D")
    return wf.set_entry_point("A")


async def test_a_jump_target_that_nobody_jumps_to_holds_up_no_node() -> None:
    result = await jump_island(jump=False).execute()
    assert result.output == "D<b>"
    assert "J" not in result.node_status


async def test_a_jump_into_an_island_runs_its_successors() -> None:
    result = await jump_island(jump=True).execute()
    assert result.output == "D<j>"
    assert [node for node, _ in result.history.entries()] == ["A", "B", "J", "D"]


def test_a_mistyped_declared_jump_fails_at_build_with_a_hint() -> None:
    @step(jumps=("Reviwe",))
    def draft(ctx: NodeContext) -> Next:
        return Next("Review")

    wf = Workflow("typo").add_node("Draft", draft).add_node("Review", lambda ctx: "ok").set_entry_point("Draft")
    with pytest.raises(WorkflowDefinitionError, match="unknown node 'Reviwe'; did you mean 'Review'"):
        wf.compile()


async def test_a_node_declaring_its_jumps_may_not_jump_elsewhere() -> None:
    wf = Workflow("strict").add_node("A", lambda ctx: Next("C"), jumps=("B",))
    wf.add_node("B", lambda ctx: "b").add_node("C", lambda ctx: "c").set_entry_point("A")
    with pytest.raises(WorkflowError, match="not among the jumps it declares"):
        await wf.execute()


async def test_a_mistyped_jump_at_run_time_names_the_closest_node() -> None:
    wf = Workflow("hint").add_node("A", lambda ctx: Next("Reveiw")).add_node("Review", lambda ctx: "ok")
    with pytest.raises(WorkflowError, match="did you mean 'Review'"):
        await wf.set_entry_point("A").execute()


def test_mermaid_draws_declared_jumps_dashed() -> None:
    wf = Workflow("pic").add_node("A", lambda ctx: Next("C"), jumps=("C",))
    wf.add_node("B", lambda ctx: "b").add_node("C", lambda ctx: "c").add_edge("A", "B").set_entry_point("A")
    assert wf.to_mermaid().splitlines() == [
        "flowchart TD",
        '    n0(["A"])',
        '    n1["B"]',
        '    n2["C"]',
        "    n0 --> n1",
        "    n0 -.->|jump| n2",
    ]


async def test_a_loop_round_does_not_wait_for_a_finished_predecessor_outside_the_loop() -> None:
    # A -> B -> C, A -> C, and C jumps back to B twice: C's other predecessor A finished long ago.
    rounds: list[Any] = []

    def c(ctx: NodeContext) -> Any:
        rounds.append(ctx.get_last_output())
        return Next("B") if len(rounds) < 3 else "done"

    wf = Workflow("loop", allow_cycles=True).add_node("A", lambda ctx: "a").add_node("B", lambda ctx: "b")
    wf.add_node("C", c).add_edge("A", "B").add_edge("B", "C").add_edge("A", "C").set_entry_point("A")
    result = await wf.execute()
    assert (result.output, len(rounds)) == ("done", 3)
