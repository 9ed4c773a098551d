"""Session ids and workflow names are parts of checkpoint keys: whatever text names a session, its
run touches its own keys alone, or the id is refused typed before anything is written."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gecko import Workflow
from gecko.compose.nodes import NodeContext
from gecko.errors import ConfigurationError, InvalidKeyError
from gecko.plugins.storage.memory import MemoryStorage


def _workflow(storage: MemoryStorage, name: str = "flow") -> Workflow:
    async def echo(ctx: NodeContext) -> object:
        return ctx.input

    return Workflow(name, storage=storage).add_node("a", echo).set_entry_point("a")


@given(session=st.text(alphabet="a/.-_ *%\\é", max_size=12) | st.sampled_from(["journal", "snapshot", "0"]))
async def test_any_session_id_runs_apart_from_every_other_session_or_is_refused(session: str) -> None:
    storage = MemoryStorage()
    assert (await _workflow(storage).execute("first", session_id="a")).output == "first"
    keys = await storage.list_keys()
    if session and "/" not in session:
        assert (await _workflow(storage).execute("second", session_id=session)).output == "second"
    else:
        with pytest.raises(InvalidKeyError, match="a session id must be non-empty text without '/'"):
            await _workflow(storage).execute("second", session_id=session)
        assert await storage.list_keys() == keys, "a refused session id wrote something"
    if session != "a":
        assert (await _workflow(storage).resume("a")).output == "first"


@pytest.mark.parametrize("session", ["", "a/journal", "a/b/c", "/"])
async def test_a_session_id_that_is_no_single_key_part_is_refused_on_every_entry(session: str) -> None:
    workflow = _workflow(MemoryStorage())
    for run in (workflow.execute("x", session_id=session), workflow.resume(session)):
        with pytest.raises(InvalidKeyError, match="a session id must be non-empty text without '/'"):
            await run


@pytest.mark.parametrize("name", ["", "flow/a", "/"])
def test_a_workflow_name_that_is_no_single_key_part_is_a_configuration_error(name: str) -> None:
    with pytest.raises(ConfigurationError, match="a workflow name must be non-empty text without '/'"):
        Workflow(name)
