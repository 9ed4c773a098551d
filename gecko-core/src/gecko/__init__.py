"""Gecko: an async-first AI agent framework.

This module is the stable L1 API. Names resolve on first access, so `import gecko` loads no
engine, no plugin and no provider SDK.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from gecko._version import __version__

if TYPE_CHECKING:
    from gecko.compose.nodes import Next, step
    from gecko.compose.team import ExecutionStrategy, MemberResult, Team
    from gecko.compose.workflow import CheckpointStrategy, Workflow
    from gecko.core.agent import Agent
    from gecko.core.builder import AgentBuilder
    from gecko.core.memory import SummaryTokenMemory, TokenMemory
    from gecko.core.structure import StructureEngine
    from gecko.core.toolbox import tool
    from gecko.types import AgentOutput, Message, Role, TokenUsage

__all__ = (
    "__version__",
    "Agent",
    "AgentBuilder",
    "tool",
    "Message",
    "Role",
    "AgentOutput",
    "TokenUsage",
    "TokenMemory",
    "SummaryTokenMemory",
    "StructureEngine",
    "Workflow",
    "step",
    "Next",
    "Team",
    "MemberResult",
    "ExecutionStrategy",
    "CheckpointStrategy",
)

_LOCATIONS = {
    "Agent": "gecko.core.agent",
    "AgentBuilder": "gecko.core.builder",
    "tool": "gecko.core.toolbox",
    "Message": "gecko.types",
    "Role": "gecko.types",
    "AgentOutput": "gecko.types",
    "TokenUsage": "gecko.types",
    "TokenMemory": "gecko.core.memory",
    "SummaryTokenMemory": "gecko.core.memory",
    "StructureEngine": "gecko.core.structure",
    "Workflow": "gecko.compose.workflow",
    "CheckpointStrategy": "gecko.compose.workflow",
    "step": "gecko.compose.nodes",
    "Next": "gecko.compose.nodes",
    "Team": "gecko.compose.team",
    "MemberResult": "gecko.compose.team",
    "ExecutionStrategy": "gecko.compose.team",
}


def __getattr__(name: str) -> Any:
    location = _LOCATIONS.get(name)
    if location is None:
        raise AttributeError(f"module 'gecko' has no attribute {name!r}")
    value = getattr(import_module(location), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
