"""Values keep their type across checkpoint/resume: what a checkpoint cannot hold exactly is refused.

The rule: every value a workflow checkpoint stores (node outputs, state, jump inputs, interrupt
payloads, the input) must be JSON data that reads back as the same Python value; anything else
(int dict keys, tuples, sets, NaN, bytes, models, enums) is an `UnstorableValueError` naming the
node and the path inside the value, raised before it could change type silently.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from gecko.compose._values import TAG, _encode, restored, storable
from gecko.compose.nodes import Next, NodeContext
from gecko.compose.workflow import CheckpointStrategy, Workflow
from gecko.errors import UnstorableValueError
from gecko.plugins.storage import Storage
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.conformance.checkpoints import _nested
from gecko.types import AgentOutput, Message, TokenUsage


class City(BaseModel):
    name: str


class Level(enum.IntEnum):
    HIGH = 2


UNSTORABLE: dict[str, tuple[Any, str]] = {
    "int-key": ({"ok": {1: "one"}}, r"\['ok'\] has the key 1 \(int\)"),
    "tuple": ({"pair": ("a", "b")}, r"\['pair'\] is a tuple, which would come back as a list"),
    "set": ([1, {2, 3}], r"\[1\] is a set"),
    "frozenset": (frozenset({1}), r" is a frozenset"),
    "nan": ({"x": [float("nan")]}, r"\['x'\]\[0\] is nan, which JSON cannot hold"),
    "inf": (float("inf"), r" is inf, which JSON cannot hold"),
    "bytes": ({"blob": b"\x00"}, r"\['blob'\] is bytes"),
    "model": ([City(name="Oslo")], r"\[0\] is a pydantic model \(.*City\) that is not registered for checkpoints"),
    "int-enum": ({"level": Level.HIGH}, r"\['level'\] is a .*Level"),
    "object": ({"at": object()}, r"\['at'\] is a builtins.object"),
}


def one_node(storage: Storage | None, run: Callable[[NodeContext], Any], **options: Any) -> Workflow:
    wf = Workflow("values", storage=storage, **options).add_node("make", run)
    return wf.add_node("after", lambda ctx: "after").add_edge("make", "after").set_entry_point("make")


@pytest.mark.parametrize(("value", "path"), UNSTORABLE.values(), ids=UNSTORABLE.keys())
async def test_output_that_would_change_type_is_refused_naming_node_and_path(value: Any, path: str) -> None:
    storage = MemoryStorage()
    with pytest.raises(UnstorableValueError, match=f"the output of node 'make'{path}"):
        await one_node(storage, lambda ctx: value).execute(session_id="s")
    # Nothing is lost: the node did not complete, so resuming with a storable output runs it again.
    result = await one_node(storage, lambda ctx: "fixed").resume("s")
    assert (result.status, result.history["make"], result.output) == ("completed", "fixed", "after")


@pytest.mark.parametrize(("value", "path"), UNSTORABLE.values(), ids=UNSTORABLE.keys())
async def test_state_write_that_would_change_type_is_refused(value: Any, path: str) -> None:
    def write(ctx: NodeContext) -> None:
        ctx.state["key"] = value

    with pytest.raises(UnstorableValueError, match=f"state key 'key' written by node 'make'{path}"):
        await one_node(MemoryStorage(), write).execute(session_id="s")


@pytest.mark.parametrize("key", [1, ("a", 1), None], ids=["int", "tuple", "none"])
async def test_state_key_that_is_not_a_string_is_refused_before_it_is_journaled(key: Any) -> None:
    # Journaled as a JSON key it would come back as a string: a run resumed from the journal would differ.
    def build(make: Callable[[NodeContext], Any]) -> Workflow:
        wf = Workflow("keys", storage=storage).add_node("first", lambda ctx: ctx.state.update(first=1))
        return wf.add_node("make", make).add_edge("first", "make").set_entry_point("first")

    def write(ctx: NodeContext) -> None:
        ctx.state[key] = "value"

    storage = MemoryStorage()
    with pytest.raises(UnstorableValueError, match=rf"state key {re.escape(repr(key))} \(\w+\) written by node 'make'"):
        await build(write).execute(session_id="s")
    # The node did not complete: resuming runs it again after what was saved.
    result = await build(lambda ctx: ctx.state.update(key="value")).resume("s")
    assert (result.status, result.state) == ("completed", {"first": 1, "key": "value"})


async def test_jump_input_that_would_change_type_is_refused_as_the_nodes_output() -> None:
    wf = Workflow("jump", storage=MemoryStorage()).add_node("make", lambda ctx: Next("after", input=(1, 2)))
    wf.add_node("after", lambda ctx: ctx.get_last_output()).add_edge("make", "after").set_entry_point("make")
    with pytest.raises(UnstorableValueError, match=r"the output of node 'make' is a tuple"):
        await wf.execute(session_id="s")


@pytest.mark.parametrize("storage", [MemoryStorage(), None], ids=["durable", "in-process"])
async def test_pause_refuses_an_interrupt_payload_that_would_change_type(storage: Storage | None) -> None:
    def ask(ctx: NodeContext) -> Any:
        return ctx.interrupt({"choices": ("yes", "no")})

    with pytest.raises(UnstorableValueError, match=r"the interrupt payload of node 'make'\['choices'\] is a tuple"):
        await one_node(storage, ask).execute(session_id="s")


async def test_final_snapshot_refuses_state_that_would_change_type() -> None:
    def write(ctx: NodeContext) -> None:
        ctx.state["seen"] = {"ids": {3, 4}}

    wf = one_node(MemoryStorage(), write, checkpoint_strategy=CheckpointStrategy.FINAL)
    with pytest.raises(UnstorableValueError, match=r"the state\['seen'\]\['ids'\] is a set"):
        await wf.execute(session_id="s")


async def test_cancelled_run_whose_state_cannot_be_stored_is_still_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waiting = anyio.Event()

    def write(ctx: NodeContext) -> None:
        ctx.state["pair"] = (1, 2)

    async def wait(ctx: NodeContext) -> None:
        waiting.set()
        await anyio.sleep_forever()

    wf = Workflow("cancel", storage=MemoryStorage(), checkpoint_strategy=CheckpointStrategy.FINAL)
    wf.add_node("write", write).add_node("wait", wait).add_edge("write", "wait").set_entry_point("write")
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(wf.execute, None)
            await waiting.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert "could not checkpoint cancelled session" in caplog.text


async def test_run_that_stores_nothing_passes_values_through_unchanged() -> None:
    value = {1: ("a", City(name="Oslo"))}
    result = await one_node(None, lambda ctx: value).execute()
    assert result.history["make"] is value


async def test_value_nested_deeper_than_json_allows_is_refused() -> None:
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(UnstorableValueError, match="the output of node 'make' is nested too deeply"):
        await one_node(MemoryStorage(), lambda ctx: deep).execute(session_id="s")


def test_gecko_types_count_as_stored_towards_the_nesting_limit() -> None:
    # An AgentOutput is stored as {"$gecko": ..., "v": {"data": ...}}: two levels above its data.
    kept = AgentOutput(content="x", data=_nested(98))
    assert restored(storable(kept, "the output"), "the output") == kept
    with pytest.raises(UnstorableValueError, match=r"the output is nested too deeply .* at most 100 levels deep"):
        storable(AgentOutput(content="x", data=_nested(99)), "the output")
    # The same through the walk that names paths (a value that is not plain JSON data).
    with pytest.raises(UnstorableValueError, match="the output is nested too deeply"):
        storable([AgentOutput(content="x", data=_nested(97)), _nested(100)], "the output")


@pytest.mark.parametrize("strategy", [CheckpointStrategy.FINAL, CheckpointStrategy.MANUAL])
async def test_state_kept_only_by_snapshots_is_held_to_the_nesting_limit_per_key(strategy: CheckpointStrategy) -> None:
    # Without a journal the snapshot alone checks the state: a key's value may be 100 levels deep, not more.
    def ask(ctx: NodeContext) -> Any:
        return ctx.interrupt("go on?")

    def build(value: Any) -> Workflow:
        def write(ctx: NodeContext) -> None:
            ctx.state["deep"] = value

        wf = Workflow("snapshots", storage=storage, checkpoint_strategy=strategy).add_node("write", write)
        return wf.add_node("ask", ask).add_edge("write", "ask").set_entry_point("write")

    storage = MemoryStorage()
    assert (await build(_nested(100)).execute(session_id="kept")).paused
    assert (await build(None).resume("kept", "yes")).state["deep"] == _nested(100)
    with pytest.raises(UnstorableValueError, match=r"the state holds a value nested too deeply \(or contains itself\)"):
        await build(_nested(101)).execute(session_id="refused")


async def test_value_containing_itself_is_refused() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(UnstorableValueError, match=r"node 'make' is nested too deeply \(or contains itself\)"):
        await one_node(MemoryStorage(), lambda ctx: loop).execute(session_id="s")


def _same(left: Any, right: Any) -> bool:
    """Equal, and of exactly the same types all the way down (so 1 is not 1.0 and True is not 1)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict):
        return list(left) == list(right) and all(_same(left[key], right[key]) for key in left)
    return bool(left == right) or (isinstance(left, float) and math.isnan(left) and math.isnan(right))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=6).filter(lambda key: key != TAG), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=40, deadline=None)
@given(value=json_values)
async def test_json_values_come_back_exactly_across_pause_and_resume(value: Any) -> None:
    storage = MemoryStorage()

    def make(ctx: NodeContext) -> Any:
        ctx.state["kept"] = value
        return value

    def ask(ctx: NodeContext) -> Any:
        return ctx.interrupt(value)

    def build() -> Workflow:
        wf = Workflow("exact", storage=storage).add_node("make", make).add_node("ask", ask)
        return wf.add_edge("make", "ask").set_entry_point("make")

    paused = await build().execute(value, session_id="s")
    assert paused.paused
    assert _same(paused.interrupt, value)
    resumed = await build().resume("s", "answer")
    assert _same(resumed.history["make"], value)
    assert _same(resumed.state["kept"], value)
    assert resumed.output == "answer"


unstorable_leaves = st.sampled_from([(1, 2), {1}, b"x", float("nan"), float("-inf"), City(name="x"), Level.HIGH])


@st.composite
def values_with_one_unstorable_leaf(draw: st.DrawFn) -> tuple[Any, str]:
    """A JSON value with one leaf replaced by something a checkpoint cannot hold, and the leaf's path."""
    leaf = draw(unstorable_leaves)
    path = ""
    value: Any = leaf
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        if draw(st.booleans()):
            siblings = draw(st.lists(json_values, max_size=2))
            index = draw(st.integers(min_value=0, max_value=len(siblings)))
            value = [*siblings[:index], value, *siblings[index:]]
            path = f"[{index}]{path}"
        else:
            name = draw(st.text(max_size=4))
            others = draw(st.dictionaries(st.text(max_size=4), json_values, max_size=2))
            others.pop(name, None)
            value = {**others, name: value}
            path = f"[{name!r}]{path}"
    return value, path


@settings(max_examples=60, deadline=None)
@given(case=values_with_one_unstorable_leaf())
async def test_unstorable_leaf_anywhere_is_refused_with_its_path(case: tuple[Any, str]) -> None:
    value, path = case
    with pytest.raises(UnstorableValueError) as caught:
        await one_node(MemoryStorage(), lambda ctx: value).execute(session_id="s")
    assert f"the output of node 'make'{path} is " in str(caught.value)


def _outcome(encode: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "stored", encode()
    except UnstorableValueError as exc:
        return "refused", str(exc)


any_values = st.recursive(
    json_values | unstorable_leaves | st.sampled_from([TokenUsage(input_tokens=1), Message.user("hi"), {TAG: 1}]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=4) | st.integers(), children, max_size=3)
        | st.builds(lambda items: {TAG: items}, children)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=any_values)
def test_lean_copy_of_plain_data_stores_and_refuses_exactly_as_the_full_walk(value: Any) -> None:
    lean = _outcome(lambda: storable(value, "the value"))
    full = _outcome(lambda: _encode(value, "the value", ""))
    assert lean[0] == full[0]
    assert _same(lean[1], full[1]) if lean[0] == "stored" else lean[1] == full[1]
    if lean[0] == "stored":
        assert restored(lean[1], "the value") == value
