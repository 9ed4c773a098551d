"""A real MCP server for the tests, built with the `mcp` SDK: `python mcp_test_server.py stdio|http PORT`."""

from __future__ import annotations

import os
import sys

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.utilities.types import Image

server = MCPServer("gecko-test", log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str, repeat: int = 1) -> str:
    """Repeat a text."""
    return text * repeat


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep, then say so."""
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def fail(reason: str) -> str:
    """Always fails with `reason`."""
    raise ValueError(reason)


@server.tool()
def crash() -> str:
    """Kills the server process in the middle of the call."""
    sys.stdout.flush()
    os._exit(3)


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool(description="Look a word up. " + "Very long description. " * 200)
def lookup(word: str) -> str:
    return word.upper()


@server.tool(name="files.read")
def read_file(path: str) -> str:
    """A tool whose name Gecko must map (dots are not allowed in its tool names)."""
    return f"contents of {path}"


@server.tool()
def picture() -> Image:
    """An image result, which the model is told about but does not read."""
    return Image(data=b"\x89PNG fake", format="png")


if __name__ == "__main__":
    transport = sys.argv[1]
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
