"""The stable L1 API and the seed's module paths keep working."""

from __future__ import annotations

import importlib

import pytest

import gecko

SEED_MODULES = (
    "gecko.core.agent",
    "gecko.core.builder",
    "gecko.core.engine",
    "gecko.core.memory",
    "gecko.core.structure",
    "gecko.core.prompt",
    "gecko.core.toolbox",
    "gecko.core.events",
    "gecko.compose.workflow",
    "gecko.compose.nodes",
    "gecko.compose.team",
    "gecko.plugins.models",
    "gecko.plugins.storage",
    "gecko.plugins.storage.factory",
    "gecko.plugins.knowledge",
)


@pytest.mark.parametrize("name", gecko.__all__)
def test_every_l1_name_resolves(name: str) -> None:
    assert getattr(gecko, name) is not None


def test_l1_names_are_the_seeds() -> None:
    seed = {"__version__", "Agent", "AgentBuilder", "Message", "Role", "AgentOutput", "TokenUsage", "TokenMemory"}
    seed |= {"SummaryTokenMemory", "StructureEngine", "Workflow", "step", "Next", "Team"}
    assert seed <= set(gecko.__all__)
    assert isinstance(gecko.__all__, tuple)
    assert sorted(dir(gecko)) == sorted(gecko.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = gecko.NoSuchThing  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", SEED_MODULES)
def test_seed_module_paths_import(module: str) -> None:
    assert importlib.import_module(module).__name__ == module


def test_l1_names_are_the_objects_of_their_home_modules() -> None:
    from gecko.compose.nodes import Next, step
    from gecko.compose.team import Team
    from gecko.compose.workflow import Workflow
    from gecko.core.agent import Agent
    from gecko.core.toolbox import tool

    assert (gecko.Agent, gecko.Workflow, gecko.Team, gecko.step, gecko.Next) == (Agent, Workflow, Team, step, Next)
    assert gecko.tool is tool


def test_what_an_agent_user_writes_imports() -> None:
    from gecko import Agent, Team, Workflow, tool

    assert "tool" in gecko.__all__

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    assert add.name == "add"
    assert (Agent, Workflow, Team) == (gecko.Agent, gecko.Workflow, gecko.Team)
