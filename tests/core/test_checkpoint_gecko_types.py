"""Agents and teams as checkpointed workflow nodes: their results come back with exactly their types.

`AgentOutput` and `MemberResult` (with the `Message`, `TokenUsage` and errors inside) are stored
as tagged values and rebuilt from a closed registry on resume; a user dict using the tag key, a
value no registry type covers, and a stored tag naming no Gecko type are refused with typed errors.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pytest
from pydantic import BaseModel

from gecko.compose import stored_types
from gecko.compose.nodes import NodeContext
from gecko.compose.team import MemberResult, MemberStatus, Team
from gecko.compose.workflow import Workflow, register_stored_type
from gecko.core.agent import Agent
from gecko.errors import CorruptCheckpointError, ModelError, UnregisteredStoredTypeError, UnstorableValueError
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.conformance.checkpoints import reseal
from gecko.testing.models import ScriptedModel
from gecko.types import AgentOutput, Message, TokenUsage


class _Crash(BaseException):
    """Stands for the worker process dying: no final snapshot."""


def _is_crash(exc: BaseException) -> bool:
    nested = getattr(exc, "exceptions", ())
    return isinstance(exc, _Crash) or (bool(nested) and all(_is_crash(inner) for inner in nested))


class _Pipeline:
    """`draft` (an agent node) -> `review` (a team node: an agent and two failing members) -> `report`."""

    def __init__(self, storage: MemoryStorage, replies: tuple[list[str], list[str]]) -> None:
        self.storage = storage
        self.drafter = ScriptedModel(replies[0])
        self.reviewer = ScriptedModel(replies[1])
        self.runs: Counter[str] = Counter()
        self.crash = False
        self.seen: list[Any] = []

    def workflow(self) -> Workflow:
        async def refuses(text: str) -> str:
            self.runs["refuses"] += 1
            raise ValueError("cannot review", 3)

        async def model_down(text: str) -> str:
            self.runs["model_down"] += 1
            raise ModelError("model down")

        team = Team(
            [Agent(self.reviewer, name="reviewer"), refuses, model_down],
            input_mapper=lambda output, index: output.content,
        )

        async def report(ctx: NodeContext) -> str:
            self.runs["report"] += 1
            if self.crash:
                raise _Crash
            self.seen.append(ctx.get_last_output())
            return "reported"

        wf = Workflow("pipeline", storage=self.storage).add_node("draft", Agent(self.drafter, name="drafter"))
        wf.add_node("review", team).add_node("report", report)
        return wf.add_edge("draft", "review").add_edge("review", "report").set_entry_point("draft")


def _member_view(member: MemberResult) -> tuple[Any, ...]:
    # Exceptions compare by identity, so a rebuilt one is compared by its type and arguments.
    error = member.error
    args = None if error is None else error.args
    return (member.result, type(error), args, member.member_index, member.status, member.latency, member.usage)


async def test_agent_and_team_outputs_come_back_with_their_exact_types_after_a_crash() -> None:
    storage = MemoryStorage()
    first = _Pipeline(storage, (["a draft"], ["looks good"]))
    first.crash = True
    try:
        await first.workflow().execute("write it", session_id="s")
    except BaseException as exc:
        if not _is_crash(exc):
            raise
    else:
        raise AssertionError("the crashing node did not stop the run")

    # The resumed process has models with no replies left: an agent that ran again would fail the run.
    second = _Pipeline(storage, ([], []))
    result = await second.workflow().resume("s")
    assert (result.output, second.runs, second.drafter.requests, second.reviewer.requests) == (
        "reported",
        Counter(report=1),
        [],
        [],
    )
    draft = result.history["draft"]
    assert type(draft) is AgentOutput
    assert draft.content == "a draft"
    assert [type(message) for message in draft.messages] == [Message, Message]
    assert type(draft.usage) is TokenUsage
    assert draft.usage.requests == 1

    [reviewed] = second.seen
    assert reviewed is result.history["review"]
    assert [type(member) for member in reviewed] == [MemberResult] * 3
    statuses = [member.status for member in reviewed]
    assert statuses == [MemberStatus.OK, MemberStatus.ERROR, MemberStatus.ERROR]
    assert type(reviewed[0].result) is AgentOutput
    assert reviewed[0].value.content == "looks good"
    assert (type(reviewed[1].error), reviewed[1].error.args) == (ValueError, ("cannot review", 3))
    assert (type(reviewed[2].error), reviewed[2].error.args) == (ModelError, ("model down",))

    # The same values as the uncrashed run held in memory.
    uncrashed = _Pipeline(MemoryStorage(), (["a draft"], ["looks good"]))
    reference = await uncrashed.workflow().execute("write it", session_id="s")
    assert result.history["draft"] == reference.history["draft"]
    # Latencies differ between the two runs; the stored one comes back as the float it was.
    assert [_member_view(member) for member in reviewed] == [
        _member_view(dataclasses.replace(member, latency=stored.latency))
        for member, stored in zip(reference.history["review"], reviewed, strict=True)
    ]
    assert all(type(member.latency) is float for member in reviewed)


async def test_a_finished_session_returns_its_stored_agent_output() -> None:
    storage = MemoryStorage()

    def workflow(replies: list[str]) -> Workflow:
        wf = Workflow("one", storage=storage).add_node("agent", Agent(ScriptedModel(replies)))
        return wf.set_entry_point("agent")

    done = await workflow(["hello"]).execute("hi", session_id="s")
    stored = await workflow([]).resume("s")
    assert type(stored.output) is AgentOutput
    assert stored.output == done.output


async def test_a_user_dict_using_the_tag_key_is_refused_and_nothing_is_lost() -> None:
    storage = MemoryStorage()
    value: dict[str, Any] = {"$gecko": "AgentOutput", "v": {"content": "forged"}}

    tagged = [True]

    async def make(ctx: NodeContext) -> Any:
        return {"rows": [value]} if tagged[0] else "fine"

    def workflow() -> Workflow:
        return Workflow("tags", storage=storage).add_node("make", make).set_entry_point("make")

    with pytest.raises(UnstorableValueError, match=r"the output of node 'make'\['rows'\]\[0\] has the key '\$gecko'"):
        await workflow().execute(session_id="s")

    async def write(ctx: NodeContext) -> None:
        ctx.state["k"] = value

    writes = Workflow("state", storage=storage).add_node("write", write).set_entry_point("write")
    with pytest.raises(UnstorableValueError, match=r"state key 'k' .* has the key '\$gecko'"):
        await writes.execute(session_id="s")
    # Nothing was lost: the node did not complete, so the session resumes with a storable output.
    tagged[0] = False
    assert (await workflow().resume("s")).output == "fine"


class City(BaseModel):
    name: str


async def test_an_agents_structured_output_comes_back_as_its_model_after_a_crash() -> None:
    storage = MemoryStorage()
    crash = [True]

    def workflow(replies: list[str]) -> Workflow:
        def after(ctx: NodeContext) -> str:
            if crash[0]:
                raise _Crash
            output = ctx.get_last_output()
            assert type(output) is AgentOutput
            assert type(output.data) is City
            return output.data.name

        agent = Agent(ScriptedModel(replies), output_type=City)
        wf = Workflow("structured", storage=storage).add_node("agent", agent).add_node("after", after)
        return wf.add_edge("agent", "after").set_entry_point("agent")

    try:
        await workflow(['{"name": "Oslo"}']).execute("where?", session_id="s")
    except BaseException as exc:
        if not _is_crash(exc):
            raise
    crash[0] = False
    # No replies left: the agent node does not run again, its model comes back from the checkpoint.
    result = await workflow([]).resume("s")
    assert (result.output, result.history["agent"].data) == ("Oslo", City(name="Oslo"))


class Unlisted(BaseModel):
    name: str


async def test_an_unregistered_model_is_refused_naming_how_to_register_it() -> None:
    wf = Workflow("models", storage=MemoryStorage()).add_node("make", lambda ctx: Unlisted(name="x"))
    with pytest.raises(
        UnstorableValueError, match=r"Unlisted\) that is not registered.*register_stored_type\(Unlisted\)"
    ):
        await wf.set_entry_point("make").execute(session_id="s")


class Shipment(BaseModel):
    item: str
    boxes: Any


async def test_a_registered_model_is_rebuilt_only_where_it_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    register_stored_type(Shipment)
    storage = MemoryStorage()
    wf = Workflow("models", storage=storage).add_node("make", lambda ctx: Shipment(item="tea", boxes=[1, 2]))
    wf.set_entry_point("make")
    done = await wf.execute(session_id="s")
    assert (await wf.resume("s")).output == done.output == Shipment(item="tea", boxes=[1, 2])

    monkeypatch.delitem(stored_types._REGISTERED, stored_types.stored_type_name(Shipment))
    with pytest.raises(
        UnregisteredStoredTypeError, match=r"Shipment model, a class not registered.*register_stored_type"
    ):
        await wf.resume("s")


async def test_a_registered_model_that_json_would_change_is_refused() -> None:
    register_stored_type(Shipment)
    wf = Workflow("models", storage=MemoryStorage()).add_node("make", lambda ctx: Shipment(item="tea", boxes=(1, 2)))
    with pytest.raises(UnstorableValueError, match=r"Shipment\) reads back from its JSON as a different value"):
        await wf.set_entry_point("make").execute(session_id="s")


async def test_a_member_error_of_a_user_class_is_refused_naming_the_workaround() -> None:
    class Mine(Exception):
        pass

    async def fails(value: Any) -> None:
        raise Mine("no")

    wf = Workflow("team", storage=MemoryStorage()).add_node("team", Team([fails])).set_entry_point("team")
    with pytest.raises(UnstorableValueError, match=r"\[0\]\.error is a .*Mine, which a checkpoint cannot rebuild"):
        await wf.execute(1, session_id="s")


@pytest.mark.parametrize(
    ("tagged", "problem"),
    [
        ({"$gecko": "os.system", "v": {}}, "'os.system' is not one of Gecko's stored types"),
        ({"$gecko": "error", "v": {"type": "subprocess.CalledProcessError", "args": []}}, "no Gecko or builtin error"),
        ({"$gecko": "AgentOutput", "v": {"content": 3}}, "AgentOutput that cannot be rebuilt"),
        ({"$gecko": "MemberResult", "v": {"result": 1}}, "MemberResult that cannot be rebuilt"),
        ({"$gecko": "AgentOutput", "v": {}, "x": 1}, "malformed Gecko value"),
        ({"$gecko": 7, "v": {}}, "malformed Gecko value"),
    ],
)
async def test_a_stored_tag_naming_no_gecko_type_is_refused(tagged: dict[str, Any], problem: str) -> None:
    storage = MemoryStorage()
    ran: list[str] = []

    async def first(ctx: NodeContext) -> str:
        ran.append("first")
        return "out"

    async def second(ctx: NodeContext) -> str:
        raise RuntimeError("stop")

    def workflow() -> Workflow:
        wf = Workflow("tampered", storage=storage).add_node("first", first).add_node("second", second)
        return wf.add_edge("first", "second").set_entry_point("first")

    with pytest.raises(Exception, match="stop"):
        await workflow().execute(session_id="s")
    where = "gecko/workflow/tampered/s/snapshot"
    snapshot = await storage.get(where)
    assert isinstance(snapshot, dict)
    snapshot["history"]["latest"]["first"] = tagged
    await reseal(storage, where, snapshot)
    with pytest.raises(CorruptCheckpointError, match=problem):
        await workflow().resume("s")
    assert ran == ["first"]


async def test_gecko_types_anywhere_in_an_output_or_the_state_come_back_exactly() -> None:
    from gecko.core.state import PausedOutput, PendingApproval
    from gecko.types import ImagePart, TextPart, ToolCall

    storage = MemoryStorage()
    value = {
        "usage": TokenUsage(input_tokens=3, output_tokens=4, total_tokens=7, requests=1),
        "messages": [
            Message.user([TextPart(text="look"), ImagePart(url="https://example.com/a.png", detail="low")]),
            Message.assistant(tool_calls=[ToolCall(id="c1", name="pay", arguments='{"amount": 1}')]),
        ],
        "paused": PausedOutput(
            content="",
            data={"nested": [AgentOutput(content="inner", data=[1, "two", None])]},
            session_id="pay",
            pending_approvals=[PendingApproval(call_id="c1", tool_name="pay", arguments={"amount": 1})],
        ),
    }
    ran: Counter[str] = Counter()

    async def make(ctx: NodeContext) -> dict[str, Any]:
        ran["make"] += 1
        ctx.state["kept"] = value["paused"]
        return value

    async def fail(ctx: NodeContext) -> None:
        ran["fail"] += 1
        if ran["fail"] == 1:
            raise RuntimeError("first try fails")

    def workflow() -> Workflow:
        wf = Workflow("anywhere", storage=storage).add_node("make", make).add_node("fail", fail)
        return wf.add_edge("make", "fail").set_entry_point("make")

    with pytest.raises(Exception, match="first try fails"):
        await workflow().execute(session_id="s")
    result = await workflow().resume("s")
    assert ran == Counter(make=1, fail=2)
    stored = result.history["make"]
    assert stored == value
    assert stored is not value
    assert type(stored["usage"]) is TokenUsage
    assert [type(message) for message in stored["messages"]] == [Message, Message]
    assert type(stored["paused"]) is PausedOutput
    assert type(stored["paused"].data["nested"][0]) is AgentOutput
    assert type(result.state["kept"]) is PausedOutput
    assert result.state["kept"] == value["paused"]


class Verdict(BaseModel):
    ok: bool


async def test_a_team_members_structured_output_is_stored_and_read_back() -> None:
    storage = MemoryStorage()

    def workflow(replies: list[str]) -> Workflow:
        team = Team([Agent(ScriptedModel(replies), output_type=Verdict)])
        return Workflow("team-structured", storage=storage).add_node("team", team).set_entry_point("team")

    done = await workflow(['{"ok": true}']).execute("judge", session_id="s")
    # A finished session returns what its checkpoint holds: the model the member's agent produced.
    stored = await workflow([]).resume("s")
    assert [member.value.data for member in stored.output] == [Verdict(ok=True)]
    assert stored.output == done.output
