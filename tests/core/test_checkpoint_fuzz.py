"""Hostile checkpoints: whatever is stored under a session's keys, a resume ends typed.

This extends the storage conformance fuzzing (`gecko.testing.conformance.checkpoints`, a plain
ledger workflow) to the values only the core's nodes store: Gecko's tagged types, merge logs,
an interrupt, an agent's paused session and a team's approval pause.

The class, not a list: any path of a stored record replaced by any JSON value, deleted, or cut
short, stored with a valid seal (so validation past the seal is exercised) or with the seal it
had (so the seal check is), and whole records replaced by other JSON. Every resume ends with a
result or a `GeckoError`, within a bound: never a KeyError, TypeError, RecursionError or a hang.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gecko.compose.nodes import NodeContext
from gecko.compose.team import Team
from gecko.compose.workflow import Workflow
from gecko.core.agent import Agent
from gecko.core.toolbox import tool
from gecko.errors import GeckoError
from gecko.plugins.models import ModelRequest
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.conformance.checkpoints import _paths, reseal
from gecko.testing.models import FunctionModel, Reply, ScriptedModel, tool_calls_reply
from gecko.types import Role, ToolCall

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
# Values that look like Gecko's own: tags, statuses, node names, record shapes.
shaped_values = st.sampled_from(
    [
        {"$gecko": "AgentOutput", "v": {}},
        {"$gecko": "MemberResult", "v": {"result": 1}},
        {"$gecko": "error", "v": {"type": "builtins.ValueError", "args": "x"}},
        {"$gecko": "model", "v": {"type": "os:system", "json": {}}},
        {"$gecko": "PausedOutput", "v": {"session_id": 3}},
        "pending",
        "completed",
        "start",
        "nowhere",
        -1,
        2**70,
        [["start", None]],
        {"node": "ask", "payload": {"approval": {"results": [1]}}},
        {"node": "ask", "payload": {"approval": {"session_id": 7}}},
        {"n": "start", "o": None},
        [1, {"n": "start", "o": None}],
    ]
)


def _interrupting(storage: MemoryStorage) -> Workflow:
    """start -> agent -> team -> ask, which interrupts: state, merge logs, Gecko's types, a pause."""

    def start(ctx: NodeContext) -> str:
        ctx.state["items"] = [1, 2]
        ctx.state["meta"] = {"k": "v"}
        return "s"

    def ask(ctx: NodeContext) -> Any:
        return ctx.interrupt({"q": ctx.get_last_output() is not None})

    def refuses(value: Any) -> None:
        raise ValueError("no", 3)

    wf = Workflow("fuzz", storage=storage, merge_rules={"items": "append"}, lease_ttl=None)
    wf.add_node("start", start).add_node("agent", Agent(ScriptedModel(["hello"] * 3)))
    wf.add_node("team", Team([lambda value: 1, refuses])).add_node("ask", ask)
    return wf.add_edge("start", "agent").add_edge("agent", "team").add_edge("team", "ask").set_entry_point("start")


def _approving(storage: MemoryStorage) -> Workflow:
    """A team node paused on its agent member's tool approval."""

    @tool(requires_approval=True)
    async def pay(amount: int) -> str:
        """Pay an amount."""
        return f"paid {amount}"

    def payer_model(request: ModelRequest) -> Reply:
        if request.messages[-1].role is Role.TOOL:
            return "Paid."
        return tool_calls_reply(ToolCall(id="call-pay", name="pay", arguments='{"amount": 30}'))

    payer = Agent(FunctionModel(payer_model), tools=[pay], storage=storage)
    team = Team([payer, Agent(ScriptedModel(["Filed."] * 2))])
    return Workflow("fuzz-team", storage=storage, lease_ttl=None).add_node("team", team).set_entry_point("team")


WORKFLOWS = {"interrupt": (_interrupting, "yes"), "approval": (_approving, {"call-pay": True})}
_SESSIONS: dict[str, dict[str, Any]] = {}


async def _paused_sessions() -> None:
    for kind, (build, _) in WORKFLOWS.items():
        storage = MemoryStorage()
        assert (await build(storage).execute("go", session_id="s")).paused
        _SESSIONS[kind] = {key: await storage.get(key) for key in await storage.list_keys()}


def _mutated(record: Any, path: tuple[Any, ...], how: str, new: Any) -> Any:
    if not path:
        return new
    parent = record
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "truncate" and isinstance(parent[last], (list, str)):
        parent[last] = parent[last][: len(parent[last]) // 2]
    else:
        parent[last] = new
    return record


async def _copy(session: dict[str, Any]) -> MemoryStorage:
    """A new storage holding `session`, each record sealed for the version it has there."""
    storage = MemoryStorage()
    for name, value in session.items():
        await reseal(storage, name, copy.deepcopy(value))
    return storage


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, str, tuple[Any, ...], str, Any, bool]:
    kind = draw(st.sampled_from(sorted(_SESSIONS)))
    key = draw(st.sampled_from(sorted(_SESSIONS[kind])))
    path = draw(st.sampled_from([(), *_paths(_SESSIONS[kind][key])]))
    how = draw(st.sampled_from(["replace", "delete", "truncate"])) if path else "replace"
    new = draw(st.one_of(json_values, shaped_values))
    return kind, key, path, how, new, draw(st.booleans())


@pytest.fixture(scope="module", autouse=True)
def _sessions() -> None:
    anyio.run(_paused_sessions)


@given(mutation=mutations())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
async def test_any_tampered_checkpoint_resumes_or_fails_typed(
    mutation: tuple[str, str, tuple[Any, ...], str, Any, bool],
) -> None:
    kind, key, path, how, new, sealed = mutation
    storage = await _copy(_SESSIONS[kind])
    record = _mutated(copy.deepcopy(_SESSIONS[kind][key]), path, how, copy.deepcopy(new))
    if sealed and isinstance(record, dict):
        await reseal(storage, key, record, version_bound=not key.startswith("gecko/attempts/"))
    else:
        await storage.set(key, record)
    build, value = WORKFLOWS[kind]
    with anyio.fail_after(20), contextlib.suppress(GeckoError):
        await build(storage).resume("s", value)


@pytest.mark.parametrize("kind", sorted(WORKFLOWS))
async def test_the_untampered_sessions_resume_to_completion(kind: str) -> None:
    storage = await _copy(_SESSIONS[kind])
    build, value = WORKFLOWS[kind]
    assert (await build(storage).resume("s", value)).status == "completed"
