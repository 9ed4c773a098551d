"""MCP servers as tool sources for Gecko agents, over stdio and streamable HTTP (the `mcp` SDK 2.x).

```python
from gecko import Agent
from gecko_tools_mcp import MCPServerHTTP, MCPServerStdio

files = MCPServerStdio("python", ["files_server.py"], prefix="files")
search = MCPServerHTTP("http://127.0.0.1:8000/mcp", requires_approval={"delete"})
async with Agent(model, tools=[files, search]) as agent:  # connects at the first run
    await agent.run("...")
```

The `mcp` SDK is imported when a server connects, not at `import gecko_tools_mcp`.
"""

from gecko_tools_mcp._server import (
    MAX_DESCRIPTION_CHARS,
    MAX_SCHEMA_CHARS,
    MCPServer,
    MCPServerHTTP,
    MCPServerStdio,
    ServerOptions,
)
from gecko_tools_mcp._version import __version__

__all__ = (
    "MAX_DESCRIPTION_CHARS",
    "MAX_SCHEMA_CHARS",
    "MCPServer",
    "MCPServerHTTP",
    "MCPServerStdio",
    "ServerOptions",
    "__version__",
)
