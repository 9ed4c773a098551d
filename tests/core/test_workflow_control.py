"""Conditional edges, skipped nodes, Next jumps, cycles, timeouts, interrupts, history and events."""

from __future__ import annotations

import logging
import resource
from contextlib import aclosing
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from gecko.compose.nodes import Next, NodeContext, NodeStatus, interrupt
from gecko.compose.workflow import Workflow
from gecko.errors import WorkflowError, WorkflowMaxStepsExceeded, WorkflowTimeoutError


def branching(condition: Any) -> Workflow:
    wf = Workflow("branch")
    wf.add_node("A", lambda ctx: "a").add_node("B", lambda ctx: "b").add_node("C", lambda ctx: "c")
    wf.add_edge("A", "B", condition=condition).add_edge("B", "C").set_entry_point("A")
    return wf


class TestP0_SkippedNodes:
    async def test_failed_condition_marks_node_skipped(self) -> None:
        result = await branching(lambda ctx: False).execute()
        assert result.node_status["B"] is NodeStatus.SKIPPED

    async def test_skipped_node_is_not_written_to_history(self) -> None:
        result = await branching(lambda ctx: False).execute()
        assert "B" not in result.history
        assert [node for node, _ in result.history.entries()] == ["A"]

    async def test_descendants_of_skipped_node_are_skipped(self) -> None:
        result = await branching(lambda ctx: False).execute()
        assert result.node_status["C"] is NodeStatus.SKIPPED
        assert result.output == "a"

    async def test_descendant_reached_by_another_path_still_runs(self) -> None:
        wf = branching(lambda ctx: False).add_edge("A", "C")
        result = await wf.execute()
        assert result.node_status["B"] is NodeStatus.SKIPPED
        assert result.node_status["C"] is NodeStatus.SUCCESS
        assert result.history["C"] == "c"

    async def test_async_condition_is_awaited(self) -> None:
        async def holds(ctx: NodeContext) -> bool:
            await anyio.lowlevel.checkpoint()
            return ctx.get_last_output() == "a"

        result = await branching(holds).execute()
        assert result.node_status["B"] is NodeStatus.SUCCESS

    async def test_condition_sees_state(self) -> None:
        wf = Workflow("s")
        wf.add_node("A", lambda ctx: ctx.state.update(go=True)).add_node("B", lambda ctx: "b")
        wf.add_edge("A", "B", condition=lambda ctx: ctx.state["go"]).set_entry_point("A")
        assert (await wf.execute()).output == "b"

    async def test_raising_condition_counts_as_false_and_is_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        def broken(ctx: NodeContext) -> bool:
            raise RuntimeError("bad condition")

        with caplog.at_level(logging.WARNING, logger="gecko.workflow"):
            result = await branching(broken).execute()
        assert result.node_status["B"] is NodeStatus.SKIPPED
        assert "'A' -> 'B'" in caplog.text


class TestP0_NextAndHistory:
    @staticmethod
    def jumping(next_: Next) -> Workflow:
        wf = Workflow("jump")
        wf.add_node("A", lambda ctx: "from A").add_node("J", lambda ctx: next_)
        wf.add_node("skipped", lambda ctx: "never").add_node("X", lambda ctx: f"X got {ctx.get_last_output()}")
        # X is reached by the jump alone: no edge leads to it.
        wf.add_edge("A", "J").add_edge("J", "skipped")
        return wf.set_entry_point("A")

    async def test_next_with_input_none_keeps_last_output(self) -> None:
        result = await self.jumping(Next(node="X")).execute()
        assert result.output == "X got from A"

    async def test_next_with_input_passes_it(self) -> None:
        result = await self.jumping(Next(node="X", input="explicit")).execute()
        assert result.output == "X got explicit"

    async def test_next_update_state_merges_into_state(self) -> None:
        result = await self.jumping(Next(node="X", update_state={"flag": 1})).execute()
        assert result.state == {"flag": 1}

    async def test_next_overrides_static_edges(self) -> None:
        result = await self.jumping(Next(node="X")).execute()
        assert result.node_status["skipped"] is NodeStatus.SKIPPED
        assert "skipped" not in result.history

    async def test_jumping_node_records_pass_through_output_in_history(self) -> None:
        result = await self.jumping(Next(node="X")).execute()
        assert result.history["J"] == "from A"
        assert None not in [output for _, output in result.history.entries()]

    async def test_backward_jump_without_allow_cycles_fails(self) -> None:
        wf = Workflow("back").add_node("A", lambda ctx: "a").add_node("B", lambda ctx: Next("A"))
        wf.add_edge("A", "B").set_entry_point("A")
        with pytest.raises(WorkflowError, match="allow_cycles=True"):
            await wf.execute()


def counter_loop(limit: int, **options: Any) -> Workflow:
    async def count(ctx: NodeContext) -> int:
        ctx.state["n"] = ctx.state.get("n", 0) + 1
        return int(ctx.state["n"])

    wf = Workflow("loop", allow_cycles=True, **options).add_node("count", count).add_node("done", lambda ctx: "done")
    wf.add_edge("count", "count", condition=lambda ctx: ctx.state["n"] < limit)
    wf.add_edge("count", "done", condition=lambda ctx: ctx.state["n"] >= limit)
    return wf.set_entry_point("count")


async def test_conditional_back_edge_loops_until_exit_condition() -> None:
    result = await counter_loop(5).execute()
    assert result.state == {"n": 5}
    assert result.output == "done"


async def test_cycle_stops_at_max_steps_with_typed_error() -> None:
    with pytest.raises(WorkflowMaxStepsExceeded, match="max_steps=10"):
        await counter_loop(1000, max_steps=10).execute()


async def test_next_loop_with_allow_cycles_runs_until_done() -> None:
    async def work(ctx: NodeContext) -> Any:
        ctx.state["i"] = ctx.state.get("i", 0) + 1
        return Next("work", input=ctx.state["i"]) if ctx.state["i"] < 3 else f"finished after {ctx.get_last_output()}"

    wf = Workflow("next-loop", allow_cycles=True).add_node("work", work).set_entry_point("work")
    result = await wf.execute(0)
    assert result.output == "finished after 2"


async def test_history_stays_bounded_on_100000_step_cycle_with_flat_memory() -> None:
    rss: list[int] = []

    async def count(ctx: NodeContext) -> Any:
        n = ctx.state.get("n", 0) + 1
        ctx.state["n"] = n
        if n in (10_000, 100_000):
            rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return Next("count", input=n) if n < 100_000 else n

    wf = Workflow("long", allow_cycles=True, max_steps=200_000, history_limit=50)
    wf.add_node("count", count).set_entry_point("count")
    result = await wf.execute()
    assert result.output == 100_000
    assert len(result.history.entries()) == 50
    assert rss[1] - rss[0] < 20_000  # ru_maxrss is in KiB: less than 20 MB growth over 90 000 steps


@pytest.mark.idle_clock  # the timeout fires once root is done and s1, s2 wait, however loaded the machine
async def test_workflow_timeout_cancels_nodes_and_names_running_ones() -> None:
    cancelled: list[str] = []

    async def stuck(ctx: NodeContext) -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(ctx.node)
            raise

    wf = Workflow("slow", timeout=0.5).add_node("root", lambda ctx: None)
    wf.add_node("s1", stuck).add_node("s2", stuck).add_edge("root", "s1").add_edge("root", "s2")
    wf.set_entry_point("root")
    with pytest.raises(WorkflowTimeoutError, match=r"nodes still running: \['s1', 's2'\]"):
        await wf.execute()
    assert sorted(cancelled) == ["s1", "s2"]


async def test_node_timeout_fails_with_typed_error_naming_node() -> None:
    async def stuck(ctx: NodeContext) -> None:
        await anyio.sleep_forever()

    wf = Workflow("slow-node").add_node("stuck", stuck, timeout=0.01).set_entry_point("stuck")
    with pytest.raises(WorkflowTimeoutError, match="node 'stuck' ran longer than its timeout"):
        await wf.execute()


async def test_failing_node_cancels_running_siblings() -> None:
    cancelled: list[str] = []

    async def stuck(ctx: NodeContext) -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(ctx.node)
            raise

    async def broken(ctx: NodeContext) -> None:
        await anyio.lowlevel.checkpoint()
        raise ValueError("boom")

    wf = Workflow("fail").add_node("root", lambda ctx: None).add_node("stuck", stuck).add_node("broken", broken)
    wf.add_edge("root", "stuck").add_edge("root", "broken").set_entry_point("root")
    with pytest.raises(WorkflowError, match="boom"):
        await wf.execute()
    assert cancelled == ["stuck"]


def approval_flow() -> Workflow:
    async def ask(ctx: NodeContext) -> str:
        answer = interrupt({"question": "approve?", "draft": ctx.get_last_output()})
        return f"approved={answer}"

    wf = Workflow("approval").add_node("draft", lambda ctx: "draft v1").add_node("ask", ask)
    wf.add_node("publish", lambda ctx: f"published ({ctx.get_last_output()})")
    return wf.add_edge("draft", "ask").add_edge("ask", "publish").set_entry_point("draft")


async def test_interrupt_returns_paused_result_with_payload() -> None:
    result = await approval_flow().execute(session_id="hitl-1")
    assert result.paused
    assert result.interrupt == {"question": "approve?", "draft": "draft v1"}
    assert result.interrupted_node == "ask"


async def test_resume_passes_value_to_interrupt_and_finishes() -> None:
    wf = approval_flow()
    paused = await wf.execute(session_id="hitl-2")
    result = await wf.resume(paused.session_id, "yes")
    assert result.status == "completed"
    assert result.output == "published (approved=yes)"


async def test_interrupt_works_in_sync_nodes() -> None:
    def ask(ctx: NodeContext) -> str:
        return f"got {interrupt('sync?')}"

    wf = Workflow("sync-hitl").add_node("ask", ask).set_entry_point("ask")
    paused = await wf.execute(session_id="s")
    assert paused.interrupt == "sync?"
    assert (await wf.resume("s", 7)).output == "got 7"


async def test_interrupt_outside_a_node_is_an_error() -> None:
    with pytest.raises(WorkflowError, match="outside a workflow node"):
        interrupt("x")


async def test_stream_yields_node_events_and_state_diffs() -> None:
    async def write(ctx: NodeContext) -> str:
        ctx.state["k"] = 1
        return "w"

    wf = branching(lambda ctx: False).add_node("W", write).add_edge("A", "W")
    async with aclosing(wf.stream()) as events:
        seen = [(event.type, event.data.get("node")) async for event in events]
    assert ("workflow.node.started", "A") in seen
    assert ("workflow.node.finished", "W") in seen
    assert ("workflow.node.skipped", "B") in seen
    assert ("workflow.node.skipped", "C") in seen
    assert ("workflow.state.diff", "W") in seen
    assert seen[-1] == ("workflow.finished", None)
    assert ("workflow.node.started", "B") not in seen


async def test_stream_reader_that_falls_behind_slows_the_run_instead_of_growing_a_buffer() -> None:
    ran = 0

    async def fast(ctx: NodeContext) -> int:
        nonlocal ran
        ran += 1
        return ran

    wf = Workflow("busy").add_node("n0", fast)
    for i in range(1, 200):
        wf.add_node(f"n{i}", fast).add_edge(f"n{i - 1}", f"n{i}")
    async with aclosing(wf.set_entry_point("n0").stream()) as events:
        first = await events.__anext__()
        # The reader stops reading for many loop turns: the run may get one buffer ahead, no more.
        for _ in range(2000):
            await anyio.lowlevel.checkpoint()
        assert ran <= 64
        seen = [first] + [event async for event in events]
    assert ran == 200
    assert seen[-1].type == "workflow.finished"
    assert sum(event.type == "workflow.node.finished" for event in seen) == 200


async def test_stream_reraises_node_failure() -> None:
    def broken(ctx: NodeContext) -> None:
        raise ValueError("boom")

    async def drain(wf: Workflow) -> None:
        async with aclosing(wf.stream()) as events:
            async for _ in events:
                pass

    wf = Workflow("s").add_node("A", broken).set_entry_point("A")
    with pytest.raises(WorkflowError, match="boom"):
        await drain(wf)


async def test_loop_over_parallel_body_reruns_every_branch_each_round() -> None:
    runs: list[str] = []

    async def branch(ctx: NodeContext) -> None:
        runs.append(ctx.node)
        ctx.state[ctx.node] = ctx.state.get(ctx.node, 0) + 1

    wf = Workflow("par-loop", allow_cycles=True, scheduling="eager")
    wf.add_node("start", lambda ctx: None).add_node("left", branch).add_node("right", branch)
    wf.add_node("join", lambda ctx: None)
    wf.add_edge("start", "left").add_edge("start", "right").add_edge("left", "join").add_edge("right", "join")
    wf.add_edge("join", "start", condition=lambda ctx: ctx.state["left"] < 3).set_entry_point("start")
    result = await wf.execute()
    assert result.state == {"left": 3, "right": 3}
    assert sorted(runs) == ["left"] * 3 + ["right"] * 3
