"""Servers whose replies break JSON-RPC or MCP: every listing and call ends in a typed error within its
timeout, the session stays usable where the protocol allows, and no server process is left behind."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import anyio
import pytest
from gecko_tools_mcp import MCPServerStdio

from gecko.core.toolbox import ToolBox
from gecko.errors import ConfigurationError, ToolExecutionError, ToolServerError, ToolTimeoutError
from gecko.types import ToolCall

HOSTILE_SCRIPT = Path(__file__).with_name("mcp_hostile_server.py")
BOUND = 60  # seconds: far above every timeout below; reaching it means something hung


def hostile(mode: str, pid_file: Path | None = None) -> MCPServerStdio:
    args = [str(HOSTILE_SCRIPT), mode, *([str(pid_file)] if pid_file else [])]
    return MCPServerStdio(sys.executable, args, timeout=3, connect_timeout=5)


# Messages that break JSON-RPC: the SDK drops them, so before the guard these waited for the timeout
# (and failed with the timeout's message).
NOT_JSON_RPC = "it sent what is not a JSON-RPC 2.0 message"
WRONG_VERSION = "jsonrpc: Input should be '2.0', got '1.0'"
UNKNOWN_ID = "it answered request id 987654, which was never sent or was answered already"


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [
        ("no_schema", ToolServerError, "failed to list its tools: 1 validation error"),
        ("null_schema", ToolServerError, "failed to list its tools"),
        ("list_schema", ToolServerError, "failed to list its tools"),
        ("bad_properties", ToolServerError, "failed to list its tools"),
        ("int_name", ToolServerError, "failed to list its tools"),
        ("no_name", ToolServerError, "failed to list its tools"),
        ("list_tools_not_list", ToolServerError, "failed to list its tools"),
        ("list_not_json", ToolServerError, "failed to list its tools: it sent what is not a JSON-RPC 2.0 message"),
        ("list_error", ToolServerError, "failed to list its tools: listing broke"),
        ("empty_names", ConfigurationError, "MCP tools '' and '' of .* both become '_'"),
        ("long_names", ConfigurationError, "both become 'x{64}'"),
        (
            "banner",
            ToolServerError,
            f"cannot connect to MCP server .*: {NOT_JSON_RPC} \\(Invalid JSON: expected value at line 1",
        ),
        (
            "init_result_not_object",
            ToolServerError,
            f"cannot connect to MCP server .*: {NOT_JSON_RPC} \\(.*, got \\{{'jsonrpc'",
        ),
        ("list_result_null", ToolServerError, f"failed to list its tools: {NOT_JSON_RPC} \\(.*, got .*'result': None"),
        ("list_error_bad_code", ToolServerError, f"failed to list its tools: {NOT_JSON_RPC}"),
        ("list_wrong_version", ToolServerError, f"failed to list its tools: {NOT_JSON_RPC} \\(.*{WRONG_VERSION}"),
        (
            "list_error_null_id",
            ToolServerError,
            "failed to list its tools: it answered no request with an error: 'Parse error'",
        ),
        ("init_hang", ToolServerError, "did not answer within 5 s"),
        ("description_not_text", ToolServerError, "failed to list its tools: 1 validation error for ListToolsResult"),
        ("list_deep_schema", ToolServerError, f"failed to list its tools: {NOT_JSON_RPC} \\(.*recursion limit"),
    ],
)
async def test_broken_handshakes_and_listings_are_typed_errors(
    tmp_path: Path, mode: str, error: type[Exception], message: str
) -> None:
    pid_file = tmp_path / "pid"
    box = ToolBox([hostile(mode, pid_file)])
    with anyio.fail_after(BOUND):
        with pytest.raises(error, match=message):
            await box.open()
        await box.aclose()
    assert gone(int(pid_file.read_text())), "the server process was stopped"


@pytest.mark.parametrize(
    ("mode", "error", "content"),
    [
        ("call_exit", ToolExecutionError, "closed the connection during the call"),
        ("call_hang", ToolTimeoutError, "did not finish within 3 s"),
        ("call_string_id", None, "as string"),  # "3" for 3 is the same id to the SDK, and to the guard
        ("call_content_not_list", ToolExecutionError, "MCP tool 'fine' returned a result that breaks the protocol"),
        ("call_unknown_block", ToolExecutionError, "MCP tool 'fine' returned a result that breaks the protocol"),
        ("call_error_reply", ToolExecutionError, "MCP tool 'fine' failed: no such tool"),
        ("call_is_error_no_content", ToolExecutionError, "MCP tool 'fine' reported an error: (no text)"),
        ("call_image", None, "[image content (image/png) not shown]"),
        ("call_structured_only", None, '{"a": [1, 2]}'),
        ("call_text_not_string", ToolExecutionError, "MCP tool 'fine' returned a result that breaks the protocol"),
        ("call_is_error_not_bool", ToolExecutionError, "MCP tool 'fine' reported an error: (no text)"),
        ("call_huge", None, "[tool result truncated: showing the first 50000 of 3000000 characters]"),
    ],
)
async def test_broken_call_replies_are_typed_errors(mode: str, error: type[Exception] | None, content: str) -> None:
    box = ToolBox([hostile(mode)])
    with anyio.fail_after(BOUND):
        await box.open()
        result = await box.execute(ToolCall(id="1", name="fine", arguments="{}"))
        await box.aclose()
    assert type(result.error) is error if error else result.error is None, result.content
    assert content in result.content


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("call_not_json", f"{NOT_JSON_RPC} \\(Invalid JSON: expected value at line 1 column 1\\)"),
        ("call_result_null", f"{NOT_JSON_RPC} \\(.*, got .*'result': None"),
        ("call_wrong_version", f"{NOT_JSON_RPC} \\(.*{WRONG_VERSION}"),
        ("call_no_version", f"{NOT_JSON_RPC} \\(.*jsonrpc: Field required, got \\{{'id'"),
        ("call_wrong_id", UNKNOWN_ID),
        ("call_error_number_message", f"{NOT_JSON_RPC} \\(.*got .*'error': \\{{'code': -32000"),
        ("call_error_object_message", f"{NOT_JSON_RPC} \\(.*got .*'error': \\{{'code': -32000"),
        ("call_error_no_message", f"{NOT_JSON_RPC} \\(.*got .*'error': \\{{'code': -32000"),
    ],
)
async def test_a_call_reply_that_breaks_json_rpc_fails_at_once_and_the_next_call_reconnects(
    tmp_path: Path, mode: str, message: str
) -> None:
    pid_file = tmp_path / "pid"
    server = MCPServerStdio(sys.executable, [str(HOSTILE_SCRIPT), mode, str(pid_file)], timeout=600)
    box = ToolBox([server])
    with anyio.fail_after(BOUND):
        await box.open()
        first = await box.execute(ToolCall(id="1", name="fine", arguments="{}"))
        second = await box.execute(ToolCall(id="2", name="fine", arguments="{}"))
        await box.aclose()
    for result in (first, second):
        assert type(result.error) is ToolExecutionError
        cause = result.error.__cause__
        assert type(cause) is ToolServerError
        assert re.search(f"broke the protocol during the call: {message}", str(cause)), cause
        assert "may or may not have run, the next call reconnects" in str(cause)
    pids = [int(line) for line in pid_file.read_text().split()]
    assert len(pids) == 2, "the second call ran on a new server process"
    assert all(map(gone, pids)), "both server processes were stopped"


async def test_a_late_reply_to_a_call_given_up_on_keeps_the_session(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    server = MCPServerStdio(sys.executable, [str(HOSTILE_SCRIPT), "late_reply", str(pid_file)])
    box = ToolBox([server])
    with anyio.fail_after(BOUND):
        await box.open()
        with anyio.move_on_after(0.2) as gave_up:  # the server answers only once the client has given up
            await server._call("slow", {})
        assert gave_up.cancelled_caught
        after = await box.execute(ToolCall(id="2", name="fine", arguments="{}"))
        await box.aclose()
    assert after.error is None, after.content
    assert after.content == "done"
    assert len(pid_file.read_text().split()) == 1, "the late reply did not break the session"


async def test_a_caller_cancelled_while_connecting_leaves_no_server(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    server = MCPServerStdio(sys.executable, [str(HOSTILE_SCRIPT), "init_hang", str(pid_file)], connect_timeout=600)
    box = ToolBox([server])
    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as group:
            group.start_soon(box.open)
            # cancel once the process runs and waits for the handshake
            while not pid_file.exists():  # noqa: ASYNC110 - a file another process writes has no event
                await anyio.sleep(0.05)
            group.cancel_scope.cancel()
        await box.aclose()
    assert gone(int(pid_file.read_text()))
