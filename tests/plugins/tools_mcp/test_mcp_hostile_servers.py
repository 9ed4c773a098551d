"""Servers that break the protocol end in typed errors, never a hang or a leaked process."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from gecko_tools_mcp import MAX_SCHEMA_CHARS, MCPServerStdio

from gecko.core.toolbox import ToolBox
from gecko.errors import ToolArgumentsError, ToolServerError
from gecko.types import ToolCall

HOSTILE_SCRIPT = Path(__file__).with_name("mcp_hostile_server.py")
BOUND = 90  # seconds: far above every timeout below; reaching it means something hung


def hostile(mode: str, **options: float) -> MCPServerStdio:
    return MCPServerStdio(sys.executable, [str(HOSTILE_SCRIPT), mode], **options)  # type: ignore[arg-type]


async def test_bytes_that_are_not_utf8_in_a_reply_are_replaced_not_fatal() -> None:
    box = ToolBox([hostile("not_utf8")])
    with anyio.fail_after(BOUND):
        await box.open()
        result = await box.execute(ToolCall(id="1", name="fine", arguments="{}"))
        await box.aclose()
    assert not result.is_error
    assert result.content == "\ufffd ok"


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("string_schema", "failed to list its tools"),
        ("huge_schema", f"longer than {MAX_SCHEMA_CHARS} characters"),
        ("exit", "cannot connect to MCP server .*: Connection closed"),
    ],
)
async def test_broken_listings_raise_tool_server_error(mode: str, message: str) -> None:
    box = ToolBox([hostile(mode)])
    with anyio.fail_after(BOUND), pytest.raises(ToolServerError, match=message):
        await box.open()


async def test_a_server_that_hangs_while_listing_times_out() -> None:
    box = ToolBox([hostile("hang", connect_timeout=3)])
    with anyio.fail_after(BOUND), pytest.raises(ToolServerError, match="did not list its tools within 3 s"):
        await box.open()


@pytest.mark.parametrize("mode", ["ref_loop", "remote_ref"])
async def test_schemas_that_cannot_check_arguments_refuse_the_call(mode: str) -> None:
    box = ToolBox([hostile(mode)])
    with anyio.fail_after(BOUND):
        await box.open()
        (name,) = (name for name in box.names if name != "fine")
        refused = await box.execute(ToolCall(id="1", name=name, arguments='{"a": 1}'))
        fine = await box.execute(ToolCall(id="2", name="fine", arguments="{}"))
        await box.aclose()
    assert isinstance(refused.error, ToolArgumentsError)
    assert "its schema cannot check them" in refused.content
    assert fine.content == "done"
