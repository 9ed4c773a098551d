"""Whatever a tool returns or raises, the run goes on with a bounded text observation; an
exception whose message cannot be read is reported typed wherever it surfaces.

The class: any value (JSON-like or not, nested, huge, with control characters, objects whose
`__str__`/`__repr__` fail) returned or raised by the tool. The run ends with the model's answer,
the observation is a string within the toolbox bound, and no exception escapes untyped.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gecko.compose.nodes import NodeContext
from gecko.compose.team import Team
from gecko.compose.workflow import Workflow
from gecko.core.agent import Agent
from gecko.core.toolbox import tool
from gecko.errors import TeamError, WorkflowError
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import ToolCall


class Unprintable:
    def __str__(self) -> str:
        raise ValueError("no str")

    def __repr__(self) -> str:
        raise ValueError("no repr")


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise ZeroDivisionError("no message")


class NotAStringError(Exception):
    def __str__(self) -> Any:
        return 42


_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=20) | st.sampled_from(["\x00", "\x1b[2J", "\u202e"])
_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | _text
    | st.binary(max_size=8)
    | st.builds(Unprintable)
    | st.builds(lambda: 10**5000)
    | st.builds(lambda: "x" * 300_000)
)
_keys = _text | st.integers() | st.tuples(st.integers(), st.integers()) | st.none()
values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.sets(st.integers(), max_size=3)
        | st.dictionaries(_keys, inner, max_size=3)
    ),
    max_leaves=10,
)
errors = st.sampled_from([UnprintableError, NotAStringError]).map(lambda kind: kind()) | st.builds(
    RuntimeError, st.sampled_from(["\x00\x1b", "x" * 100_000, "line\nsecond"])
)


@given(outcome=values | errors)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
async def test_any_tool_result_or_error_becomes_a_bounded_observation(outcome: Any) -> None:
    @tool
    async def probe(n: int) -> Any:
        """Return the outcome."""
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    call = ToolCall(id="c1", name="probe", arguments='{"n": 1}')
    output = await Agent(ScriptedModel([tool_calls_reply(call), "done"]), tools=[probe]).run("go")
    observation = output.messages[-2]
    assert output.content == "done"
    assert isinstance(observation.text, str)
    assert len(observation.text) < 60_000


async def test_an_unprintable_error_in_a_node_or_member_is_reported_typed() -> None:
    def node(ctx: NodeContext) -> None:
        raise UnprintableError()

    async def member(value: Any) -> None:
        raise UnprintableError()

    with pytest.raises(WorkflowError, match="UnprintableError: <UnprintableError whose message cannot be read>"):
        await Workflow("w").add_node("a", node).set_entry_point("a").execute(1)
    [result] = await Team([member]).run(1)
    with pytest.raises(TeamError, match="cannot be read"):
        _ = result.value
    events = Workflow("w").add_node("team", Team([member])).set_entry_point("team").stream(1)
    finished = [event async for event in events][-1]
    assert finished.data["output"][0]["error"] == "UnprintableError: <UnprintableError whose message cannot be read>"
