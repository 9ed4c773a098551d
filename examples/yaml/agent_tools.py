"""The tool of `agent.yaml`."""

from __future__ import annotations

from gecko.core.toolbox import tool


@tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b
