"""Workflow building, validation, node kinds, the node context and pictures."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest

from gecko.compose.nodes import Next, NodeContext, step
from gecko.compose.workflow import Workflow, WorkflowResult
from gecko.errors import WorkflowDefinitionError, WorkflowError


def chain(*names: str, **options: Any) -> Workflow:
    wf = Workflow("chain", **options)
    for name in names:
        wf.add_node(name, lambda ctx, name=name: f"{name}({ctx.get_last_output()})")
    for src, dst in itertools.pairwise(names):
        wf.add_edge(src, dst)
    wf.set_entry_point(names[0])
    return wf


async def test_seed_example_runs_two_steps_and_passes_last_output() -> None:
    @step("Step1")
    async def step_one(ctx: NodeContext) -> str:
        return "Data from Step 1"

    @step("Step2")
    async def step_two(ctx: NodeContext) -> str:
        return f"Finish with {ctx.get_last_output()}"

    wf = Workflow("MyFlow", enable_parallel=True)
    wf.add_node("A", step_one)
    wf.add_node("B", step_two)
    wf.add_edge("A", "B")
    wf.set_entry_point("A")
    result = await wf.execute("init_input")
    assert isinstance(result, WorkflowResult)
    assert result.output == "Finish with Data from Step 1"
    assert str(result) == "Finish with Data from Step 1"
    assert result.status == "completed"


async def test_sync_steps_run_in_worker_threads() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    @step
    def blocking(ctx: NodeContext) -> str:
        seen.append(threading.get_ident())
        return "done"

    wf = Workflow("sync").add_node("A", blocking).set_entry_point("A")
    assert (await wf.execute()).output == "done"
    assert seen
    assert seen[0] != loop_thread


async def test_context_exposes_input_state_history_and_last_output() -> None:
    captured: dict[str, Any] = {}

    async def first(ctx: NodeContext) -> int:
        ctx.state["seen"] = 1
        return 10

    async def second(ctx: NodeContext) -> int:
        captured.update(input=ctx.input, last=ctx.get_last_output(), state=dict(ctx.state), first=ctx.history["first"])
        return 20

    wf = Workflow("ctx").add_node("first", first).add_node("second", second)
    wf.add_edge("first", "second").set_entry_point("first")
    await wf.execute("the input")
    assert captured == {"input": "the input", "last": 10, "state": {"seen": 1}, "first": 10}


async def test_agent_like_node_receives_last_output() -> None:
    class EchoAgent:
        async def run(self, input: Any) -> str:
            return f"agent saw {input}"

    wf = Workflow("agent").add_node("agent", EchoAgent()).set_entry_point("agent")
    assert (await wf.execute("hello")).output == "agent saw hello"


async def test_workflow_node_runs_nested_workflow() -> None:
    inner = chain("x", "y")
    outer = Workflow("outer").add_node("inner", inner).set_entry_point("inner")
    assert (await outer.execute("in")).output == "y(x(in))"


def test_unknown_node_in_edge_is_rejected_at_build() -> None:
    wf = chain("A", "B").add_edge("B", "C")
    with pytest.raises(WorkflowDefinitionError, match="unknown node 'C'"):
        wf.compile()


def test_cycle_without_allow_cycles_is_rejected_at_build() -> None:
    wf = chain("A", "B").add_edge("B", "A")
    with pytest.raises(WorkflowDefinitionError, match="cycle A -> B -> A"):
        wf.compile()


def test_missing_entry_point_is_rejected() -> None:
    wf = Workflow("w").add_node("A", lambda ctx: None)
    with pytest.raises(WorkflowDefinitionError, match="set_entry_point"):
        wf.compile()


def test_declared_writes_of_parallel_branches_without_merge_rule_are_rejected() -> None:
    wf = Workflow("w").add_node("root", lambda ctx: None)
    wf.add_node("left", step(writes=("total",))(lambda ctx: None))
    wf.add_node("right", lambda ctx: None, writes=("total",))
    wf.add_edge("root", "left").add_edge("root", "right").set_entry_point("root")
    with pytest.raises(WorkflowDefinitionError, match="'left' and 'right' both write state key 'total'"):
        wf.compile()


def test_declared_writes_with_merge_rule_are_accepted() -> None:
    wf = Workflow("w", merge_rules={"total": "add"}).add_node("root", lambda ctx: None)
    wf.add_node("left", lambda ctx: None, writes=("total",))
    wf.add_node("right", lambda ctx: None, writes=("total",))
    wf.add_edge("root", "left").add_edge("root", "right").set_entry_point("root")
    assert wf.layers == [["root"], ["left", "right"]]


class AsyncRule:
    async def __call__(self, current: Any, contribution: Any) -> Any:
        return contribution


async def _async_rule(current: Any, contribution: Any) -> Any:
    return contribution


@pytest.mark.parametrize("rule", [_async_rule, AsyncRule()], ids=["async function", "async callable object"])
def test_an_async_merge_rule_is_refused(rule: Any) -> None:
    # Before, the folded state held the rule's coroutine, never awaited.
    with pytest.raises(WorkflowDefinitionError, match="merge rule for state key 'total' is async"):
        Workflow("w", merge_rules={"total": rule})
    with pytest.raises(WorkflowDefinitionError, match="merge rule for state key 'total' is async"):
        Workflow("w").set_merge_rule("total", rule)


def test_declared_writes_of_sequential_nodes_are_accepted() -> None:
    wf = Workflow("w")
    wf.add_node("a", lambda ctx: None, writes=("k",)).add_node("b", lambda ctx: None, writes=("k",))
    wf.add_edge("a", "b").set_entry_point("a")
    assert wf.layers == [["a"], ["b"]]


def test_duplicate_node_name_is_rejected() -> None:
    wf = Workflow("w").add_node("A", lambda ctx: None)
    with pytest.raises(WorkflowDefinitionError, match="already exists"):
        wf.add_node("A", lambda ctx: None)


def test_non_callable_node_is_rejected() -> None:
    with pytest.raises(WorkflowDefinitionError, match="a node must be"):
        Workflow("w").add_node("A", 42)


def test_layers_group_nodes_by_topological_depth() -> None:
    wf = Workflow("w")
    for name in ("a", "b", "c", "d"):
        wf.add_node(name, lambda ctx: None)
    wf.add_edge("a", "b").add_edge("a", "c").add_edge("b", "d").add_edge("c", "d").set_entry_point("a")
    assert wf.layers == [["a"], ["b", "c"], ["d"]]


def test_mermaid_draws_nodes_and_edges_with_conditions_dashed() -> None:
    wf = chain("A", "B").add_node("C", lambda ctx: None).add_edge("A", "C", condition=lambda ctx: True)
    assert wf.to_mermaid().splitlines() == [
        "flowchart TD",
        '    n0(["A"])',
        '    n1["B"]',
        '    n2["C"]',
        "    n0 --> n1",
        "    n0 -.-> n2",
    ]


async def test_start_node_begins_mid_graph_with_resume_context() -> None:
    wf = chain("A", "B", "C")
    result = await wf.execute("ignored", start_node="B", _resume_context={"state": {"k": 1}, "last_output": "restored"})
    assert result.output == "C(B(restored))"
    assert result.state == {"k": 1}
    assert "A" not in result.history


async def test_node_failure_raises_workflow_error_naming_the_node() -> None:
    def broken(ctx: NodeContext) -> None:
        raise ValueError("boom")

    wf = chain("A").add_node("B", broken).add_edge("A", "B")
    with pytest.raises(WorkflowError, match=r"node 'B' .* failed: ValueError: boom") as info:
        await wf.execute()
    assert isinstance(info.value.__cause__, ValueError)


async def test_unknown_jump_target_fails_the_run() -> None:
    wf = Workflow("w").add_node("A", lambda ctx: Next("nowhere")).set_entry_point("A")
    with pytest.raises(WorkflowError, match="unknown node 'nowhere'"):
        await wf.execute()


async def test_team_node_runs_members_and_checkpoints_their_results() -> None:
    from gecko.compose.team import MemberResult, Team
    from gecko.plugins.storage.factory import create_storage

    async def double(value: int) -> int:
        return value * 2

    async def square(value: int) -> int:
        return value * value

    team = Team([double, square])
    storage = await create_storage("memory://")

    def workflow() -> Workflow:
        return Workflow("team", storage=storage).add_node("team", team).set_entry_point("team")

    output = (await workflow().execute(3, session_id="t")).output
    assert [(member.member_index, member.value) for member in output] == [(0, 6), (1, 9)]
    # The finished session's result is read back from the checkpoint: the same MemberResult objects.
    stored = (await workflow().resume("t")).output
    assert stored == output
    assert all(type(member) is MemberResult for member in stored)


async def test_agent_node_gets_last_output_as_prompt() -> None:
    from gecko.core.builder import AgentBuilder
    from gecko.testing.models import ScriptedModel, reply

    model = ScriptedModel([reply("summary ready")])
    agent = AgentBuilder().with_model(model).build()
    wf = Workflow("agent").add_node("draft", lambda ctx: "summarize this").add_node("agent", agent)
    wf.add_edge("draft", "agent").set_entry_point("draft")
    result = await wf.execute()
    assert result.output.content == "summary ready"
    assert model.requests[0].messages[-1].text == "summarize this"


async def test_settings_changed_after_a_run_are_taken_by_the_next_run() -> None:
    from gecko.errors import WorkflowMaxStepsExceeded

    wf = Workflow("loop", allow_cycles=True).add_node("again", lambda ctx: Next("again")).set_entry_point("again")
    wf.max_steps = 5
    with pytest.raises(WorkflowMaxStepsExceeded, match="max_steps=5"):
        await wf.execute()
    wf.max_steps = 7
    with pytest.raises(WorkflowMaxStepsExceeded, match="max_steps=7"):
        await wf.execute()
