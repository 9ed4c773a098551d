"""MCP servers as agent tools, against real servers built with the `mcp` SDK.

`mcp_test_server.py` runs as a subprocess over stdio, and over streamable HTTP on a loopback port.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from gecko_tools_mcp import MAX_DESCRIPTION_CHARS, MCPServerHTTP, MCPServerStdio

from gecko import Agent, Team
from gecko.core.state import PausedOutput
from gecko.core.toolbox import ToolBox
from gecko.errors import ConfigurationError, ToolArgumentsError, ToolServerError
from gecko.plugins.models import ModelRequest
from gecko.testing.models import FunctionModel, Reply, ScriptedModel, tool_calls_reply
from gecko.testing.processes import ServerProcess, free_port, port_accepts, refused_port
from gecko.types import Role, ToolCall

SERVER_SCRIPT = Path(__file__).with_name("mcp_test_server.py")


class HttpMCPServer(ServerProcess):
    """The test server over streamable HTTP; restartable on the same port."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        super().__init__(
            [sys.executable, str(SERVER_SCRIPT), "http", str(self.port)],
            log=log,
            ready=lambda: port_accepts(self.port),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[HttpMCPServer]:
    with HttpMCPServer(tmp_path / "mcp-http.log") as server:
        yield server


@pytest.fixture
def stdio_command() -> tuple[str, list[str]]:
    return sys.executable, [str(SERVER_SCRIPT), "stdio"]


def tool_results(request: ModelRequest) -> list[str]:
    """The tool results the model reads in `request`, in order."""
    return [str(message.content) for message in request.messages if message.role is Role.TOOL]


def calls_then_echo(*calls: tuple[str, dict[str, Any]]) -> FunctionModel:
    """A model that asks for `calls` in one turn, then answers with the tool results it read as JSON."""

    def respond(request: ModelRequest) -> Reply:
        results = tool_results(request)
        if not results:
            return tool_calls_reply(*((name, json.dumps(arguments)) for name, arguments in calls))
        return json.dumps(results)

    return FunctionModel(respond)


async def answer(agent: Agent, question: str = "go") -> list[str]:
    output = await agent.run(question)
    return list(json.loads(output.content))


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_for_exit(pid: int) -> None:
    """Wait until process `pid` is gone (a closed stdio server exits within seconds)."""
    with anyio.fail_after(10):
        while process_alive(pid):  # noqa: ASYNC110 - another process's exit has no event to wait on
            await anyio.sleep(0.05)


async def test_stdio_and_http_servers_serve_one_run(
    stdio_command: tuple[str, list[str]], http_server: HttpMCPServer
) -> None:
    command, args = stdio_command
    local = MCPServerStdio(command, args, prefix="local")
    remote = MCPServerHTTP(http_server.url, prefix="remote")
    model = calls_then_echo(("local_add", {"a": 2, "b": 3}), ("remote_echo", {"text": "ab", "repeat": 2}))
    async with Agent(model, tools=[local, remote]) as agent:
        assert await answer(agent) == ["5", "abab"]
        names = set(agent.toolbox.names)
    assert {"local_add", "local_pid", "remote_add", "remote_echo", "remote_files_read"} <= names
    first_request = model.requests[0]
    add = next(tool for tool in first_request.tools if tool.name == "local_add")
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert add.parameters["required"] == ["a", "b"]


async def test_the_agent_closes_the_server_process(stdio_command: tuple[str, list[str]]) -> None:
    command, args = stdio_command
    server = MCPServerStdio(command, args)
    async with Agent(calls_then_echo(("pid", {})), tools=[server]) as agent:
        (pid,) = await answer(agent)
        assert process_alive(int(pid))
        assert "pid" in agent.toolbox
    await wait_for_exit(int(pid))
    assert "pid" not in agent.toolbox  # the server's tools left with its connection


async def test_arguments_are_validated_strictly_before_the_server_sees_them(
    stdio_command: tuple[str, list[str]],
) -> None:
    command, args = stdio_command
    model = calls_then_echo(
        ("add", {"a": "1", "b": 2}),  # a string is not an integer, even one that looks like it
        ("add", {"a": 1, "b": 2, "c": 3}),  # an argument the schema does not name
        ("echo", {"repeat": 2}),  # a required argument missing
    )
    async with Agent(model, tools=[MCPServerStdio(command, args)]) as agent:
        results = await answer(agent)
    assert all(result.startswith("Error: Invalid arguments for tool") for result in results), results
    assert "a: '1' is not of type 'integer'" in results[0]
    assert "Additional properties are not allowed ('c' was unexpected)" in results[1]
    assert "'text' is a required property" in results[2]


async def test_a_repeated_key_is_refused(stdio_command: tuple[str, list[str]]) -> None:
    command, args = stdio_command
    toolbox = ToolBox([MCPServerStdio(command, args)])
    await toolbox.open()
    try:
        result = await toolbox.execute(ToolCall(id="1", name="add", arguments='{"a": 1, "a": 5, "b": 2}'))
        assert result.is_error
        assert "a key appears twice" in result.content
        assert (await toolbox.execute(ToolCall(id="2", name="add", arguments="[1, 2]"))).content.endswith(
            "expected a JSON object of arguments, got list."
        )
    finally:
        await toolbox.aclose()


@pytest.mark.parametrize(
    "arguments",
    ['{"seconds": NaN}', '{"seconds": 1e400}', '{"seconds": -Infinity}', '{"text": "\\ud800"}', '{"text": "\ud800"}'],
    ids=["NaN", "an overflowing float", "-Infinity", "a lone surrogate escape", "a raw lone surrogate"],
)
async def test_arguments_json_cannot_carry_are_refused_and_the_session_stays(
    stdio_command: tuple[str, list[str]], arguments: str
) -> None:
    # Before: a non-finite number reached the server as null, and a lone surrogate, which the
    # transport cannot encode, closed the session (and failed every call in flight on it).
    command, args = stdio_command
    toolbox = ToolBox([MCPServerStdio(command, args)])
    await toolbox.open()
    try:
        before = await toolbox.execute(ToolCall(id="1", name="pid", arguments="{}"))
        name = "sleep" if "seconds" in arguments else "echo"
        refused = await toolbox.execute(ToolCall(id="2", name=name, arguments=arguments))
        after = await toolbox.execute(ToolCall(id="3", name="pid", arguments="{}"))
    finally:
        await toolbox.aclose()
    assert isinstance(refused.error, ToolArgumentsError), refused.content
    assert refused.content.startswith(f"Error: Invalid arguments for tool {name!r}")
    assert (after.content, after.is_error) == (before.content, False)


async def test_tool_errors_and_timeouts_reach_the_model(http_server: HttpMCPServer) -> None:
    server = MCPServerHTTP(http_server.url, timeout=4)  # long enough for a quick call on a busy machine
    model = calls_then_echo(("fail", {"reason": "disk full"}), ("sleep", {"seconds": 30}), ("add", {"a": 1, "b": 1}))
    async with Agent(model, tools=[server]) as agent:
        with anyio.fail_after(60):
            failed, slept, added = await answer(agent)
        assert failed.startswith("Error: Tool 'fail' failed")
        assert "reported an error" in failed
        assert "did not finish within 4 s" in slept
        assert added == "2"
        # The cancelled call left the session usable, for this agent and another one sharing it.
        async with Agent(calls_then_echo(("add", {"a": 2, "b": 2})), tools=[server]) as other:
            assert await answer(other) == ["4"]


async def test_server_death_mid_call_fails_that_call_and_the_next_reconnects(
    stdio_command: tuple[str, list[str]],
) -> None:
    command, args = stdio_command
    script: list[Reply] = [
        tool_calls_reply(("pid", "{}")),
        "first",
        tool_calls_reply(("crash", "{}")),
        "crashed",
        tool_calls_reply(("pid", "{}")),
        "second",
    ]
    model = ScriptedModel(script)
    async with Agent(model, tools=[MCPServerStdio(command, args)]) as agent:
        await agent.run("pid")
        first_pid = int(tool_results(model.requests[1])[-1])
        await agent.run("crash")
        crashed = tool_results(model.requests[3])[-1]
        assert "closed the connection during the call" in crashed
        await agent.run("pid again")
        second_pid = int(tool_results(model.requests[5])[-1])
    assert second_pid != first_pid
    assert not process_alive(first_pid)


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_a_restarted_http_server_is_reconnected(http_server: HttpMCPServer, protocol: str) -> None:
    # Modern servers keep no session; a legacy one forgets its session when it restarts (HTTP 404),
    # which says the call never ran: it is sent again on a new session.
    server = MCPServerHTTP(http_server.url, protocol=protocol)
    model = calls_then_echo(("pid", {}))
    async with Agent(model, tools=[server]) as agent:
        (before,) = await answer(agent)
        http_server.stop()
        http_server.start()
        after = [(await answer(agent))[0] for _ in range(2)]
    assert after == [str(http_server.pid)] * 2
    assert before != after[0]


async def test_unreachable_servers_raise_typed_errors_without_secrets() -> None:
    model = ScriptedModel(["never asked"])
    missing = MCPServerStdio("/nonexistent/mcp-server-binary", connect_timeout=10)
    with pytest.raises(ToolServerError, match="cannot connect to MCP server /nonexistent/mcp-server-binary"):
        await Agent(model, tools=[missing]).run("hi")
    with refused_port() as port:
        refused = MCPServerHTTP(f"http://user:hunter2@127.0.0.1:{port}/mcp", connect_timeout=10)
        with pytest.raises(ToolServerError) as raised:
            await Agent(model, tools=[refused]).run("hi")
    assert "hunter2" not in str(raised.value)
    assert "[REDACTED]" in str(raised.value)
    assert model.requests == []
    with pytest.raises(ConfigurationError, match="must be http:// or https://"):
        MCPServerHTTP("ftp://127.0.0.1/mcp")


async def test_names_descriptions_and_other_content(stdio_command: tuple[str, list[str]]) -> None:
    command, args = stdio_command
    model = calls_then_echo(("files_read", {"path": "a.txt"}), ("picture", {}))
    async with Agent(model, tools=[MCPServerStdio(command, args)]) as agent:
        read, picture = await answer(agent)
    assert read == "contents of a.txt"
    assert picture == "[image content (image/png) not shown]"
    lookup = next(tool for tool in model.requests[0].tools if tool.name == "lookup")
    assert len(lookup.description) == MAX_DESCRIPTION_CHARS


async def test_include_and_name_clashes(stdio_command: tuple[str, list[str]]) -> None:
    command, args = stdio_command
    only = MCPServerStdio(command, args, include={"add"})
    async with Agent(ScriptedModel([]), tools=[only]) as agent:
        await agent.engine.toolbox.open()
        assert agent.toolbox.names == ("add",)

    def add(a: int, b: int) -> int:
        return a - b

    clash = MCPServerStdio(command, args)
    with pytest.raises(ConfigurationError, match=r"tools add of .* clash"):
        await Agent(ScriptedModel(["x"]), tools=[add, clash]).run("hi")


async def test_approval_holds_an_mcp_tool(stdio_command: tuple[str, list[str]]) -> None:
    command, args = stdio_command
    model = calls_then_echo(("add", {"a": 20, "b": 22}))
    async with Agent(model, tools=[MCPServerStdio(command, args, requires_approval={"add"})]) as agent:
        paused = await agent.run("add them", session_id="s1")
        assert isinstance(paused, PausedOutput)
        assert [(approval.tool_name, approval.arguments) for approval in paused.pending_approvals] == [
            ("add", {"a": 20, "b": 22})
        ]
        assert len(model.requests) == 1
        resumed = await agent.resume({paused.pending_approvals[0].call_id: True}, session_id="s1")
    assert json.loads(resumed.content) == ["42"]


async def test_one_server_serves_a_team_of_agents_in_member_tasks(stdio_command: tuple[str, list[str]]) -> None:
    command, args = stdio_command
    shared = MCPServerStdio(command, args)
    agents = [Agent(calls_then_echo(("pid", {})), tools=[shared], name=f"member{i}") for i in range(3)]
    results = await Team(agents).run("which process?")
    pids = {json.loads(result.result.content)[0] for result in results if result.result is not None}
    assert len(pids) == 1, results  # one connection, opened in one member's task, used by all
    (pid,) = pids
    for agent in agents[:-1]:
        await agent.aclose()
        assert process_alive(int(pid))  # still in use by the last agent
    await agents[-1].aclose()
    await wait_for_exit(int(pid))
