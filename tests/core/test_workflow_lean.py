"""The lean path (an unobserved run's direct async nodes and their chains) against the observed path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from gecko.compose.nodes import Next, NodeContext, NodeStatus, interrupt
from gecko.compose.workflow import CheckpointStrategy, Workflow, WorkflowResult
from gecko.errors import WorkflowError, WorkflowMaxStepsExceeded, WorkflowStateConflict
from gecko.plugins import hookimpl, plugin_manager
from gecko.plugins.storage.memory import MemoryStorage
from gecko.types import Event


class Observer:
    """A `gecko_event` hook plugin: its presence makes every run observed (no lean path)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    @hookimpl
    async def gecko_event(self, event: Event) -> None:
        self.events.append((event.type, event.data.get("node")))


@pytest.fixture
def observer() -> Iterator[Observer]:
    plugin = Observer()
    manager = plugin_manager()
    manager.register(plugin, "test-workflow-observer")
    try:
        yield plugin
    finally:
        manager.unregister(plugin)


async def count(ctx: NodeContext) -> int:
    ctx.state["count"] = ctx.state.get("count", 0) + 1
    return int(ctx.state["count"])


def chain(n: int, name: str = "chain", **options: Any) -> Workflow:
    wf = Workflow(name, **options)
    for i in range(n):
        wf.add_node(f"n{i}", count)
        if i:
            wf.add_edge(f"n{i - 1}", f"n{i}")
    return wf.set_entry_point("n0")


def linear(name: str, *nodes: Callable[[NodeContext], Awaitable[Any]]) -> Workflow:
    """A chain of `nodes`, each named after its function, in the order given."""
    wf = Workflow(name)
    for previous, fn in zip((None, *nodes[:-1]), nodes, strict=True):
        wf.add_node(fn.__name__, fn)
        if previous is not None:
            wf.add_edge(previous.__name__, fn.__name__)
    return wf.set_entry_point(nodes[0].__name__)


def mixed() -> Workflow:
    """Chains, a fan-out with a merge rule, a conditional edge, a skipped branch and a `Next` jump."""

    async def fan_out(ctx: NodeContext) -> str:
        ctx.state["log"] = [ctx.node]
        return ctx.node

    async def join(ctx: NodeContext) -> str:
        ctx.state["joined"] = sorted(ctx.state["log"])
        return "joined"

    async def jump(ctx: NodeContext) -> Next:
        return Next("target", input="jumped", update_state={"jumped": True})

    async def target(ctx: NodeContext) -> Any:
        del ctx.state["count"]
        return ctx.get_last_output()

    wf = Workflow("mixed", merge_rules={"log": "append"})
    for name, fn in [("a", count), ("b", count), ("p1", fan_out), ("p2", fan_out), ("join", join)]:
        wf.add_node(name, fn)
    wf.add_node("yes", jump).add_node("no", count).add_node("target", target).add_node("after", count)
    wf.add_edge("a", "b").add_edge("b", "p1").add_edge("b", "p2").add_edge("p1", "join").add_edge("p2", "join")
    wf.add_edge("join", "yes", condition=lambda ctx: True).add_edge("join", "no", condition=lambda ctx: False)
    wf.add_edge("yes", "after").add_edge("no", "after")
    return wf.set_entry_point("a")


def outcome(result: WorkflowResult) -> tuple[Any, ...]:
    return result.output, result.state, result.history.entries(), result.node_status, result.steps


async def lean_then_observed(
    observer: Observer, run: Callable[[], Awaitable[WorkflowResult]]
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The outcomes of `run()` without the observer (a lean run), then with it (an observed run)."""
    manager = plugin_manager()
    manager.unregister(observer)
    lean = outcome(await run())
    manager.register(observer, "test-workflow-observer")
    return lean, outcome(await run())


async def test_lean_and_observed_runs_give_equal_results(observer: Observer) -> None:
    manager = plugin_manager()
    manager.unregister(observer)
    lean = [outcome(await wf.execute()) for wf in (mixed(), chain(50))]
    manager.register(observer, "test-workflow-observer")
    observed = [outcome(await wf.execute()) for wf in (mixed(), chain(50))]
    assert lean == observed
    output, state, entries, status, steps = lean[0]
    assert output == "jumped"
    assert state == {"log": ["p1", "p2"], "joined": ["p1", "p2"], "jumped": True}
    assert [node for node, _ in entries] == ["a", "b", "p1", "p2", "join", "yes", "target"]
    assert status["no"] is NodeStatus.SKIPPED
    assert status["after"] is NodeStatus.SKIPPED
    assert steps == 7
    assert lean[1][1] == {"count": 50}
    assert lean[1][4] == 50


async def test_an_observed_chain_reports_every_node(observer: Observer) -> None:
    result = await chain(30).execute()
    assert result.state == {"count": 30}
    nodes = [f"n{i}" for i in range(30)]
    assert [node for kind, node in observer.events if kind == "workflow.node.started"] == nodes
    assert [node for kind, node in observer.events if kind == "workflow.node.finished"] == nodes
    assert [node for kind, node in observer.events if kind == "workflow.state.diff"] == nodes
    assert observer.events[-1][0] == "workflow.finished"


async def test_a_streamed_chain_reports_every_node() -> None:
    events = [event async for event in chain(20).stream()]
    finished = [event.data["node"] for event in events if event.type == "workflow.node.finished"]
    assert finished == [f"n{i}" for i in range(20)]
    assert events[-1].type == "workflow.finished"


async def test_a_chain_jumps_back_with_next_until_its_condition_holds() -> None:
    async def loop(ctx: NodeContext) -> Any:
        ctx.state["rounds"] = ctx.state.get("rounds", 0) + 1
        return Next("n0") if ctx.state["rounds"] < 3 else "done"

    wf = chain(5, "looping", allow_cycles=True, max_steps=100)
    wf.add_node("loop", loop, jumps=["n0"]).add_edge("n4", "loop")
    result = await wf.execute()
    assert result.state == {"count": 15, "rounds": 3}
    assert result.output == "done"
    assert result.steps == 18


async def test_a_cycle_in_a_chain_stops_at_max_steps() -> None:
    async def back(ctx: NodeContext) -> Next:
        return Next("n0")

    wf = chain(3, "endless", allow_cycles=True, max_steps=10).add_node("back", back).add_edge("n2", "back")
    with pytest.raises(WorkflowMaxStepsExceeded):
        await wf.execute()


async def test_an_interrupt_mid_chain_pauses_and_resumes_without_rerunning_done_nodes() -> None:
    ran: list[str] = []

    async def ask(ctx: NodeContext) -> Any:
        ran.append(ctx.node)
        answer = ctx.interrupt({"question": "go on?"})
        ctx.state["answer"] = answer
        return answer

    # FINAL writes only when the run stops, so the run stays lean (no journal) and can resume.
    wf = chain(4, "asking", storage=MemoryStorage(), checkpoint_strategy=CheckpointStrategy.FINAL)
    wf.add_node("ask", ask).add_node("tail", count)
    wf.add_edge("n3", "ask").add_edge("ask", "tail")
    paused = await wf.execute(session_id="lean-ask")
    assert paused.paused
    assert paused.interrupted_node == "ask"
    assert paused.state == {"count": 4}
    result = await wf.resume("lean-ask", "yes")
    assert result.state == {"count": 5, "answer": "yes"}
    assert ran == ["ask", "ask"]
    assert result.steps == 7  # the paused attempt counts


async def test_an_exception_mid_chain_fails_the_run_and_a_resume_runs_only_the_rest() -> None:
    calls: list[str] = []
    broken = True

    async def flaky(ctx: NodeContext) -> int:
        calls.append(ctx.node)
        if broken:
            raise ValueError("boom")
        return await count(ctx)

    wf = chain(3, "failing", storage=MemoryStorage(), checkpoint_strategy=CheckpointStrategy.FINAL)
    wf.add_node("flaky", flaky).add_node("tail", count)
    wf.add_edge("n2", "flaky").add_edge("flaky", "tail")
    with pytest.raises(WorkflowError, match="flaky") as caught:
        await wf.execute(session_id="lean-fail")
    assert isinstance(caught.value.__cause__, ValueError)
    broken = False
    result = await wf.resume("lean-fail")
    assert result.state == {"count": 5}
    assert calls == ["flaky", "flaky"]


async def test_parallel_plain_nodes_writing_one_key_conflict() -> None:
    async def root(ctx: NodeContext) -> None:
        return None

    async def writer(ctx: NodeContext) -> None:
        await anyio.lowlevel.checkpoint()
        ctx.state["x"] = ctx.node

    wf = Workflow("clash").add_node("root", root).add_node("w1", writer).add_node("w2", writer)
    wf.add_edge("root", "w1").add_edge("root", "w2").set_entry_point("root")
    with pytest.raises(WorkflowStateConflict, match="'x'"):
        await wf.execute()


async def test_cancelling_a_lean_chain_propagates() -> None:
    started = anyio.Event()

    async def hang(ctx: NodeContext) -> None:
        started.set()
        await anyio.sleep_forever()

    wf = chain(3, "hanging").add_node("hang", hang).add_edge("n2", "hang")
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(wf.execute)
            await started.wait()
            scope.cancel()
        pytest.fail("the cancellation was swallowed")
    assert scope.cancelled_caught


def keeper(kept: dict[str, Any]) -> Workflow:
    """A chain whose nodes keep their state views and contexts, mutate values read from state, and read them late."""

    async def first(ctx: NodeContext) -> str:
        ctx.state["items"] = ["a"]
        ctx.state["count"] = 1
        kept["first"] = ctx.state
        kept["first_ctx"] = ctx
        return "first"

    async def second(ctx: NodeContext) -> str:
        items = ctx.state["items"]
        items.append("b")  # an in-place change to a value read from state counts as a write
        ctx.state["count"] += 1
        kept["second"] = ctx.state
        return "second"

    async def third(ctx: NodeContext) -> list[Any]:
        # Views kept by earlier nodes still show the state as each node left it.
        seen = [dict(kept["first"]), dict(kept["second"]), kept["first_ctx"].node, kept["first_ctx"].get_last_output()]
        del ctx.state["count"]
        ctx.state["items"].append("c")
        return seen

    async def fourth(ctx: NodeContext) -> list[Any]:
        return [dict(ctx.state), dict(kept["first"]), dict(kept["second"]), "count" in ctx.state]

    return linear("keeper", first, second, third, fourth)


async def test_kept_views_and_mutated_values_read_alike_on_lean_and_observed_runs(observer: Observer) -> None:
    lean_kept: dict[str, Any] = {}
    observed_kept: dict[str, Any] = {}
    kepts = iter((lean_kept, observed_kept))
    lean, observed = await lean_then_observed(observer, lambda: keeper(next(kepts)).execute(input="in"))
    assert lean == observed
    output, state, entries, _, _ = lean
    assert state == {"items": ["a", "b", "c"]}
    first, second = {"items": ["a"], "count": 1}, {"items": ["a", "b"], "count": 2}
    assert entries[2][1] == [first, second, "first", "in"]
    assert output == [{"items": ["a", "b", "c"]}, first, second, False]
    # After the run, kept views still show their own node's state.
    for kept in (lean_kept, observed_kept):
        assert [dict(kept["first"]), dict(kept["second"])] == [first, second]


async def test_values_read_from_state_are_fresh_copies_for_each_node_of_a_lean_chain(observer: Observer) -> None:
    async def start(ctx: NodeContext) -> None:
        ctx.state["items"] = [0]

    async def grow(ctx: NodeContext) -> list[int]:
        items = ctx.state["items"]
        items.append(1)  # merged as a write; the output is that list
        return items

    async def grow_again(ctx: NodeContext) -> None:
        # Nobody kept a view, so this node's view object may be the one `grow` used: its read must still copy.
        ctx.state["items"].append(2)

    lean, observed = await lean_then_observed(observer, lambda: linear("copies", start, grow, grow_again).execute())
    assert lean == observed
    _, state, entries, _, _ = lean
    assert state == {"items": [0, 1, 2]}
    assert entries[1] == ("grow", [0, 1])


async def test_a_lean_node_sees_a_complete_context(observer: Observer) -> None:
    seen: list[dict[str, Any]] = []

    async def look(ctx: NodeContext) -> str:
        # Every slot of the context and of its state view is set, as the constructors set them.
        view = ctx.state
        seen.append(
            {
                **{name: getattr(ctx, name) for name in NodeContext.__slots__ if name != "state"},
                **{name: getattr(view, name) for name in type(view).__slots__},
                "type": (type(ctx), type(view)),
            }
        )
        ctx.state["n"] = ctx.state.get("n", 0) + 1
        return ctx.node

    def looking() -> Workflow:
        wf = Workflow("looking").add_node("a", look).add_node("b", look).add_edge("a", "b")
        return wf.set_entry_point("a")

    manager = plugin_manager()
    manager.unregister(observer)
    await looking().execute(input={"q": 1}, session_id="s1")
    manager.register(observer, "test-workflow-observer")
    await looking().execute(input={"q": 1}, session_id="s1")
    lean, observed = seen[:2], seen[2:]
    for row in (*lean, *observed):
        del row["history"]  # each run has its own history object
        del row["_base"]  # and its own state dicts, compared by value below
    assert lean == observed
    assert lean[1]["_last"] == "a"
    assert lean[1]["input"] == {"q": 1}
    assert lean[1]["session_id"] == "s1"


async def test_interrupt_from_a_lean_chain_names_its_node() -> None:
    async def ask(ctx: NodeContext) -> Any:
        return interrupt({"node": ctx.node})

    wf = chain(3, "free-ask", storage=MemoryStorage(), checkpoint_strategy=CheckpointStrategy.FINAL)
    wf.add_node("ask", ask).add_node("tail", count).add_edge("n2", "ask").add_edge("ask", "tail")
    paused = await wf.execute(session_id="lean-free-ask")
    assert paused.interrupted_node == "ask"
    result = await wf.resume("lean-free-ask", "answer")
    assert result.history["ask"] == "answer"
    assert result.state == {"count": 4}
    with pytest.raises(WorkflowError, match="outside a workflow node"):
        interrupt("late")


def rewriter() -> Workflow:
    """A chain whose nodes delete and re-set keys, and read mutable values without changing them."""

    async def seed(ctx: NodeContext) -> str:
        ctx.state.update({"gone": 1, "back": 1, "items": ["a"], "count": 0})
        return "seed"

    async def churn(ctx: NodeContext) -> str:
        del ctx.state["gone"]
        del ctx.state["back"]
        ctx.state["back"] = 2  # deleted, then set again: a plain write
        return "churn"

    async def look(ctx: NodeContext) -> list[str]:
        return list(ctx.state["items"])  # read, not changed: no write

    async def bump(ctx: NodeContext) -> int:
        ctx.state["count"] += 1
        return int(ctx.state["count"])

    return linear("rewriter", seed, churn, look, bump)


async def test_deletions_and_unchanged_reads_merge_alike_on_lean_and_observed_runs(observer: Observer) -> None:
    lean, observed = await lean_then_observed(observer, lambda: rewriter().execute())
    assert lean == observed
    assert lean[1] == {"back": 2, "items": ["a"], "count": 1}
    assert [output for _, output in lean[2]] == ["seed", "churn", ["a"], 1]
    diffs = [node for kind, node in observer.events if kind == "workflow.state.diff"]
    assert diffs == ["seed", "churn", "bump"]


async def test_a_chain_of_nodes_that_never_write_keeps_the_state() -> None:
    async def idle(ctx: NodeContext) -> str:
        return ctx.node

    wf = Workflow("idle")
    for i in range(20):
        wf.add_node(f"n{i}", idle)
        if i:
            wf.add_edge(f"n{i - 1}", f"n{i}")
    result = await wf.set_entry_point("n0").execute()
    assert result.state == {}
    assert result.output == "n19"
    assert result.steps == 20
