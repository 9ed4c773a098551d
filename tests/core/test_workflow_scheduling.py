"""Dependency-counting scheduling, copy-on-write state, merges and conflicts."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from gecko.compose.nodes import NodeContext
from gecko.compose.workflow import Workflow
from gecko.errors import WorkflowStateConflict


def fan(width: int, node: Any, **options: Any) -> Workflow:
    wf = Workflow("fan", **options)
    wf.add_node("root", lambda ctx: "root").add_node("join", lambda ctx: "joined")
    for i in range(width):
        wf.add_node(f"p{i}", node).add_edge("root", f"p{i}").add_edge(f"p{i}", "join")
    return wf.set_entry_point("root")


async def test_cow_state_is_per_node_and_history_shared() -> None:
    states: dict[str, Any] = {}
    histories: dict[str, Any] = {}

    async def branch(ctx: NodeContext) -> str:
        states[ctx.node] = ctx.state
        histories[ctx.node] = ctx.history
        ctx.state[ctx.node] = True
        await anyio.lowlevel.checkpoint()
        return ctx.node

    wf = fan(3, branch)
    result = await wf.execute()
    assert len({id(state) for state in states.values()}) == 3
    assert all(history is result.history for history in histories.values())
    assert result.state == {"p0": True, "p1": True, "p2": True}


async def test_parallel_node_does_not_see_sibling_writes() -> None:
    seen: dict[str, Any] = {}
    release = anyio.Event()

    async def writer(ctx: NodeContext) -> None:
        ctx.state["x"] = "written"
        release.set()

    async def reader(ctx: NodeContext) -> None:
        await release.wait()
        await anyio.lowlevel.checkpoint()
        seen["x"] = ctx.state.get("x")

    wf = Workflow("iso").add_node("root", lambda ctx: None)
    wf.add_node("writer", writer).add_node("reader", reader)
    wf.add_edge("root", "writer").add_edge("root", "reader").set_entry_point("root")
    result = await wf.execute()
    assert seen == {"x": None}
    assert result.state == {"x": "written"}


async def test_ready_node_is_not_held_back_by_unrelated_slow_node() -> None:
    # `slow` only finishes once `b` (a layer later) has run: layer barriers would deadlock here.
    b_done = anyio.Event()

    async def slow(ctx: NodeContext) -> str:
        await b_done.wait()
        return "slow"

    async def b(ctx: NodeContext) -> str:
        b_done.set()
        return "b"

    wf = Workflow("uneven").add_node("entry", lambda ctx: None).add_node("slow", slow)
    wf.add_node("a", lambda ctx: "a").add_node("b", b).add_node("join", lambda ctx: "joined")
    wf.add_edge("entry", "slow").add_edge("entry", "a").add_edge("a", "b")
    wf.add_edge("slow", "join").add_edge("b", "join").set_entry_point("entry")
    with anyio.fail_after(10):
        result = await wf.execute()
    assert result.output == "joined"


async def test_join_waits_for_all_predecessors() -> None:
    order: list[str] = []

    async def branch(ctx: NodeContext) -> None:
        await anyio.lowlevel.checkpoint()
        order.append(ctx.node)

    async def join(ctx: NodeContext) -> None:
        order.append("join")

    wf = fan(4, branch)
    wf._nodes.pop("join")
    wf.add_node("join", join)
    await wf.execute()
    assert order[-1] == "join"
    assert sorted(order[:-1]) == ["p0", "p1", "p2", "p3"]


async def test_layered_mode_runs_layers_in_lockstep() -> None:
    events: list[str] = []

    async def node(ctx: NodeContext) -> None:
        events.append(f"start {ctx.node}")
        await anyio.lowlevel.checkpoint()
        events.append(f"end {ctx.node}")

    wf = Workflow("layered", scheduling="layered")
    for name in ("a", "b", "c", "d"):
        wf.add_node(name, node)
    wf.add_edge("a", "b").add_edge("a", "c").add_edge("b", "d").add_edge("c", "d").set_entry_point("a")
    await wf.execute()
    assert events.index("start d") > max(events.index("end b"), events.index("end c"))
    assert events[:2] == ["start a", "end a"]


async def test_disabled_parallelism_runs_one_node_at_a_time() -> None:
    active: list[int] = [0]
    peak: list[int] = [0]

    async def node(ctx: NodeContext) -> None:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        await anyio.lowlevel.checkpoint()
        active[0] -= 1

    await fan(5, node, enable_parallel=False).execute()
    assert peak[0] == 1


async def test_concurrent_writes_to_one_key_conflict_naming_both_nodes() -> None:
    async def branch(ctx: NodeContext) -> None:
        await anyio.lowlevel.checkpoint()
        ctx.state["total"] = ctx.node

    with pytest.raises(WorkflowStateConflict, match=r"nodes '(p0|p1)' and '(p0|p1)' .* state key 'total'"):
        await fan(2, branch).execute()


async def test_sequential_writes_to_one_key_do_not_conflict() -> None:
    async def inc(ctx: NodeContext) -> None:
        ctx.state["n"] = ctx.state.get("n", 0) + 1

    wf = Workflow("seq").add_node("a", inc).add_node("b", inc).add_edge("a", "b").set_entry_point("a")
    assert (await wf.execute()).state == {"n": 2}


@pytest.mark.parametrize(
    ("rule", "contribution", "expected"),
    [
        ("append", lambda node: [node], ["p0", "p1", "p2"]),
        ("add", lambda node: 1, 3),
        ("merge", lambda node: {node: True}, {"p0": True, "p1": True, "p2": True}),
        (lambda current, new: (current or 0) + len(new), lambda node: node, 6),
    ],
    ids=["append", "add", "merge", "custom"],
)
async def test_merge_rule_combines_concurrent_writes(rule: Any, contribution: Any, expected: Any) -> None:
    async def branch(ctx: NodeContext) -> None:
        await anyio.lowlevel.checkpoint()
        ctx.state["k"] = contribution(ctx.node)

    result = await fan(3, branch, merge_rules={"k": rule}, scheduling="layered").execute()
    value = result.state["k"]
    assert (sorted(value) if isinstance(value, list) else value) == expected


async def test_layered_merge_order_is_declaration_order() -> None:
    async def branch(ctx: NodeContext) -> None:
        # Later nodes finish first; the merged list still follows declaration order.
        for _ in range(5 - int(ctx.node[1:])):
            await anyio.lowlevel.checkpoint()
        ctx.state["log"] = [ctx.node]

    result = await fan(4, branch, merge_rules={"log": "append"}, scheduling="layered").execute()
    assert result.state["log"] == ["p0", "p1", "p2", "p3"]


async def test_in_place_mutation_of_read_value_is_merged_as_write() -> None:
    async def first(ctx: NodeContext) -> None:
        ctx.state["items"] = [1]

    async def second(ctx: NodeContext) -> None:
        ctx.state["items"].append(2)

    wf = Workflow("m").add_node("a", first).add_node("b", second).add_edge("a", "b").set_entry_point("a")
    result = await wf.execute()
    assert result.state == {"items": [1, 2]}


async def test_deleting_a_key_removes_it_on_merge() -> None:
    async def first(ctx: NodeContext) -> None:
        ctx.state["gone"] = 1
        ctx.state["kept"] = 2

    async def second(ctx: NodeContext) -> None:
        del ctx.state["gone"]

    wf = Workflow("d").add_node("a", first).add_node("b", second).add_edge("a", "b").set_entry_point("a")
    assert (await wf.execute()).state == {"kept": 2}


async def test_state_get_sees_own_writes_deletions_and_copies() -> None:
    seen: list[Any] = []

    async def first(ctx: NodeContext) -> None:
        ctx.state["items"] = [1]
        ctx.state["gone"] = "x"

    async def second(ctx: NodeContext) -> None:
        seen.append(ctx.state.get("missing", "default"))
        del ctx.state["gone"]
        seen.append(ctx.state.get("gone", "deleted"))
        ctx.state["fresh"] = 3
        seen.append(ctx.state.get("fresh"))
        # A mutable value read through get() is the node's copy: changing it in place is a write.
        items = ctx.state.get("items")
        items.append(2)
        seen.append(ctx.state.get("items"))

    wf = Workflow("g").add_node("a", first).add_node("b", second).add_edge("a", "b").set_entry_point("a")
    result = await wf.execute()
    assert seen == ["default", "deleted", 3, [1, 2]]
    assert result.state == {"items": [1, 2], "fresh": 3}


async def test_state_get_returns_a_mutable_default_itself_for_an_unset_key() -> None:
    default: list[int] = []
    seen: list[Any] = []

    async def node(ctx: NodeContext) -> None:
        # The default is the caller's object, not a state value: no copy, and changing it writes nothing.
        value = ctx.state.get("absent", default)
        value.append(1)
        seen.append(value)

    wf = Workflow("d").add_node("a", node).set_entry_point("a")
    result = await wf.execute()
    assert seen[0] is default
    assert result.state == {}


async def test_same_graph_and_input_give_same_state() -> None:
    async def branch(ctx: NodeContext) -> None:
        await anyio.lowlevel.checkpoint()
        ctx.state[ctx.node] = ctx.input
        ctx.state["sum"] = ctx.input

    wf = fan(5, branch, merge_rules={"sum": "add"})
    first = await wf.execute(2)
    second = await wf.execute(2)
    assert first.state == second.state == {"p0": 2, "p1": 2, "p2": 2, "p3": 2, "p4": 2, "sum": 10}


async def test_eager_merge_order_follows_graph_not_completion_time() -> None:
    async def branch(ctx: NodeContext) -> None:
        # Later nodes finish first; the merged list still follows the graph's order.
        for _ in range(5 - int(ctx.node[1:])):
            await anyio.lowlevel.checkpoint()
        ctx.state["log"] = [ctx.node]

    result = await fan(4, branch, merge_rules={"log": "append"}).execute()
    assert result.state["log"] == ["p0", "p1", "p2", "p3"]


async def test_eager_and_layered_modes_merge_to_the_same_state() -> None:
    async def node(ctx: NodeContext) -> None:
        for _ in range(len(ctx.node) % 3):
            await anyio.lowlevel.checkpoint()
        ctx.state["log"] = [ctx.node]

    def build(scheduling: Any) -> Workflow:
        wf = Workflow("mix", merge_rules={"log": "append"}, scheduling=scheduling)
        for name in ("a", "bb", "ccc", "d", "eeee"):
            wf.add_node(name, node)
        wf.add_edge("a", "bb").add_edge("a", "ccc").add_edge("bb", "d").add_edge("ccc", "eeee")
        return wf.set_entry_point("a")

    eager = await build("eager").execute()
    layered = await build("layered").execute()
    assert eager.state == layered.state == {"log": ["a", "bb", "ccc", "d", "eeee"]}
